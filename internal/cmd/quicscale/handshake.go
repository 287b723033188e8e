package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/internal/wire"
	"github.com/quicmsg/quicmsg/transport"
)

// target is a server whose set-up rate handshake mode measures, with how
// to set up and close one connection to it.
type target struct {
	name string
	pid  int // the server's, for its CPU time; 0: not known
	dial func(ctx context.Context, tr *quic.Transport) error
	// rates is one figure per round, in sessions/s.
	rates []float64
	// serverCPU and clientCPU are the CPU time per connection of each
	// round, of the server (when pid is known) and of this process.
	serverCPU, clientCPU []time.Duration
}

// handshakeTargets returns quicsrv's target and raw quic-go's.
func handshakeTargets(o *options) ([]*target, error) {
	tlsConf, err := clientTLS(o.caFile)
	if err != nil {
		return nil, err
	}
	rawTLS := tlsConf.Clone()
	rawTLS.NextProtos = []string{wire.ALPN}
	tcfg := &transport.Config{HandshakeTimeout: o.opTimeout}
	qconf, err := tcfg.QUICConfig()
	if err != nil {
		return nil, err
	}
	rawUA, err := net.ResolveUDPAddr("udp", o.rawAddr)
	if err != nil {
		return nil, fmt.Errorf("-raw-addr: %w", err)
	}
	quicsrv := func(ctx context.Context, tr *quic.Transport) error {
		c, err := transport.DialTransport(ctx, tr, o.addr, tlsConf, tcfg)
		if err != nil {
			return err
		}
		return c.CloseWithError(transport.CodeNoError, "")
	}
	raw := func(ctx context.Context, tr *quic.Transport) error {
		c, err := tr.Dial(ctx, rawUA, rawTLS, qconf)
		if err != nil {
			return err
		}
		return c.CloseWithError(0, "")
	}
	// rawHello makes the exchange quicmsg's HELLO makes after the TLS
	// handshake: a stream opened, one small request, its reply.
	rawHello := func(ctx context.Context, tr *quic.Transport) error {
		c, err := tr.Dial(ctx, rawUA, rawTLS, qconf)
		if err != nil {
			return err
		}
		s, err := c.OpenStreamSync(ctx)
		if err == nil {
			err = rawEcho(ctx, s, 0)
		}
		return errors.Join(err, c.CloseWithError(0, ""))
	}
	return []*target{
		{name: "quicsrv", pid: o.serverPID, dial: quicsrv},
		{name: "raw quic-go", pid: o.rawPID, dial: raw},
		{name: "raw quic-go + request", pid: o.rawPID, dial: rawHello},
	}, nil
}

// handshakeRate is handshake mode.
func handshakeRate(ctx context.Context, o *options, stdout io.Writer) error {
	targets, err := handshakeTargets(o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "handshake rate: %d connections per server per round, %d at a time, up to %d per UDP socket, each closed once set up\n",
		o.count, o.concurrency, o.perSocket)
	for r := range o.rounds {
		for _, t := range targets {
			if err := measureRate(ctx, o, t); err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, t.name, err)
			}
			fmt.Fprintf(stdout, "round %d: %s %.0f sessions/s; CPU per connection: server %s, client %s\n",
				r+1, t.name, t.rates[r], cpuString(t.serverCPU[r]), cpuString(t.clientCPU[r]))
		}
	}
	printRatio(stdout, targets[0], targets[1])
	printRatio(stdout, targets[0], targets[2])
	printRatio(stdout, targets[2], targets[1])
	for _, t := range targets {
		fmt.Fprintf(stdout, "median CPU per connection, %s: server %s, client %s\n",
			t.name, cpuString(medianDuration(t.serverCPU)), cpuString(medianDuration(t.clientCPU)))
	}
	return nil
}

// printRatio prints the median rates of a and b, the ratio of the medians
// and the range of the ratios of the rounds.
func printRatio(w io.Writer, a, b *target) {
	ratios := make([]float64, len(a.rates))
	for i := range ratios {
		ratios[i] = a.rates[i] / b.rates[i]
	}
	fmt.Fprintf(w, "median: %s %.0f sessions/s, %s %.0f sessions/s: ratio %.2f [%.2f-%.2f]\n",
		a.name, median(a.rates), b.name, median(b.rates), median(a.rates)/median(b.rates), slices.Min(ratios), slices.Max(ratios))
}

// measureRate sets up o.count connections to t and adds the rate and the
// CPU times per connection to t's figures.
func measureRate(ctx context.Context, o *options, t *target) error {
	socks := newSockets(o.perSocket)
	defer socks.close()
	server0, client0 := processCPU(t.pid), selfCPU()
	start := time.Now()
	_, err := parallel(ctx, o.count, o.concurrency, func(ctx context.Context, i int) error {
		ctx, cancel := context.WithTimeout(ctx, o.opTimeout)
		defer cancel()
		tr, err := socks.get()
		if err != nil {
			return err
		}
		if err := t.dial(ctx, tr); err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		return nil
	})
	elapsed := time.Since(start)
	server1, client1 := processCPU(t.pid), selfCPU()
	if err != nil {
		return err
	}
	t.rates = append(t.rates, float64(o.count)/elapsed.Seconds())
	t.serverCPU = append(t.serverCPU, perConn(server0, server1, o.count))
	t.clientCPU = append(t.clientCPU, perConn(client0, client1, o.count))
	return nil
}

// perConn returns (after - before) / n, or -1 when either is unknown.
func perConn(before, after time.Duration, n int) time.Duration {
	if before < 0 || after < 0 {
		return -1
	}
	return (after - before) / time.Duration(n)
}

// medianDuration is median for durations; -1 (unknown) if any is.
func medianDuration(v []time.Duration) time.Duration {
	f := make([]float64, len(v))
	for i, d := range v {
		if d < 0 {
			return -1
		}
		f[i] = float64(d)
	}
	return time.Duration(median(f))
}

// cpuString formats a CPU time per connection in µs, or "unknown".
func cpuString(d time.Duration) string {
	if d < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

// median returns the median of v (not empty).
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

package session

import (
	"context"
	"crypto/tls"
	"net"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
	"github.com/quicmsg/quicmsg/transport"
)

// setupWorkers is how many connections BenchmarkSessionSetup sets up at a
// time: within the listener's DefaultMaxHandshakesPerIP, as every client
// here is 127.0.0.1.
const setupWorkers = 8

// BenchmarkSessionSetup sets up sessions against a session server over
// real UDP on 127.0.0.1, each closed by the client as soon as Dial
// returns, and waits for the server to end them all: CPU and allocations
// per op are a session's set-up and end, client and server together (the
// client's part is transport.DialTransport on a shared quic.Transport).
// "rawquic" is the same against a raw quic-go listener whose accepted
// connections each wait in AcceptStream, with the client opening a stream
// and exchanging one small request and reply, as the HELLO does. Run it
// with -cpuprofile and -memprofile to see where a set-up goes.
func BenchmarkSessionSetup(b *testing.B) {
	pki := testTLS(b)
	for _, v := range []struct {
		name string
		cfg  Config
	}{
		{"session", Config{}},
		// As quicsrv listens: quic-go's early listener, which hands
		// connections over before their handshake completes.
		{"session-0rtt", Config{Transport: transport.Config{Allow0RTT: true}}},
	} {
		b.Run(v.name, func(b *testing.B) {
			srv, addr := startServer(b, &v.cfg, echo)
			benchSetups(b, func(ctx context.Context, tr *quic.Transport) error {
				c, err := transport.DialTransport(ctx, tr, addr, pki.client, nil)
				if err != nil {
					return err
				}
				return c.CloseWithError(transport.CodeNoError, "")
			}, func() { waitNoSessions(b, srv) })
		})
	}
	// The transport alone, without the session layer: each accepted
	// connection waits for its end on a goroutine, as a session does;
	// "transport-nogate" listens with ListenTransport, which has no
	// handshake gate (Config.MaxHandshakesPerIP).
	for _, gate := range []bool{true, false} {
		name := "transport"
		if !gate {
			name = "transport-nogate"
		}
		b.Run(name, func(b *testing.B) {
			addr, wait := transportServer(b, pki.server, gate)
			benchSetups(b, func(ctx context.Context, tr *quic.Transport) error {
				c, err := transport.DialTransport(ctx, tr, addr, pki.client, nil)
				if err != nil {
					return err
				}
				return c.CloseWithError(transport.CodeNoError, "")
			}, wait)
		})
	}
	for _, request := range []bool{true, false} {
		name := "rawquic"
		if !request {
			name = "rawquic-norequest"
		}
		b.Run(name, func(b *testing.B) {
			addr := rawEchoServer(b, pki.server)
			ua, err := net.ResolveUDPAddr("udp", addr)
			require.NoError(b, err)
			benchSetups(b, rawSetup(b, ua, pki.client, request), func() {})
		})
	}
}

// rawSetup dials a raw quic-go connection and, with request, exchanges
// one small request and reply on a stream, as the HELLO does.
func rawSetup(b testing.TB, ua *net.UDPAddr, tlsConf *tls.Config, request bool) func(context.Context, *quic.Transport) error {
	qconf, err := (&transport.Config{}).QUICConfig()
	require.NoError(b, err)
	rawTLS := tlsConf.Clone()
	rawTLS.NextProtos = []string{wire.ALPN}
	return func(ctx context.Context, tr *quic.Transport) error {
		c, err := tr.Dial(ctx, ua, rawTLS, qconf)
		if err != nil {
			return err
		}
		defer c.CloseWithError(0, "")
		if !request {
			return nil
		}
		s, err := c.OpenStreamSync(ctx)
		if err != nil {
			return err
		}
		if _, err := s.Write([]byte("hello")); err != nil {
			return err
		}
		_, err = s.Read(make([]byte, 16))
		return err
	}
}

// transportServer runs a transport listener on 127.0.0.1:0 (Listen, or
// ListenTransport without the handshake gate) whose accepted connections
// each wait for their end on a goroutine; wait waits, at most 10 s, until
// every accepted connection has ended. It stops at cleanup.
func transportServer(b *testing.B, tlsConf *tls.Config, gate bool) (addr string, wait func()) {
	var ln *transport.Listener
	var err error
	if gate {
		ln, err = transport.Listen("127.0.0.1:0", tlsConf, nil)
	} else {
		tr := clientTransport(b)
		ln, err = transport.ListenTransport(tr, tlsConf, nil)
	}
	require.NoError(b, err)
	var live atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			live.Add(1)
			wg.Go(func() {
				<-c.Context().Done()
				_ = c.CloseWithError(transport.CodeNoError, "")
				live.Add(-1)
			})
		}
	})
	b.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), func() {
		deadline := time.Now().Add(10 * time.Second)
		for live.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		require.Zero(b, live.Load())
	}
}

// benchSetups runs setup b.N times, setupWorkers at a time, over one
// client quic.Transport, then wait; it reports the process's CPU time per
// set-up (client and server) as cpu-µs/op.
func benchSetups(b *testing.B, setup func(context.Context, *quic.Transport) error, wait func()) {
	b.Helper()
	tr := clientTransport(b)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	g0 := goroutinesCreated()
	var next atomic.Int64
	errs := make(chan error, setupWorkers)
	var wg sync.WaitGroup
	for range setupWorkers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := setup(ctx, tr)
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	require.NoError(b, <-errs)
	wait()
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(goroutinesCreated()-g0)/float64(b.N), "goroutines/op")
}

// goroutinesCreated is how many goroutines this process has started so far.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// processCPU is the CPU time (user and system) of this process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// waitNoSessions waits, at most 10 s, until srv has no session left, so
// that the sessions' ends are part of the measurement.
func waitNoSessions(b *testing.B, srv *Server) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().ActiveSessions > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	require.Zero(b, srv.Stats().ActiveSessions)
}

// rawEchoServer runs a raw quic-go listener on 127.0.0.1:0 that echoes
// one read of each connection's first stream; it stops at cleanup.
func rawEchoServer(b testing.TB, tlsConf *tls.Config) string {
	b.Helper()
	qconf, err := (&transport.Config{}).QUICConfig()
	require.NoError(b, err)
	tc := tlsConf.Clone()
	tc.NextProtos = []string{wire.ALPN}
	// On a transport of its own, closed (and its goroutines waited for)
	// at cleanup after the listener: quic.ListenAddr's ends in the
	// background, which goleak may catch.
	ln, err := clientTransport(b).Listen(tc, qconf)
	require.NoError(b, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() {
				s, err := c.AcceptStream(c.Context())
				if err != nil {
					return
				}
				buf := make([]byte, 16)
				n, _ := s.Read(buf)
				_, _ = s.Write(buf[:n])
				<-c.Context().Done()
			})
		}
	})
	b.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// clientTransport returns a quic.Transport on a UDP socket of 127.0.0.1
// for the benchmark's clients (and for the servers that listen on a
// transport of their own); both close at cleanup.
func clientTransport(b testing.TB) *quic.Transport {
	b.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(b, err)
	tr := &quic.Transport{Conn: udp}
	b.Cleanup(func() {
		_ = tr.Close()
		_ = udp.Close()
	})
	return tr
}

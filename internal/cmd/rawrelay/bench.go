package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/transport"
)

// result is what bench prints, with the field names of quiccli -json bench.
type result struct {
	Sent         uint64  `json:"sent"`
	Expected     uint64  `json:"expected"`
	Delivered    uint64  `json:"delivered"`
	Undelivered  uint64  `json:"undelivered"`
	MsgsPerSec   float64 `json:"msgs_per_sec"`
	Seconds      float64 `json:"seconds"`
	ClientCPUSec float64 `json:"client_cpu_seconds"`
}

// counter counts one subscriber's deliveries; last is when the latest came,
// in nanoseconds since the bench began.
type counter struct {
	n, last atomic.Int64
}

// bench publishes through the server for o.duration and counts what every
// subscriber receives.
func bench(ctx context.Context, o benchOptions, stdout io.Writer) error {
	conns, err := dialAll(ctx, o)
	var readers sync.WaitGroup
	defer func() {
		for _, c := range conns {
			_ = c.CloseWithError(0, "")
		}
		readers.Wait() // they end with their connections
	}()
	if err != nil {
		return err
	}
	var strs []*quic.Stream
	for _, c := range conns[1:] {
		str, err := subscribe(ctx, c)
		if err != nil {
			return err
		}
		strs = append(strs, str)
	}
	epoch := time.Now()
	counts := make([]*counter, o.subscribers)
	for i, str := range strs {
		counts[i] = &counter{}
		readers.Go(func() { receive(str, counts[i], epoch) })
	}
	sent, err := publish(ctx, conns[0], o, epoch)
	if err != nil {
		return err
	}
	r := result{Sent: sent, Expected: sent * uint64(o.subscribers)}
	deadline := time.Now().Add(o.timeout)
	for r.Delivered = total(counts); r.Delivered < r.Expected && time.Now().Before(deadline) && ctx.Err() == nil; r.Delivered = total(counts) {
		time.Sleep(10 * time.Millisecond)
	}
	var last int64
	for _, c := range counts {
		last = max(last, c.last.Load())
	}
	r.Undelivered = r.Expected - r.Delivered
	r.Seconds = time.Duration(last).Seconds()
	if r.Seconds > 0 {
		r.MsgsPerSec = float64(r.Delivered) / r.Seconds
	}
	r.ClientCPUSec = cpuSeconds()
	return json.NewEncoder(stdout).Encode(r)
}

// dialAll dials the publisher's connection and then one per subscriber.
func dialAll(ctx context.Context, o benchOptions) ([]*quic.Conn, error) {
	files, err := certs.EnsureDev(o.certs, nil)
	if err != nil {
		return nil, err
	}
	tlsConf, err := certs.ClientConfig(files.ClientOptions("localhost"))
	if err != nil {
		return nil, err
	}
	tlsConf.NextProtos = []string{alpn}
	qc, err := (&transport.Config{}).QUICConfig()
	if err != nil {
		return nil, err
	}
	var conns []*quic.Conn
	for range 1 + o.subscribers {
		c, err := quic.DialAddr(ctx, o.addr, tlsConf, qc)
		if err != nil {
			return conns, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// subscribe opens c's stream as a subscriber and waits until the server
// forwards to it.
func subscribe(ctx context.Context, c *quic.Conn) (*quic.Stream, error) {
	str, err := c.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	role := [1]byte{roleSubscriber}
	if _, err := str.Write(role[:]); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(str, role[:]); err != nil {
		return nil, fmt.Errorf("subscribing: %w", err)
	}
	return str, nil
}

// receive counts the messages arriving on str until it ends.
func receive(str *quic.Stream, c *counter, epoch time.Time) {
	br := bufio.NewReaderSize(str, 64<<10)
	buf := make([]byte, 4+maxSize)
	for {
		if _, err := io.ReadFull(br, buf[:4]); err != nil {
			return
		}
		n := binary.LittleEndian.Uint32(buf)
		if _, err := io.ReadFull(br, buf[4:4+n]); err != nil {
			return
		}
		c.last.Store(int64(time.Since(epoch)))
		c.n.Add(1)
	}
}

// publish writes messages of o.size bytes through a bufio.Writer for
// o.duration and returns how many it wrote.
func publish(ctx context.Context, c *quic.Conn, o benchOptions, epoch time.Time) (uint64, error) {
	str, err := c.OpenStreamSync(ctx)
	if err != nil {
		return 0, err
	}
	end := epoch.Add(o.duration)
	// A server that stops reading must not hold the bench for ever.
	if err := str.SetWriteDeadline(end.Add(o.timeout)); err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(str, 64<<10)
	msg := make([]byte, 4+o.size)
	binary.LittleEndian.PutUint32(msg, uint32(o.size))
	if err := w.WriteByte(rolePublisher); err != nil {
		return 0, err
	}
	var sent uint64
	for ctx.Err() == nil && (sent%1024 != 0 || time.Now().Before(end)) {
		if o.size >= 8 {
			binary.LittleEndian.PutUint64(msg[4:], sent)
		}
		if _, err := w.Write(msg); err != nil {
			return sent, err
		}
		sent++
	}
	if err := w.Flush(); err != nil && !errors.Is(err, context.Canceled) {
		return sent, err
	}
	return sent, nil
}

func total(counts []*counter) uint64 {
	var n int64
	for _, c := range counts {
		n += c.n.Load()
	}
	return uint64(n)
}

// cpuSeconds returns the process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

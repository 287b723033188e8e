package transport

// Benchmarks of quicmsg against a raw quic-go baseline with the same framing
// (see bench_raw_test.go), run in the same process, back to back, as
// sub-benchmarks named quicmsg and rawquic. Everything on loopback is CPU
// bound, so compare the two within one run (as a ratio), never with figures
// from another run. BENCHMARKS.md has the command line and the results.
//
// Client and server share the process. One-way figures are counted when the
// receiver has every message; the timer runs from the first send to the last
// receive.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"
)

// quicmsgChannels returns a connected client channel and its server side.
// For impl quicmsg-noacks, both sides have acknowledgements off.
func quicmsgChannels(b *testing.B, impl string) (cli, srv *Channel, ctx context.Context) {
	b.Helper()
	var cfg *Config
	if impl == "quicmsg-noacks" {
		cfg = &Config{DisableAcks: true}
	}
	client, server, _ := pair(b, cfg, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	cli, err := client.OpenChannel(ctx, "bench")
	require.NoError(b, err)
	srv, err = server.AcceptChannel(ctx)
	require.NoError(b, err)
	return cli, srv, ctx
}

func payload(size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i)
	}
	return p
}

// oneWay sends b.N messages of size bytes from client to server, in a
// single channel or stream, and stops the timer once the receiver has
// them all. It reports msgs/s, how many messages went into each stream
// write on average, and the sending connection's packet size and loss.
func oneWay(b *testing.B, impl string, size int) {
	b.ReportAllocs()
	msg := payload(size)
	done := make(chan error, 1)
	var writes func() uint64
	var qc *quic.Conn // the sending connection
	switch impl {
	case "quicmsg", "quicmsg-alloc", "quicmsg-noacks":
		cli, srv, ctx := quicmsgChannels(b, impl)
		qc = cli.c.qc
		w0 := cli.tx.writes.Load()
		writes = func() uint64 { return cli.tx.writes.Load() - w0 }
		// quicmsg receives into a reused buffer, as the raw baseline does;
		// quicmsg-alloc takes a new slice per message (Receive).
		reuse := impl == "quicmsg"
		b.ResetTimer()
		go func() {
			var buf []byte
			for i := 0; i < b.N; i++ {
				var m []byte
				var err error
				if reuse {
					m, err = srv.ReceiveBuf(ctx, buf)
					buf = m
				} else {
					m, err = srv.Receive(ctx)
				}
				if err == nil && len(m) != size {
					err = fmt.Errorf("message %d has %d bytes, want %d", i, len(m), size)
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		for i := 0; i < b.N; i++ {
			if err := cli.Send(ctx, msg); err != nil {
				b.Fatal(err)
			}
		}
	case "rawquic", "rawquic-alloc":
		p := newRawPair(b)
		w := newRawWriter(p.cs)
		r := newRawReader(p.ss)
		r.alloc = impl == "rawquic-alloc"
		qc = p.cli
		writes = func() uint64 { return w.cw.writes }
		b.ResetTimer()
		go func() {
			for i := 0; i < b.N; i++ {
				m, err := r.read()
				if err == nil && len(m) != size {
					err = fmt.Errorf("message %d has %d bytes, want %d", i, len(m), size)
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		for i := 0; i < b.N; i++ {
			if err := w.write(msg); err != nil {
				b.Fatal(err)
			}
			if (i+1)%1000 == 0 {
				if err := w.flush(); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := w.flush(); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if n := writes(); n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "msgs/write")
	}
	// Packetisation and loss on the sending side: both sides should fill
	// packets alike; loopback drops packets when the receiving process
	// falls behind (UDP socket buffer full).
	st := qc.ConnectionStats()
	b.ReportMetric(float64(st.BytesSent)/float64(st.PacketsSent), "B/pkt")
	b.ReportMetric(100*float64(st.PacketsLost)/float64(st.PacketsSent), "lost-%")
}

var impls = []string{"quicmsg", "rawquic"}

// oneWayImpls: quicmsg receives with ReceiveBuf into a reused buffer, like
// rawquic; quicmsg-alloc uses Receive, which returns a new slice per message,
// like rawquic-alloc. Targets are quicmsg against rawquic; the -alloc pair
// shows what the per-message allocation costs both.
var oneWayImpls = []string{"quicmsg", "rawquic", "quicmsg-alloc", "rawquic-alloc"}

// BenchmarkBulk: one channel, 64 KiB messages one way. MB/s counts bytes
// that reached the receiver.
func BenchmarkBulk(b *testing.B) {
	for _, impl := range oneWayImpls {
		b.Run(impl, func(b *testing.B) {
			b.SetBytes(64 << 10)
			oneWay(b, impl, 64<<10)
		})
	}
}

// BenchmarkOneWay: one-way message rate for small messages.
func BenchmarkOneWay(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			for _, impl := range oneWayImpls {
				b.Run(impl, func(b *testing.B) { oneWay(b, impl, size) })
			}
		})
	}
}

// reportLatency reports the p50 and p99 of d in µs.
func reportLatency(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	q := func(p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))]) / float64(time.Microsecond)
	}
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}

// BenchmarkRequestResponse: 64-byte echo round trips, one outstanding at a
// time. The raw baseline flushes each message at once.
func BenchmarkRequestResponse(b *testing.B) {
	msg := payload(64)
	for _, impl := range oneWayImpls {
		b.Run(impl, func(b *testing.B) {
			d := make([]time.Duration, b.N)
			switch impl {
			case "quicmsg", "quicmsg-alloc":
				quicmsgRTT(b, impl, msg, d)
			case "rawquic", "rawquic-alloc":
				p := newRawPair(b)
				cw, cr := newRawWriter(p.cs), newRawReader(p.cs)
				sw, sr := newRawWriter(p.ss), newRawReader(p.ss)
				cr.alloc, sr.alloc = impl == "rawquic-alloc", impl == "rawquic-alloc"
				echoDone := make(chan error, 1)
				go func() {
					for {
						m, err := sr.read()
						if err == nil {
							err = sw.write(m)
						}
						if err == nil {
							err = sw.flush()
						}
						if err != nil {
							echoDone <- err
							return
						}
					}
				}()
				b.Cleanup(func() {
					b.StopTimer()
					_ = p.cs.Close()
					if err := <-echoDone; !isEOF(err) {
						b.Error(err)
					}
				})
				b.ResetTimer()
				for i := range d {
					t0 := time.Now()
					err := cw.write(msg)
					if err == nil {
						err = cw.flush()
					}
					if err != nil {
						b.Fatal(err)
					}
					m, err := cr.read()
					if err != nil || len(m) != len(msg) {
						b.Fatal(len(m), err)
					}
					d[i] = time.Since(t0)
				}
			}
			b.StopTimer()
			reportLatency(b, d)
		})
	}
}

// quicmsgRTT measures len(d) echo round trips of msg on a quicmsg channel
// into d.
func quicmsgRTT(b *testing.B, impl string, msg []byte, d []time.Duration) {
	cli, srv, ctx := quicmsgChannels(b, impl)
	// quicmsg receives into a reused buffer, as the raw
	// baseline does; quicmsg-alloc takes a new slice per
	// message (Receive).
	receive := func(ch *Channel, buf []byte) ([]byte, error) { return ch.ReceiveBuf(ctx, buf) }
	if impl == "quicmsg-alloc" {
		receive = func(ch *Channel, _ []byte) ([]byte, error) { return ch.Receive(ctx) }
	}
	echoDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 0, 64)
		for {
			m, err := receive(srv, buf)
			if err == nil {
				err = srv.Send(ctx, m)
			}
			if err != nil {
				echoDone <- err
				return
			}
		}
	}()
	b.Cleanup(func() {
		b.StopTimer()
		_ = cli.Close()
		if err := <-echoDone; !errors.Is(err, ctx.Err()) && !isEOF(err) {
			b.Error(err)
		}
	})
	buf := make([]byte, 0, 64)
	b.ResetTimer()
	for i := range d {
		t0 := time.Now()
		if err := cli.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
		m, err := receive(cli, buf)
		if err != nil || len(m) != len(msg) {
			b.Fatal(len(m), err)
		}
		d[i] = time.Since(t0)
	}
}

// BenchmarkAcks compares one-way throughput (64 B and 1 KiB) and echo
// round trips (64 B) with acknowledgements on (quicmsg) and off
// (quicmsg-noacks), in the same run.
func BenchmarkAcks(b *testing.B) {
	impls := []string{"quicmsg", "quicmsg-noacks"}
	for _, size := range []int{64, 1024} {
		for _, impl := range impls {
			b.Run(fmt.Sprintf("oneway/size=%d/%s", size, impl), func(b *testing.B) { oneWay(b, impl, size) })
		}
	}
	for _, impl := range impls {
		b.Run("rtt/"+impl, func(b *testing.B) {
			d := make([]time.Duration, b.N)
			quicmsgRTT(b, impl, payload(64), d)
			b.StopTimer()
			reportLatency(b, d)
		})
	}
}

// BenchmarkCoalescing shows what the channel's writer does with small
// messages:
//   - burst: b.N bursts of 1000 64-byte messages, each burst sent as fast as
//     Send takes it and waited for at the receiver; reports messages per
//     stream write. The raw baseline writes through its 64 KiB buffer and
//     flushes at the end of each burst.
//   - lone: one 64-byte message at a time, the next sent once the previous
//     arrived; reports the one-way latency (sender's Send to the receiver's
//     Receive, same clock) and messages per write, which must be 1: a lone
//     message is not held back. The raw baseline flushes each message at once.
func BenchmarkCoalescing(b *testing.B) {
	msg := payload(64)
	type ends struct {
		send, flush, recv func() error
		// sendAll sends n messages as the sender's fastest API does:
		// SendMsgs in one call for quicmsg, n buffered writes for raw.
		sendAll func(n int) error
		writes  func() uint64
		pkts    func() (sent, recv uint64)
	}
	setup := func(b *testing.B, impl string) ends {
		switch impl {
		case "quicmsg":
			cli, srv, ctx := quicmsgChannels(b, impl)
			w0 := cli.tx.writes.Load()
			// Received into a reused buffer, as the raw baseline does.
			buf := make([]byte, 0, len(msg))
			batch := make([]Message, 1000)
			for i := range batch {
				batch[i].Data = msg
			}
			return ends{
				send: func() error { return cli.Send(ctx, msg) },
				sendAll: func(n int) error {
					_, err := cli.SendMsgs(ctx, batch[:n])
					return err
				},
				flush: func() error { return nil }, // the channel's writer sends by itself
				recv: func() error {
					m, err := srv.ReceiveBuf(ctx, buf)
					buf = m
					return err
				},
				writes: func() uint64 { return cli.tx.writes.Load() - w0 },
				pkts: func() (uint64, uint64) {
					st := cli.c.qc.ConnectionStats()
					return st.PacketsSent, st.PacketsReceived
				},
			}
		default:
			p := newRawPair(b)
			w, r := newRawWriter(p.cs), newRawReader(p.ss)
			return ends{
				send: func() error { return w.write(msg) },
				sendAll: func(n int) error {
					for range n {
						if err := w.write(msg); err != nil {
							return err
						}
					}
					return nil
				},
				flush:  w.flush,
				recv:   func() error { _, err := r.read(); return err },
				writes: func() uint64 { return w.cw.writes },
				pkts: func() (uint64, uint64) {
					st := p.cli.ConnectionStats()
					return st.PacketsSent, st.PacketsReceived
				},
			}
		}
	}
	// receiver receives n messages for each n sent on todo and then sends the
	// time it received the last one, or an error.
	type result struct {
		at  time.Time
		err error
	}
	receiver := func(e ends, todo <-chan int, done chan<- result) {
		for n := range todo {
			var err error
			for range n {
				if err = e.recv(); err != nil {
					break
				}
			}
			done <- result{time.Now(), err}
			if err != nil {
				return
			}
		}
	}
	// burst sends bursts of 1,000 messages, one Send each; burst-batch
	// hands each burst to SendMsgs in one call (raw quic-go writes the
	// same way in both).
	runBursts := func(b *testing.B, batch bool) {
		const burst = 1000
		for _, impl := range impls {
			b.Run(impl, func(b *testing.B) {
				e := setup(b, impl)
				sendBurst := func() error {
					if batch {
						return e.sendAll(burst)
					}
					for range burst {
						if err := e.send(); err != nil {
							return err
						}
					}
					return nil
				}
				todo, done := make(chan int, 1), make(chan result, 1)
				go receiver(e, todo, done)
				defer close(todo)
				b.ResetTimer()
				cpu0 := processCPU()
				for range b.N {
					todo <- burst
					if err := sendBurst(); err != nil {
						b.Fatal(err)
					}
					if err := e.flush(); err != nil {
						b.Fatal(err)
					}
					if r := <-done; r.err != nil {
						b.Fatal(r.err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
				b.ReportMetric(float64(b.N*burst)/b.Elapsed().Seconds(), "msgs/s")
				b.ReportMetric(float64(b.N*burst)/float64(e.writes()), "msgs/write")
				ps, pr := e.pkts()
				b.ReportMetric(float64(ps)/float64(b.N), "pkts-sent/op")
				b.ReportMetric(float64(pr)/float64(b.N), "pkts-recv/op")
			})
		}
	}
	b.Run("burst", func(b *testing.B) { runBursts(b, false) })
	b.Run("burst-batch", func(b *testing.B) { runBursts(b, true) })
	b.Run("lone", func(b *testing.B) {
		for _, impl := range impls {
			b.Run(impl, func(b *testing.B) {
				e := setup(b, impl)
				todo, done := make(chan int, 1), make(chan result, 1)
				go receiver(e, todo, done)
				defer close(todo)
				d := make([]time.Duration, b.N)
				b.ResetTimer()
				for i := range d {
					todo <- 1
					t0 := time.Now()
					if err := e.send(); err != nil {
						b.Fatal(err)
					}
					if err := e.flush(); err != nil {
						b.Fatal(err)
					}
					r := <-done
					if r.err != nil {
						b.Fatal(r.err)
					}
					d[i] = r.at.Sub(t0)
				}
				b.StopTimer()
				reportLatency(b, d)
				b.ReportMetric(float64(b.N)/float64(e.writes()), "msgs/write")
			})
		}
	})
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// processCPU returns the CPU time (user and system) the process has used:
// both ends of a benchmark's connection run in it, so that its growth per
// operation is their cost together, which the load of other processes on
// a shared machine changes less than the elapsed time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

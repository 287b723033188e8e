package client

// BenchmarkPoolVsChannels compares two ways of spreading concurrent
// request/response traffic: many channels on one connection, and a Pool of
// connections. Client and echo server share the process and its cores, so
// compare the sub-benchmarks of one run with each other (as ratios), never
// with figures from another machine or run.

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

const (
	benchWorkers = 8  // goroutines sending requests
	benchMsgSize = 64 // bytes per request and per echo
	benchBatch   = 32 // requests per Acquire in the pool variants
)

// roundTrip sends one request on ch and waits for its echo.
func roundTrip(ctx context.Context, ch *transport.Channel, msg []byte) error {
	if err := ch.Send(ctx, msg); err != nil {
		return err
	}
	got, err := ch.Receive(ctx)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo of %d bytes came back as %d bytes", len(msg), len(got))
	}
	return nil
}

// runWorkers runs benchWorkers goroutines that share b.N requests, taking
// up to batch at a time, and reports echoed requests per second.
func runWorkers(b *testing.B, batch int, work func(ctx context.Context, worker, n int) error) {
	ctx := b.Context()
	var left atomic.Int64
	left.Store(int64(b.N))
	take := func() int {
		after := left.Add(-int64(batch))
		return int(max(0, min(int64(batch), int64(batch)+after)))
	}
	b.ResetTimer()
	var g errgroup.Group
	for w := range benchWorkers {
		g.Go(func() error {
			for n := take(); n > 0; n = take() {
				if err := work(ctx, w, n); err != nil {
					return err
				}
			}
			return nil
		})
	}
	require.NoError(b, g.Wait())
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkPoolVsChannels runs each variant twice: against an echo handler
// that answers at once, and against one that waits 1 ms first (a handler
// that calls a database, say). The server hands a session's messages to its
// handler one at a time, so with a waiting handler the number of sessions
// bounds throughput.
func BenchmarkPoolVsChannels(b *testing.B) {
	for _, wait := range []time.Duration{0, time.Millisecond} {
		h := session.HandlerFunc(func(ctx context.Context, s *session.Session, m session.Message) {
			if wait > 0 {
				time.Sleep(wait)
			}
			_ = s.Send(ctx, m.Channel, m.Data)
		})
		b.Run(fmt.Sprintf("handler=%s", wait), func(b *testing.B) {
			_, addr := startTestServer(b, nil, h)
			benchPoolVsChannels(b, addr)
		})
	}
}

func benchPoolVsChannels(b *testing.B, addr string) {
	_, cli := testTLS(b)
	msg := bytes.Repeat([]byte{'q'}, benchMsgSize)

	b.Run(fmt.Sprintf("1conn-%dchannels", benchWorkers), func(b *testing.B) {
		conn, err := transport.Dial(b.Context(), addr, cli, nil)
		require.NoError(b, err)
		defer conn.Close()
		chans := make([]*transport.Channel, benchWorkers)
		for i := range chans {
			chans[i], err = conn.OpenChannel(b.Context(), fmt.Sprintf("w%d", i))
			require.NoError(b, err)
			require.NoError(b, roundTrip(b.Context(), chans[i], msg))
		}
		runWorkers(b, 1, func(ctx context.Context, w, _ int) error {
			return roundTrip(ctx, chans[w], msg)
		})
		for _, ch := range chans {
			_ = ch.Close()
		}
	})

	for _, size := range []int{4, benchWorkers} {
		b.Run(fmt.Sprintf("pool%d-batch%d", size, benchBatch), func(b *testing.B) {
			p, err := NewPool(b.Context(), addr, cli, &PoolConfig{Size: size})
			require.NoError(b, err)
			defer p.Close()
			// Each worker keeps one channel per connection it has held, so
			// that the benchmark measures requests, not channel set-up.
			chans := make([]map[*transport.Conn]*transport.Channel, benchWorkers)
			for i := range chans {
				chans[i] = make(map[*transport.Conn]*transport.Channel)
			}
			runWorkers(b, benchBatch, func(ctx context.Context, w, n int) error {
				pc, err := p.Acquire(ctx)
				if err != nil {
					return err
				}
				defer pc.Release()
				ch := chans[w][pc.Conn()]
				if ch == nil {
					if ch, err = pc.Conn().OpenChannel(ctx, fmt.Sprintf("w%d", w)); err != nil {
						return err
					}
					chans[w][pc.Conn()] = ch
				}
				for range n {
					if err := roundTrip(ctx, ch, msg); err != nil {
						return err
					}
				}
				return nil
			})
			for _, m := range chans {
				for _, ch := range m {
					_ = ch.Close()
				}
			}
		})
	}
}

package session

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// BenchmarkBroadcast measures one Broadcast to 1,000 sessions that have the
// channel open: "healthy", all of them taking the message (the baseline),
// then "one-slowed", the same sessions with one whose client asked the
// server to slow down, which Broadcast skips without waiting. The sessions
// are set up once per run and shared by both; the clients share one UDP
// socket, and their connections run in the same process, so that ns/op
// includes the time Broadcast waits for the CPU while the connections it
// woke send; ms-p50 is the median call. Run it with a fixed count, for
// example -benchtime 20x: the clients do not read, and each iteration leaves
// one message per session in their receive buffers.
func BenchmarkBroadcast(b *testing.B) {
	const sessions = 1000
	srv, addr := startServer(b, nil, echo)
	ua, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(b, err)
	tr := clientTransport(b)
	conns := dialMany(b, tr, ua.String(), sessions)
	// Real sockets, so the wall clock: the sessions and channels arrive over QUIC (see helpers_test.go).
	require.Eventually(b, func() bool { return sessionsWith(srv, "news") == sessions }, time.Minute, 10*time.Millisecond)
	msg := make([]byte, 64)

	run := func(b *testing.B, wantDelivered int) {
		var took []time.Duration
		for b.Loop() {
			start := time.Now()
			r := srv.Broadcast("news", msg)
			took = append(took, time.Since(start))
			if r.Delivered != wantDelivered || r.Failed != 0 {
				b.Fatalf("delivered %d, failed %d (%v), want %d delivered", r.Delivered, r.Failed, r.Err(), wantDelivered)
			}
			b.StopTimer()
			waitWritten(b, srv)
			b.StartTimer()
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-p50")
	}
	// Warm up: the connections' first messages settle their buffers.
	for range 3 {
		srv.Broadcast("news", msg)
		waitWritten(b, srv)
	}
	b.Run("healthy", func(b *testing.B) { run(b, sessions) })
	slow := conns[sessions/2]
	require.NoError(b, slow.SlowDown())
	sess, ok := srv.Session(slow.SessionID())
	require.True(b, ok)
	require.Eventually(b, sess.Conn().PeerSlowedDown, time.Minute, time.Millisecond)
	b.Run("one-slowed", func(b *testing.B) { run(b, sessions-1) })
}

// waitWritten waits until the server's sessions have written every message
// they accepted, so that each Broadcast starts on a quiet machine.
func waitWritten(b *testing.B, srv *Server) {
	b.Helper()
	// Real sockets, so the wall clock: what was written travels over QUIC (see helpers_test.go).
	require.Eventually(b, func() bool {
		for _, s := range srv.Sessions() {
			if st := s.Conn().Stats(); st.MessagesWritten < st.MessagesSent {
				return false
			}
		}
		return true
	}, time.Minute, time.Millisecond)
}

// dialMany connects n clients over tr, a few at a time, each with channel
// "news" open.
func dialMany(b *testing.B, tr *quic.Transport, addr string, n int) []*transport.Conn {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conns := make([]*transport.Conn, n)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := transport.DialTransport(ctx, tr, addr, testTLS(b).client, nil)
			if err == nil {
				_, err = c.OpenChannel(ctx, "news")
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			conns[i] = c
		})
	}
	wg.Wait()
	b.Cleanup(func() {
		var cw sync.WaitGroup
		for _, c := range conns {
			if c != nil {
				cw.Go(func() { _ = c.CloseWithError(transport.CodeNoError, "") })
			}
		}
		cw.Wait()
	})
	require.NoError(b, firstErr)
	return conns
}

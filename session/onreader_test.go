package session

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// With HandleOnReader a handler that waits holds back the channel it runs
// for, not the session: the other channel's messages are handled
// meanwhile, the waiting message counts as pending, no SLOW_DOWN is sent,
// and once the handler goes on every message of the held channel is
// handled, in order.
func TestHandleOnReaderWaitHoldsOnlyItsChannel(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	seen := map[string][]uint32{}
	h := HandlerFunc(func(ctx context.Context, s *Session, m Message) {
		if m.Channel == "slow" {
			<-release
		}
		mu.Lock()
		seen[m.Channel] = append(seen[m.Channel], binary.BigEndian.Uint32(m.Data))
		mu.Unlock()
	})
	srv, addr := startServer(t, &Config{HandleOnReader: true, PendingCap: 10}, h)
	c := dial(t, addr, nil)
	ctx := testCtx(t)
	const n = 200
	send := func(name string) <-chan error {
		ch, err := c.OpenChannel(ctx, name)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() {
			for i := range n {
				msg := make([]byte, 64)
				binary.BigEndian.PutUint32(msg, uint32(i))
				if err := ch.Send(ctx, msg); err != nil {
					done <- err
					return
				}
			}
			done <- ch.Flush(ctx)
		}()
		return done
	}
	slowDone := send("slow")
	fastDone := send("fast")
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen[name])
	}
	// Real sockets, so the wall clock (see helpers_test.go).
	require.Eventually(t, func() bool { return count("fast") == n }, 20*time.Second, 5*time.Millisecond,
		"the other channel's messages are handled while a handler waits")
	require.NoError(t, <-fastDone)
	sess := srv.Sessions()[0]
	require.Equal(t, 0, count("slow"))
	require.Equal(t, 1, sess.Stats().Pending, "the message the waiting handler has is pending")
	require.False(t, sess.BackpressureActive(), "no pending queue: no SLOW_DOWN")
	require.False(t, c.PeerSlowedDown())

	close(release)
	require.NoError(t, <-slowDone)
	require.Eventually(t, func() bool { return sess.Stats().MessagesHandled == 2*n }, 20*time.Second, 5*time.Millisecond)
	mu.Lock()
	for name, vs := range seen {
		for i, v := range vs {
			require.Equal(t, uint32(i), v, "channel %s: in order and intact", name)
		}
	}
	mu.Unlock()
	st := sess.Stats()
	require.Equal(t, uint64(2*n), st.MessagesReceived)
	require.Equal(t, 0, st.Pending)
	require.Equal(t, uint64(0), st.BackpressureEvents)
}

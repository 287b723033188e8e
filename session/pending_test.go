package session

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// gatedHandler blocks the handler on the messages numbered in gates (the
// first four bytes of the payload) until the gate's channel is closed, and
// records the numbers handled, in order.
type gatedHandler struct {
	gates map[uint32]chan struct{}
	mu    sync.Mutex
	seen  []uint32
}

func (h *gatedHandler) HandleMessage(ctx context.Context, _ *Session, m Message) {
	i := binary.BigEndian.Uint32(m.Data)
	if g, ok := h.gates[i]; ok {
		select {
		case <-g:
		case <-ctx.Done():
		}
	}
	h.mu.Lock()
	h.seen = append(h.seen, i)
	h.mu.Unlock()
}

func (h *gatedHandler) inOrder(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.seen) == n
	}, 20*time.Second, 5*time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, v := range h.seen {
		require.Equal(t, uint32(i), v, "messages are handled in order")
	}
}

// sendNumbered writes n numbered messages on a new channel from a raw
// client, which ignores SLOW_DOWN, so that all of them are there for the
// server to read whatever it signals, and returns the server's session.
func sendNumbered(t *testing.T, srv *Server, addr string, n int) *Session {
	t.Helper()
	raw := dialRaw(t, addr)
	frames := wire.AppendChannelHeader(nil, "numbered")
	for i := range n {
		frames = wire.AppendMessage(frames, 0, binary.BigEndian.AppendUint32(nil, uint32(i)))
	}
	raw.openRaw(t, frames)
	var sess *Session
	require.Eventually(t, func() bool {
		if ss := srv.Sessions(); len(ss) == 1 {
			sess = ss[0]
		}
		return sess != nil
	}, 20*time.Second, 5*time.Millisecond)
	return sess
}

// Each message leaves pending as its handler returns, not with the
// worker's batch: RESUME goes out as soon as the pending messages fall
// below half the cap, even when the handler then blocks in the middle of
// its batch. (A worker that released its batch's messages together, or
// only at the end of a batch when nobody waits for room, fails here: the
// blocked handler would hold RESUME back.)
func TestResumeIsNotHeldBackByABlockedHandler(t *testing.T) {
	const pendingCap, blocked = 256, 130
	first, second := make(chan struct{}), make(chan struct{})
	h := &gatedHandler{gates: map[uint32]chan struct{}{0: first, blocked: second}}
	// Under OverflowDisconnect the reader still has room at the cap (the
	// allowance of a client that has not seen SLOW_DOWN yet), so that it
	// waits for the next message, not for room, and only the worker can
	// take the pending messages below half the cap.
	srv, addr := startServer(t, &Config{PendingCap: pendingCap, Overflow: OverflowDisconnect}, h)
	// The cap's worth, held while message 0 is handled: the worker then
	// takes full batches of 32, and message 130 is in the middle of one,
	// after the 129th took the pending ones below half the cap.
	sess := sendNumbered(t, srv, addr, pendingCap)
	require.Eventually(t, func() bool {
		return sess.BackpressureActive() && sess.Stats().MessagesReceived == pendingCap
	}, 20*time.Second, 5*time.Millisecond)
	close(first)
	var st SessionStats
	require.Eventually(t, func() bool {
		st = sess.Stats()
		return !sess.BackpressureActive() && st.MessagesHandled == blocked
	}, 20*time.Second, 5*time.Millisecond, "stats: %+v", &st)
	require.Equal(t, pendingCap-blocked, st.Pending)
	close(second)
	h.inOrder(t, pendingCap)
	require.Eventually(t, func() bool { return sess.Stats().Pending == 0 }, 20*time.Second, 5*time.Millisecond)
	require.Zero(t, srv.Stats().PendingBytes, "every byte goes back to the server's budget")
}

package session

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// goroutinesIn counts the goroutines whose stack has a frame of fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(fn)) {
			count++
		}
	}
	return count
}

// An idle session whose one channel exchanged a message holds two
// goroutines of the session layer: its own, which also takes the client's
// streams from QUIC (transport.Conn.ServeChannels), and the channel's
// reader. No stream acceptor of the transport waits beside it (issue 12:
// it was one more parked goroutine, and its stack, per idle session).
func TestIdleSessionGoroutines(t *testing.T) {
	const sessions = 4
	_, addr := startServer(t, nil, echo)
	for range sessions {
		echoedSession(t, addr)
	}
	require.Eventually(t, func() bool {
		return goroutinesIn("session.(*Session).work(") == 0
	}, 10*time.Second, time.Millisecond, "the workers exit once the queue is empty")
	require.Equal(t, sessions, goroutinesIn("session.(*Server).runSession("), "one session goroutine per session")
	require.Equal(t, sessions, goroutinesIn("session.(*Session).read("), "one reader per channel")
	require.Zero(t, goroutinesIn("transport.(*Conn).acceptStreams("), "no stream acceptor beside the session goroutine")
	require.Eventually(t, func() bool {
		return goroutinesIn("transport.(*Conn).serveStream(") == 0
	}, 10*time.Second, time.Millisecond, "no header reader left once the channels are handed out")
}

// A live session holds no resume channels: Session.resumed and
// Session.kick are made when the session is first detached (issue 12,
// memory per idle session). Resuming is covered by resume_test.go.
func TestLiveSessionHoldsNoResumeChannels(t *testing.T) {
	srv, addr := startServer(t, nil, echo)
	echoedSession(t, addr)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Len(t, srv.sessions, 1)
	for _, sess := range srv.sessions {
		require.True(t, sess.resumable, "a session with acknowledgements is resumable")
		require.Nil(t, sess.resumed)
		require.Nil(t, sess.kick)
	}
}

// echoedSession dials the echo server at addr and leaves the session idle
// after one message and its echo on a channel.
func echoedSession(t *testing.T, addr string) {
	t.Helper()
	ctx := testCtx(t)
	c := dial(t, addr, nil)
	ch, err := c.OpenChannel(ctx, "idle")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("ping")))
	_, err = ch.Receive(ctx)
	require.NoError(t, err)
}

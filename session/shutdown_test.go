package session

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// Messages the readers took in before Close cut the connection are all
// handed to the handler, also while the session stands at its pending cap
// with readers waiting for room: everything the server received is handled.
// The client stays after GOAWAY, so Close waits its CloseTimeout, closes
// the session and says so.
func TestCloseHandsEveryReceivedMessageToTheHandler(t *testing.T) {
	cfg := &Config{PendingCap: 2, CloseTimeout: 200 * time.Millisecond}
	srv, addr, serveDone := serve(t, cfg, HandlerFunc(func(ctx context.Context, s *Session, m Message) {
		<-s.Context().Done() // stalled until the server closes the session
	}))
	c := dial(t, addr, nil)
	ctx := testCtx(t)
	for _, name := range []string{"a", "b"} {
		ch, err := c.OpenChannel(ctx, name)
		require.NoError(t, err)
		for range 10 {
			// The server's SLOW_DOWN may arrive before the last: a
			// blocking Send would then wait for a RESUME that the
			// stalled handler never lets come.
			if err := ch.TrySend([]byte("job")); errors.Is(err, transport.ErrSlowDown) {
				break
			} else {
				require.NoError(t, err)
			}
		}
	}
	// The queue reaches its cap and both readers wait for room.
	// Real sockets, so the wall clock: the readers fill the queue from real QUIC streams (see helpers_test.go).
	require.Eventually(t, func() bool {
		ss := srv.Sessions()
		return len(ss) == 1 && ss[0].BackpressureActive() && srv.Stats().MessagesReceived >= 2
	}, 20*time.Second, time.Millisecond)
	require.ErrorIs(t, srv.Close(), context.DeadlineExceeded, "the session had to be closed")
	require.ErrorIs(t, <-serveDone, ErrServerClosed)
	require.NoError(t, srv.Close(), "Close is idempotent")
	st := srv.Stats()
	require.GreaterOrEqual(t, st.MessagesReceived, uint64(2))
	require.Equal(t, st.MessagesReceived, st.MessagesHandled, "every message received was handled")
}

// Once the sessions Shutdown began with have left, new connections are
// refused at once with GOING_AWAY, so that clients that keep coming back
// cannot hold the drain open; sessions that arrived during the drain are
// still waited for.
func TestShutdownRefusesConnectionsOnceDrained(t *testing.T) {
	var handled atomic.Int64
	srv, addr, serveDone := serve(t, nil, HandlerFunc(func(ctx context.Context, s *Session, m Message) { handled.Add(1) }))
	ctx := testCtx(t)
	first, shutdownDone := beginDrain(t, srv, addr)

	late := dial(t, addr, nil) // admitted during the drain, told to go away
	<-late.GoAwayReceived()
	require.NoError(t, first.Close())
	// Real sockets, so the wall clock: the session ends when quic-go reports the client gone (see helpers_test.go).
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 1 }, 10*time.Second, 5*time.Millisecond)

	refusedBefore := srv.Stats().SessionsRefused
	// The refusal may reach the client before its dial returns, or after.
	after, err := transport.Dial(ctx, addr, testTLS(t).client, nil)
	if err == nil {
		select {
		case <-after.Context().Done():
		case <-ctx.Done():
			t.Fatal("a connection after the drain was not refused")
		}
		err = context.Cause(after.Context())
	}
	require.ErrorIs(t, err, transport.CodeGoingAway)
	require.Equal(t, refusedBefore+1, srv.Stats().SessionsRefused)

	ch, err := late.OpenChannel(ctx, "work")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("job")))
	require.NoError(t, late.Close())
	require.NoError(t, <-shutdownDone)
	require.ErrorIs(t, <-serveDone, ErrServerClosed)
	require.Equal(t, int64(1), handled.Load(), "the late session's message was handled")
	require.Equal(t, uint64(2), srv.Stats().SessionsAccepted)
}

// beginDrain connects one client to srv, starts Shutdown and returns once
// the client got GOAWAY: the drain has begun and the client stays. The
// channel receives what Shutdown returned.
func beginDrain(t *testing.T, srv *Server, addr string) (*transport.Conn, <-chan error) {
	t.Helper()
	first := dial(t, addr, nil)
	// Real sockets, so the wall clock: the session starts once the server has read the HELLO (see helpers_test.go).
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 1 }, 10*time.Second, 5*time.Millisecond)
	ctx := testCtx(t)
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- srv.Shutdown(ctx) }()
	<-first.GoAwayReceived()
	return first, shutdownDone
}

// A client whose Dial returned before the drain stopped admitting
// sessions is served like the others, also when Serve had not yet made
// its connection a session: one held by Serve between Accept and admit
// (testHookAccepted) and one still in the listener's queue behind it both
// get GOAWAY, and what they send before they leave is handled. Before,
// Shutdown closed both with GOING_AWAY and no GOAWAY.
func TestShutdownTellsConnectionsServeHasNotAdmittedToGoAway(t *testing.T) {
	held, refusing, unblock := holdServe(t, 2) // the first is the session the drain begins with
	var handled atomic.Int64
	srv, addr, serveDone := serve(t, nil, HandlerFunc(func(context.Context, *Session, Message) { handled.Add(1) }))
	serveErr := awaitServe(t, srv, serveDone, unblock)
	ctx := testCtx(t)
	first := dial(t, addr, nil)
	// Real sockets, so the wall clock: the session starts once the server has read the HELLO (see helpers_test.go).
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 1 }, 10*time.Second, 5*time.Millisecond)
	inHand := dial(t, addr, nil)
	awaitClosed(ctx, t, held, "Serve holding the second connection")
	queued := dial(t, addr, nil) // answered, in the listener's queue

	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- srv.Shutdown(ctx) }()
	awaitClosed(ctx, t, first.GoAwayReceived(), "GOAWAY on the first connection")
	require.NoError(t, first.Close())
	awaitClosed(ctx, t, refusing, "the drain to stop admitting sessions")
	unblock()
	for _, c := range []*transport.Conn{inHand, queued} {
		select {
		case <-c.GoAwayReceived():
		case <-c.Context().Done():
			t.Fatalf("closed without GOAWAY: %v", context.Cause(c.Context()))
		case <-ctx.Done():
			t.Fatal("no GOAWAY")
		}
		ch, err := c.OpenChannel(ctx, "work")
		require.NoError(t, err)
		require.NoError(t, ch.Send(ctx, []byte("job")))
		require.NoError(t, c.Close(), "the server confirmed the close: the job was read")
	}
	require.NoError(t, <-shutdownDone)
	require.ErrorIs(t, serveErr(), ErrServerClosed)
	require.Equal(t, int64(2), handled.Load())
	require.Equal(t, uint64(3), srv.Stats().SessionsAccepted)
}

// awaitServe registers a cleanup that, should the test end early, lets
// go of whatever a test hook holds (unblock), closes srv and waits for
// Serve to return, so that the test's later cleanups (which reset the
// hooks Serve reads) run after it. The function it returns gives Serve's
// error, once.
func awaitServe(t *testing.T, srv *Server, serveDone <-chan error, unblock func()) func() error {
	t.Helper()
	var err error
	returned := false
	wait := func() error {
		if !returned {
			err, returned = <-serveDone, true
		}
		return err
	}
	t.Cleanup(func() {
		unblock()
		_ = srv.Close()
		_ = wait()
	})
	return wait
}

// A Shutdown whose context has already ended does not make sessions of
// the connections the drained listener hands over only to close them: it
// closes them with GOING_AWAY at once, counted as refused, and neither
// OnSessionStart nor SessionsAccepted sees them. Serve is held in
// testHookAccepted with one connection so that a second waits in the
// listener's queue.
func TestShutdownWithAnEndedContextClosesDrainedConnectionsWithoutSessions(t *testing.T) {
	held, refusing, unblock := holdServe(t, 1)
	var started atomic.Int32
	cfg := &Config{OnSessionStart: func(*Session) { started.Add(1) }}
	srv, addr, serveDone := serve(t, cfg, HandlerFunc(func(context.Context, *Session, Message) {}))
	serveErr := awaitServe(t, srv, serveDone, unblock)
	ctx := testCtx(t)
	dial(t, addr, nil) // held by Serve, admitted once let go
	awaitClosed(ctx, t, held, "Serve holding the first connection")
	queued := dial(t, addr, nil) // answered, in the listener's queue

	ended, cancel := context.WithCancel(context.Background())
	cancel()
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- srv.Shutdown(ended) }()
	awaitClosed(ctx, t, refusing, "the drain to stop admitting sessions")
	unblock()
	require.ErrorIs(t, <-shutdownDone, context.Canceled)
	require.ErrorIs(t, serveErr(), ErrServerClosed)

	awaitClosed(ctx, t, queued.Context().Done(), "the queued connection's end")
	require.ErrorIs(t, context.Cause(queued.Context()), transport.CodeGoingAway)
	st := srv.Stats()
	require.Equal(t, uint64(1), st.SessionsAccepted, "only the connection Serve held became a session")
	require.Equal(t, int32(1), started.Load())
	require.GreaterOrEqual(t, st.SessionsRefused, uint64(1))
}

// holdServe sets the test hooks: Serve holds the nth connection it
// accepts (held is closed then) until unblock, and refusing is closed
// once Shutdown stops admitting sessions. Call it before serve: the
// hooks are reset in a cleanup that runs after the server's (awaitServe).
func holdServe(t *testing.T, nth int32) (held, refusing <-chan struct{}, unblock func()) {
	h, r, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	var seen atomic.Int32
	testHookAccepted = func(*transport.Conn) {
		if seen.Add(1) == nth {
			close(h)
			<-release
		}
	}
	testHookRefusing = func() { close(r) }
	t.Cleanup(func() { testHookAccepted, testHookRefusing = nil, nil })
	return h, r, func() { releaseOnce.Do(func() { close(release) }) }
}

package session

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/udpproxy"
	"github.com/quicmsg/quicmsg/transport"
)

// startResumable runs a server with cfg whose hooks and handler record
// what they see, and returns it with a test context.
func startResumable(t *testing.T, cfg Config) (*Server, string, *hookLog, *sessionRecorder, context.Context) {
	t.Helper()
	hooks, rec := new(hookLog), new(sessionRecorder)
	srv, addr := startServer(t, hooks.config(&cfg), rec)
	return srv, addr, hooks, rec, testCtx(t)
}

// openNews dials a resumable client that opens channel "news" and says
// hello on it; it returns the client, its channel and the session the
// handler saw the hello from.
func openNews(ctx context.Context, t *testing.T, addr string, cfg *transport.Config, rec *sessionRecorder) (*resumeClient, *transport.Channel, *Session) {
	t.Helper()
	rc := dialResumable(t, addr, cfg)
	ch, err := rc.conn.OpenChannel(ctx, "news")
	require.NoError(t, err)
	before := len(rec.seen())
	require.NoError(t, ch.Send(ctx, []byte("hello")))
	rec.waitSeen(t, before+1)
	sess, ok := rec.byID(rc.conn.SessionID())
	require.True(t, ok)
	return rc, ch, sess
}

// sendAll sends each of msgs on channel of sess.
func sendAll(ctx context.Context, t *testing.T, sess *Session, channel string, msgs []string) {
	t.Helper()
	for _, m := range msgs {
		require.NoError(t, sess.Send(ctx, channel, []byte(m)))
	}
}

// receiveAll receives len(want) messages on ch and checks them.
func receiveAll(ctx context.Context, t *testing.T, rc *resumeClient, ch *transport.Channel, want []string) {
	t.Helper()
	var got []string
	for range want {
		got = append(got, rc.receive(ctx, ch))
	}
	require.Equal(t, want, got)
}

// A client whose connection breaks resumes its session: the handler sees
// one Session throughout, the hooks say it was detached and resumed, and
// every message the server sent (the ones the client had not read when
// its connection broke and the ones Send accepted while it was away) is
// delivered once, in order, before the first sent after the resume.
func TestResumeDeliversWhatWasSentWhileDetachedExactlyOnceInOrder(t *testing.T) {
	srv, addr, hooks, rec, ctx := startResumable(t, Config{})
	rc, ch, sess := openNews(ctx, t, addr, nil, rec)

	sendAll(ctx, t, sess, "news", numbered("m", 0, 10))
	receiveAll(ctx, t, rc, ch, numbered("m", 0, 4)) // m-4.. are read by nobody
	rc.kill()
	hooks.wait(t, "detached", 1)
	require.Equal(t, 1, srv.Stats().DetachedSessions)
	require.Zero(t, srv.ActiveSessions())
	require.NoError(t, sess.Context().Err(), "a detached session has not ended")
	sendAll(ctx, t, sess, "news", numbered("m", 10, 15)) // accepted while detached

	claims, err := rc.resume(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"news": 1}, claims, "the server says what it received")
	hooks.wait(t, "resumed", 1)
	ch, err = rc.conn.OpenChannel(ctx, "news")
	require.NoError(t, err)
	require.NoError(t, sess.Send(ctx, "news", []byte("after")))
	receiveAll(ctx, t, rc, ch, append(numbered("m", 4, 15), "after"))
	require.True(t, sess.Conn().Resumed(), "Conn is the new connection")
	require.Equal(t, rc.conn.SessionID(), sess.Conn().SessionID())

	require.NoError(t, ch.Send(ctx, []byte("again")))
	rec.waitSeen(t, 2)
	require.Same(t, sess, rec.only(t), "the handler sees one session")
	require.Equal(t, []string{"news:hello", "news:again"}, rec.seen())
	st := srv.Stats()
	require.Equal(t, uint64(1), st.SessionsDetached)
	require.Equal(t, uint64(1), st.SessionsResumed)
	require.Equal(t, uint64(1), st.SessionsAccepted)
	require.Equal(t, 1, st.ActiveSessions)
	require.Zero(t, st.DetachedSessions)
	require.Zero(t, hooks.count("end"))
}

// A partition longer than both sides' idle timeout ends the connection on
// both; the session waits, detached, and the client resumes it through the
// healed path with nothing lost.
func TestResumeAfterPartitionLongerThanIdleTimeout(t *testing.T) {
	tc := transport.Config{IdleTimeout: 300 * time.Millisecond, KeepAlivePeriod: 100 * time.Millisecond}
	_, addr, hooks, rec, ctx := startResumable(t, Config{Transport: tc})
	proxy, err := udpproxy.New(addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	rc, ch, sess := openNews(ctx, t, proxy.Addr().String(), &tc, rec)
	sendAll(ctx, t, sess, "news", numbered("m", 0, 3))
	receiveAll(ctx, t, rc, ch, numbered("m", 0, 1))

	proxy.SetBlackHole(true)
	hooks.wait(t, "detached", 1)
	<-rc.conn.Context().Done()
	sendAll(ctx, t, sess, "news", numbered("m", 3, 6))
	proxy.SetBlackHole(false)

	_, err = rc.resume(ctx, nil)
	require.NoError(t, err)
	ch, err = rc.conn.OpenChannel(ctx, "news")
	require.NoError(t, err)
	receiveAll(ctx, t, rc, ch, numbered("m", 1, 6))
	require.NoError(t, ch.Send(ctx, []byte("back")))
	rec.waitSeen(t, 2)
	require.Same(t, sess, rec.only(t))
}

// A session not resumed within its window ends, and OnSessionEnd reports
// exactly the messages its client never acknowledged; a resume after that
// is refused as expired.
func TestDetachedSessionExpiresWithUnackedReportAndLaterResumeIsRefused(t *testing.T) {
	srv, addr, hooks, rec, ctx := startResumable(t, Config{ResumeWindow: 200 * time.Millisecond})
	rc, ch, sess := openNews(ctx, t, addr, nil, rec)
	sendAll(ctx, t, sess, "news", numbered("m", 0, 5))
	receiveAll(ctx, t, rc, ch, numbered("m", 0, 2))
	// The server learns of what the client read from its acknowledgements.
	// Real sockets, so the wall clock (see helpers_test.go).
	require.Eventually(t, func() bool {
		c, ok := sess.Channel("news")
		return ok && c.Acked() == 2
	}, 20*time.Second, time.Millisecond)
	rc.kill()
	hooks.wait(t, "detached", 1)
	sendAll(ctx, t, sess, "news", numbered("m", 5, 7))
	hooks.wait(t, "end", 1)

	cause := hooks.lastEnd()
	var ue *UnackedError
	require.ErrorAs(t, cause, &ue)
	require.Equal(t, map[string]int{"news": 5}, ue.Messages, "m-2..m-4 unacknowledged, m-5 and m-6 never sent")
	require.ErrorIs(t, cause, ErrResumeWindowExpired)
	require.ErrorIs(t, context.Cause(sess.Context()), ErrResumeWindowExpired)
	require.ErrorIs(t, sess.Send(ctx, "news", []byte("late")), ErrSessionEnded)

	_, err := rc.resume(ctx, nil)
	require.ErrorIs(t, err, transport.ErrResumeExpired)
	var re *transport.ResumeError
	require.ErrorAs(t, err, &re)
	st := srv.Stats()
	require.Equal(t, uint64(1), st.SessionsExpired)
	require.Equal(t, uint64(1), st.ResumesRefused.Expired)
	require.Zero(t, st.DetachedSessions)
	require.Zero(t, st.DetachedBytes)
}

// Once a session was resumed, its earlier token is refused as replayed,
// even while the session is detached again; the latest token resumes it.
func TestResumeWithAnOlderTokenIsRefusedAsReplayed(t *testing.T) {
	var hooks hookLog
	srv, addr := startServer(t, hooks.config(&Config{}), echo)
	ctx := testCtx(t)
	rc := dialResumable(t, addr, nil)
	first := rc.tok
	rc.kill()
	hooks.wait(t, "detached", 1)
	_, err := rc.resume(ctx, nil)
	require.NoError(t, err)
	hooks.wait(t, "resumed", 1)
	rc.kill()
	hooks.wait(t, "detached", 2)

	_, err = rc.resumeWith(ctx, first, nil)
	require.ErrorIs(t, err, transport.ErrResumeTokenReplayed)
	_, err = rc.resume(ctx, nil)
	require.NoError(t, err)
	hooks.wait(t, "resumed", 2)
	require.Equal(t, uint64(1), srv.Stats().ResumesRefused.Replayed)
}

// A resume of a session whose connection lives is refused as attached,
// and the live connection is unaffected.
func TestResumeOfAttachedSessionIsRefused(t *testing.T) {
	srv, addr := startServer(t, nil, echo)
	ctx := testCtx(t)
	rc := dialResumable(t, addr, nil)
	live := rc.conn
	_, err := rc.resume(ctx, nil)
	require.ErrorIs(t, err, transport.ErrSessionAttached)
	require.Equal(t, uint64(1), srv.Stats().ResumesRefused.Attached)

	ch, err := live.OpenChannel(ctx, "still")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("up")))
	msg, err := ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "up", string(msg))
}

// A client whose resume state claims messages the server never sent is
// refused with ErrResumeClaim, naming the channel, and the session ends
// with that cause.
func TestResumeClaimingMessagesNeverSentEndsTheSession(t *testing.T) {
	srv, addr, hooks, rec, ctx := startResumable(t, Config{})
	rc, ch, sess := openNews(ctx, t, addr, nil, rec)
	sendAll(ctx, t, sess, "news", numbered("m", 0, 2))
	receiveAll(ctx, t, rc, ch, numbered("m", 0, 2))
	rc.kill()
	hooks.wait(t, "detached", 1)

	_, err := rc.resume(ctx, map[string]uint64{"news": 100})
	if err == nil { // the refusal may come after the server's own state
		<-rc.conn.Context().Done()
		err = context.Cause(rc.conn.Context())
	}
	require.ErrorIs(t, err, transport.ErrResumeClaim)
	require.ErrorContains(t, err, `"news"`)
	hooks.wait(t, "end", 1)
	require.ErrorIs(t, hooks.lastEnd(), transport.ErrResumeClaim)
	require.Equal(t, uint64(1), srv.Stats().ResumesRefused.Claim)
	require.Zero(t, hooks.count("resumed"))
}

// At MaxDetachedSessions, detaching one more ends the oldest detached
// session, which says so; the newer one can still be resumed.
func TestMaxDetachedSessionsEndsTheOldest(t *testing.T) {
	var hooks hookLog
	srv, addr := startServer(t, hooks.config(&Config{MaxDetachedSessions: 1}), echo)
	ctx := testCtx(t)
	older := dialResumable(t, addr, nil)
	newer := dialResumable(t, addr, nil)
	older.kill()
	hooks.wait(t, "detached", 1)
	newer.kill()
	hooks.wait(t, "end", 1)
	var le *DetachedLimitError
	require.ErrorAs(t, hooks.lastEnd(), &le)
	require.Equal(t, DetachedLimitError{Limit: "MaxDetachedSessions", Value: 1}, *le)
	hooks.wait(t, "detached", 2)

	_, err := older.resume(ctx, nil)
	require.ErrorIs(t, err, transport.ErrResumeExpired)
	_, err = newer.resume(ctx, nil)
	require.NoError(t, err)
	hooks.wait(t, "resumed", 1)
	st := srv.Stats()
	require.Equal(t, uint64(1), st.DetachedEvicted)
	require.Equal(t, uint64(1), st.SessionsResumed)
}

// While a session is detached, Send keeps what it accepts within
// MaxDetachedSendBytes: beyond it TrySend fails with ErrWouldBlock and
// Send waits until its context ends.
func TestSendWhileDetachedIsBoundedByMaxDetachedSendBytes(t *testing.T) {
	_, addr, hooks, rec, ctx := startResumable(t, Config{MaxDetachedSendBytes: 100})
	rc, _, sess := openNews(ctx, t, addr, nil, rec)
	rc.kill()
	hooks.wait(t, "detached", 1)

	var tl *transport.MessageTooLargeError
	require.ErrorAs(t, sess.Send(ctx, "news", make([]byte, transport.DefaultMaxMessageSize+1)), &tl,
		"a message the client would refuse is refused now, not when it is re-sent")
	require.Equal(t, transport.DefaultMaxMessageSize, tl.Limit)
	require.NoError(t, sess.Send(ctx, "news", make([]byte, 60)))
	require.ErrorIs(t, sess.TrySend("news", make([]byte, 60)), transport.ErrWouldBlock)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, sess.Send(short, "news", make([]byte, 60)), context.DeadlineExceeded)
	require.NoError(t, sess.TrySend("news", make([]byte, 40)), "what fits is taken")

	_, err := rc.resume(ctx, nil)
	require.NoError(t, err)
	ch, err := rc.conn.OpenChannel(ctx, "news")
	require.NoError(t, err)
	require.Len(t, rc.receive(ctx, ch), 60)
	require.Len(t, rc.receive(ctx, ch), 40)
}

// Close ends detached sessions at once, reporting them, and does not wait
// for their resume window.
func TestCloseEndsDetachedSessionsAtOnce(t *testing.T) {
	var hooks hookLog
	var rec sessionRecorder
	srv, addr, done := serve(t, hooks.config(&Config{ResumeWindow: time.Hour}), &rec)
	ctx := testCtx(t)
	rc, _, sess := openNews(ctx, t, addr, nil, &rec)
	rc.kill()
	hooks.wait(t, "detached", 1)
	require.NoError(t, sess.Send(ctx, "news", []byte("never")))

	require.NoError(t, srv.Close(), "nothing had to be cut short")
	require.ErrorIs(t, <-done, ErrServerClosed)
	cause := hooks.lastEnd()
	require.ErrorIs(t, cause, ErrServerClosed)
	var ue *UnackedError
	require.ErrorAs(t, cause, &ue)
	require.Equal(t, map[string]int{"news": 1}, ue.Messages)
}

// A client's own close with NO_ERROR ends its session, as without
// resumption; after the server's SendGoAway, the same close detaches it,
// so that the client can resume it on a new connection.
func TestClientCloseEndsSessionUnlessServerSentGoAway(t *testing.T) {
	srv, addr, hooks, rec, ctx := startResumable(t, Config{})
	gone := dialResumable(t, addr, nil)
	require.NoError(t, gone.conn.Close())
	hooks.wait(t, "end", 1)
	require.Zero(t, hooks.count("detached"))

	rc, _, sess := openNews(ctx, t, addr, nil, rec)
	require.NoError(t, sess.SendGoAway(transport.CodeGoingAway, "move"))
	<-rc.conn.GoAwayReceived()
	require.NoError(t, rc.conn.Close())
	hooks.wait(t, "detached", 1)
	_, err := rc.resume(ctx, nil)
	require.NoError(t, err)
	hooks.wait(t, "resumed", 1)
	require.Equal(t, 1, srv.ActiveSessions())
}

// With acknowledgements off on the client, a session ends with its
// connection, as before resumption existed.
func TestSessionWithoutAcksIsNotDetached(t *testing.T) {
	var hooks hookLog
	srv, addr := startServer(t, hooks.config(&Config{}), echo)
	c := dial(t, addr, &transport.Config{DisableAcks: true})
	_, ok := c.ResumeToken()
	require.False(t, ok)
	_ = c.CloseWithError(transport.CodeInternalError, "test: connection lost")
	hooks.wait(t, "end", 1)
	require.Zero(t, hooks.count("detached"))
	require.Zero(t, srv.Stats().SessionsDetached)
	require.False(t, errors.Is(hooks.lastEnd(), ErrResumeWindowExpired))
}

// Over MaxDetachedBytes, the oldest detached session holding messages
// ends, saying which limit; the newer one keeps what it was sent.
func TestMaxDetachedBytesEndsTheOldest(t *testing.T) {
	srv, addr, hooks, rec, ctx := startResumable(t, Config{MaxDetachedBytes: 100})
	var sessions []*Session
	var clients []*resumeClient
	for range 2 {
		rc, _, sess := openNews(ctx, t, addr, nil, rec)
		sessions, clients = append(sessions, sess), append(clients, rc)
	}
	clients[0].kill()
	hooks.wait(t, "detached", 1)
	require.NoError(t, sessions[0].Send(ctx, "news", make([]byte, 60)))
	clients[1].kill()
	hooks.wait(t, "detached", 2)
	require.Equal(t, int64(60), srv.Stats().DetachedBytes)
	require.NoError(t, sessions[1].Send(ctx, "news", make([]byte, 60)))

	hooks.wait(t, "end", 1)
	var le *DetachedLimitError
	require.ErrorAs(t, hooks.lastEnd(), &le)
	require.Equal(t, "MaxDetachedBytes", le.Limit)
	var ue *UnackedError
	require.ErrorAs(t, hooks.lastEnd(), &ue)
	require.Equal(t, map[string]int{"news": 1}, ue.Messages)
	require.ErrorIs(t, sessions[0].Context().Err(), context.Canceled)
	require.NoError(t, sessions[1].Context().Err())
	require.Equal(t, int64(60), srv.Stats().DetachedBytes)
	require.Equal(t, uint64(1), srv.Stats().DetachedEvicted)
}

// Disconnect ends a detached session at once, with the code as its cause,
// and its client's resume is refused as expired.
func TestDisconnectEndsADetachedSession(t *testing.T) {
	var hooks hookLog
	srv, addr := startServer(t, hooks.config(&Config{}), echo)
	ctx := testCtx(t)
	rc := dialResumable(t, addr, nil)
	id := rc.conn.SessionID()
	rc.kill()
	hooks.wait(t, "detached", 1)
	_, ok := srv.Session(id)
	require.True(t, ok, "Session finds a detached session")
	require.NoError(t, srv.Disconnect(id, transport.CodeDisconnected, "bye"))
	hooks.wait(t, "end", 1)
	require.ErrorIs(t, hooks.lastEnd(), transport.CodeDisconnected)
	_, err := rc.resume(ctx, nil)
	require.ErrorIs(t, err, transport.ErrResumeExpired)
}

// A channel the server opened is not carried to the next connection: what
// its client did not acknowledge on it is reported when the session ends.
func TestServerOpenedChannelIsNotCarriedAndItsUnackedAreReported(t *testing.T) {
	_, addr, hooks, rec, ctx := startResumable(t, Config{ResumeWindow: 200 * time.Millisecond})
	rc, _, sess := openNews(ctx, t, addr, nil, rec)
	for range 3 {
		require.NoError(t, sess.SendOpen(ctx, "push", []byte("unread")))
	}
	c, ok := sess.Channel("push")
	require.True(t, ok)
	require.NoError(t, c.Flush(ctx))
	rc.kill()
	hooks.wait(t, "detached", 1)
	require.NotContains(t, sess.Channels(), "push")
	require.Contains(t, sess.Channels(), "news")
	hooks.wait(t, "end", 1)
	var ue *UnackedError
	require.ErrorAs(t, hooks.lastEnd(), &ue)
	require.Equal(t, map[string]int{"push": 3}, ue.Messages)
}

// A client that finds the server's resume state impossible refuses it
// (RESUME_CLAIM): the session ends, with that cause, instead of waiting
// detached for a resume that will not come.
func TestClientRefusingTheServersResumeStateEndsTheSession(t *testing.T) {
	_, addr, hooks, rec, ctx := startResumable(t, Config{})
	rc, _, _ := openNews(ctx, t, addr, nil, rec)
	rc.kill()
	hooks.wait(t, "detached", 1)
	_, err := rc.resume(ctx, nil)
	require.NoError(t, err)
	hooks.wait(t, "resumed", 1) // the server is done with the exchange
	require.NoError(t, rc.conn.RejectResume(`channel "news": test: the server claims what it never received`))
	hooks.wait(t, "end", 1)
	require.ErrorIs(t, hooks.lastEnd(), transport.ErrResumeClaim)
	require.Equal(t, 1, hooks.count("detached"))
}

// The server's resume state counts what its readers took from the client
// on each channel: it lies between what the client saw acknowledged and
// what it wrote, and a client that re-sends from there has every message
// handled once, in order.
func TestResumeStateLetsTheClientResendEachMessageOnce(t *testing.T) {
	_, addr, hooks, rec, ctx := startResumable(t, Config{})
	rc, _, _ := openNews(ctx, t, addr, nil, rec)
	up, err := rc.conn.OpenChannel(ctx, "up")
	require.NoError(t, err)
	msgs := numbered("u", 0, 50)
	for _, m := range msgs {
		require.NoError(t, up.Send(ctx, []byte(m)))
	}
	rc.kill()
	hooks.wait(t, "detached", 1)
	acked, held := up.Acked(), append(up.Unacked(), up.Unsent()...)
	require.Equal(t, uint64(len(msgs)), acked+uint64(len(held)), "every message is acknowledged or held")

	claims, err := rc.resume(ctx, nil)
	require.NoError(t, err)
	r := claims["up"]
	require.GreaterOrEqual(t, r, acked)
	require.LessOrEqual(t, r, acked+uint64(len(up.Unacked())))
	up, err = rc.conn.OpenChannel(ctx, "up")
	require.NoError(t, err)
	for _, m := range held[r-acked:] {
		require.NoError(t, up.Send(ctx, m.Data))
	}
	rec.waitSeen(t, 1+len(msgs))
	var want []string
	for _, m := range msgs {
		want = append(want, "up:"+m)
	}
	require.Equal(t, append([]string{"news:hello"}, want...), rec.seen())
}

// The detached limits are validated by name; a negative ResumeWindow is
// the documented way to turn resumption off.
func TestDetachedLimitsAreValidatedByName(t *testing.T) {
	for _, f := range []string{"MaxDetachedSessions", "MaxDetachedBytes", "MaxDetachedSendBytes"} {
		cfg := &Config{MaxDetachedSessions: 1, MaxDetachedBytes: 1, MaxDetachedSendBytes: 1}
		switch f {
		case "MaxDetachedSessions":
			cfg.MaxDetachedSessions = -1
		case "MaxDetachedBytes":
			cfg.MaxDetachedBytes = -1
		default:
			cfg.MaxDetachedSendBytes = -1
		}
		_, err := NewServer(cfg, echo)
		require.ErrorContains(t, err, "Config."+f+" -1 is negative")
	}
	srv, err := NewServer(&Config{ResumeWindow: -1}, echo)
	require.NoError(t, err)
	require.Negative(t, srv.cfg.ResumeWindow)
	require.NoError(t, srv.Close())
}

// With a negative ResumeWindow a session ends with its connection, and the
// server issues no resume token, so that the client's next connection
// begins a new session at once.
func TestNegativeResumeWindowEndsSessionsWithTheirConnection(t *testing.T) {
	var hooks hookLog
	_, addr := startServer(t, hooks.config(&Config{ResumeWindow: -1}), echo)
	c := dial(t, addr, nil)
	require.True(t, c.AcksEnabled())
	_, ok := c.ResumeToken()
	require.False(t, ok, "no resume token from a server that resumes no sessions")
	_ = c.CloseWithError(transport.CodeInternalError, "test: connection lost")
	hooks.wait(t, "end", 1)
	require.Zero(t, hooks.count("detached"))
}

// A channel dropped while the re-send after a resume is writing one of
// its messages (the client closes it in that moment) is accounted for
// once: the drop takes back the bytes of what the channel held, and the
// re-send, held after its write by testHookDrainWrote, does not take
// the written message's bytes back a second time. Before, the session's
// held and added byte counts went below zero.
func TestChannelDroppedDuringTheResendIsAccountedOnce(t *testing.T) {
	closed := make(chan string, 4)
	_, addr, hooks, rec, ctx := startResumable(t, Config{OnChannelClose: func(_ *Session, name string) { closed <- name }})
	rc, _, sess := openNews(ctx, t, addr, nil, rec)
	rc.kill()
	hooks.wait(t, "detached", 1)
	sendAll(ctx, t, sess, "news", numbered("m", 0, 3)) // kept for the resume

	wrote, release := make(chan *carried, 1), make(chan struct{})
	var once sync.Once
	testHookDrainWrote = func(cs *carried) {
		once.Do(func() {
			wrote <- cs
			<-release
		})
	}
	t.Cleanup(func() { testHookDrainWrote = nil }) // after the server's close, registered before
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)

	_, err := rc.resume(ctx, nil)
	require.NoError(t, err)
	ch, err := rc.conn.OpenChannel(ctx, "news")
	require.NoError(t, err)
	var cs *carried
	select {
	case cs = <-wrote:
	case <-ctx.Done():
		t.Fatal("the re-send wrote nothing")
	}
	require.NoError(t, ch.Close())
	awaitChannelClosed(ctx, t, closed, "news")
	unblock()
	require.NoError(t, cs.acquire(ctx, true), "the re-send ended")
	cs.release()
	sess.mu.Lock()
	held, added := sess.heldBytes, sess.added
	sess.mu.Unlock()
	require.Zero(t, held, "bytes held")
	require.Zero(t, added, "bytes added while detached")
}

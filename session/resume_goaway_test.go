package session

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
	"github.com/quicmsg/quicmsg/transport"
)

// sendLater is how TestSendWhileClientClosesChannelAfterGoAwayIsKeptForTheResume
// sends the messages that meet the closing channel: with Send, or in one
// SendMsgs batch.
type sendLater func(ctx context.Context, sess *Session, msgs ...string) error

func sendEach(ctx context.Context, sess *Session, msgs ...string) error {
	for _, m := range msgs {
		if err := sess.Send(ctx, "news", []byte(m)); err != nil {
			return err
		}
	}
	return nil
}

func sendBatch(ctx context.Context, sess *Session, msgs ...string) error {
	batch := make([]transport.Message, len(msgs))
	for i, m := range msgs {
		batch[i] = transport.Message{Data: []byte(m)}
	}
	_, err := sess.SendMsgs(ctx, "news", batch)
	return err
}

// After GOAWAY the client closes its channels, then its connection, and
// resumes. A server Send that meets the channel as the client closes it,
// before the session's reader has seen the close and carried the channel
// to the next connection, is kept for the resume as a Send a moment later
// would be: it does not fail with the channel's error (a handler that
// echoes would lose the message; TestResumeAfterGoAwayToSameServer in
// package client did, about once in 30 runs under load). The reader is
// held where it cannot see the close (the handler holds the session's
// only pending slot), and the sends do not wait for it: the reader may
// be waiting for the very handler that sends.
func TestSendWhileClientClosesChannelAfterGoAwayIsKeptForTheResume(t *testing.T) {
	for name, send := range map[string]sendLater{"Send": sendEach, "SendMsgs": sendBatch} {
		t.Run(name, func(t *testing.T) { testSendWhileChannelCloses(t, send) })
	}
}

func testSendWhileChannelCloses(t *testing.T, send sendLater) {
	entered, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	h := HandlerFunc(func(_ context.Context, _ *Session, m Message) {
		if string(m.Data) == "hold" {
			close(entered)
			<-release
		}
	})
	hooks := new(hookLog)
	srv, addr := startServer(t, hooks.config(&Config{PendingCap: 1}), h)
	t.Cleanup(unblock) // before the server's close, which waits for the handler
	ctx := testCtx(t)
	rc := dialResumable(t, addr, nil)
	ch, err := rc.conn.OpenChannel(ctx, "news")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("hold")))
	awaitClosed(ctx, t, entered, "the handler has hold") // the reader of "news" now waits for room: it cannot see the close
	sess := srv.Sessions()[0]
	tc, ok := sess.Channel("news")
	require.True(t, ok)

	require.NoError(t, sess.SendGoAway(transport.CodeGoingAway, "move"))
	awaitClosed(ctx, t, rc.conn.GoAwayReceived(), "GOAWAY")
	require.NoError(t, ch.Close()) // as client.Client does after GOAWAY
	awaitClosed(ctx, t, tc.Done(), "the client stopped reading news")
	require.NoError(t, sess.Send(ctx, "news", []byte("a1")), "taken by the channel, whose write then fails")
	require.Error(t, tc.Flush(ctx), "the channel has failed: the next send meets its error")
	require.NoError(t, send(ctx, sess, "a2", "a3"), "kept for the client's return")
	require.NoError(t, sess.TrySend("news", []byte("a4")), "kept too, without waiting")
	unblock()

	require.NoError(t, rc.conn.Close())
	hooks.wait(t, "detached", 1)
	rc.received["news"] = 0 // it names the channel, as a client that still has it does
	state, err := rc.resume(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, uint64(1), state["news"], "the server received hold")
	ch, err = rc.conn.OpenChannel(ctx, "news")
	require.NoError(t, err)
	require.NoError(t, sess.Send(ctx, "news", []byte("a5")))
	receiveAll(ctx, t, rc, ch, []string{"a1", "a2", "a3", "a4", "a5"})
	require.Zero(t, hooks.count("end"))
}

// awaitClosed waits until c is closed, failing the test if ctx ends first.
func awaitClosed(ctx context.Context, t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
	}
}

// Only the client leaving keeps a Send for the resume: after GOAWAY, a
// channel the server itself reset (or closed) still fails the Sends that
// meet it, with the channel's error, instead of keeping them for a
// connection that may never reopen the channel.
func TestSendOnAChannelTheServerEndedAfterGoAwayFails(t *testing.T) {
	for name, end := range map[string]func(*transport.Channel){
		"Reset": func(tc *transport.Channel) { tc.Reset(transport.CodeInvalidSubject) },
		"Close": func(tc *transport.Channel) { _ = tc.Close() },
	} {
		t.Run(name, func(t *testing.T) {
			srv, addr := startServer(t, &Config{}, HandlerFunc(func(context.Context, *Session, Message) {}))
			ctx := testCtx(t)
			rc := dialResumable(t, addr, nil)
			ch, err := rc.conn.OpenChannel(ctx, "news")
			require.NoError(t, err)
			require.NoError(t, ch.Send(ctx, []byte("hello")))
			sess, tc := onlySessionChannel(t, srv, "news")
			require.NoError(t, sess.SendGoAway(transport.CodeGoingAway, "move"))
			awaitClosed(ctx, t, rc.conn.GoAwayReceived(), "GOAWAY")
			end(tc)
			_ = tc.Flush(ctx)
			require.Error(t, sess.Send(ctx, "news", []byte("late")), "a channel the server ended is not the client leaving")
		})
	}
}

// The server's end of a channel is not the client leaving, also in the
// narrow window after the client's FIN: the client finished sending on
// "news" after GOAWAY, and before it stops reading (its STOP_SENDING),
// the server closes the channel's write side. Sends then fail, as on any
// channel the server ended, instead of being kept for a resume that will
// not reopen the channel; when it is the client that stops reading, they
// are kept. A raw client sends the FIN and the STOP_SENDING apart, and
// the session's reader is held between the FIN and its wait for the
// channel's end (testHookClientFinished) while the test ends the channel
// one way or the other.
func TestSendAfterTheServerClosedAChannelTheClientFinishedFails(t *testing.T) {
	for name, c := range map[string]struct {
		end  func(raw *quic.Stream, tc *transport.Channel)
		kept bool
	}{
		"server closes": {end: func(_ *quic.Stream, tc *transport.Channel) { _ = tc.Close() }},
		"client stops reading": {
			end: func(raw *quic.Stream, _ *transport.Channel) {
				raw.CancelRead(quic.StreamErrorCode(transport.CodeChannelClosed))
			},
			kept: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			sess := finishedChannelAfterGoAway(t, c.end)
			ctx := testCtx(t)
			err := sess.Send(ctx, "news", []byte("late"))
			errTry := sess.TrySend("news", []byte("later"))
			if c.kept {
				require.NoError(t, err, "the client left: kept for its return")
				require.NoError(t, errTry)
				return
			}
			require.ErrorIs(t, err, ErrChannelClosed, "the server ended the channel")
			require.ErrorIs(t, errTry, ErrChannelClosed)
		})
	}
}

// onlySessionChannel waits until srv has one session and it has the
// channel name, and returns both.
func onlySessionChannel(t *testing.T, srv *Server, name string) (*Session, *transport.Channel) {
	t.Helper()
	var sess *Session
	var tc *transport.Channel
	// Real sockets, so the wall clock: the channel is the session's once its header crossed QUIC (see helpers_test.go).
	require.Eventually(t, func() bool {
		if ss := srv.Sessions(); len(ss) == 1 {
			sess = ss[0]
			tc, _ = sess.Channel(name)
		}
		return tc != nil
	}, 20*time.Second, 5*time.Millisecond)
	return sess, tc
}

// finishedChannelAfterGoAway connects a raw client that offers
// acknowledgements (so that its session is resumable), opens "news", has
// the server send GOAWAY and the client finish sending on "news" (FIN, no
// STOP_SENDING); once the session's reader has read the FIN, end ends the
// channel, and the reader goes on. It returns once the session has
// reported the channel closed (Config.OnChannelClose).
func finishedChannelAfterGoAway(t *testing.T, end func(raw *quic.Stream, tc *transport.Channel)) *Session {
	finished, proceed := make(chan *transport.Channel, 1), make(chan struct{})
	testHookClientFinished = func(ch *transport.Channel) {
		if ch.Name() == "news" {
			finished <- ch
			<-proceed
		}
	}
	t.Cleanup(func() { testHookClientFinished = nil }) // after the server's close, registered below
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(proceed) }) }
	closed := make(chan string, 4)
	cfg := &Config{OnChannelClose: func(_ *Session, name string) { closed <- name }}
	srv, addr := startServer(t, cfg, HandlerFunc(func(context.Context, *Session, Message) {}))
	t.Cleanup(release)
	ctx := testCtx(t)
	rc := dialRawHello(t, addr, wire.Hello{Version: wire.Version, MaxMessageSize: 1 << 20, PendingCap: 1000, Acks: true})
	raw := rc.openRaw(t, wire.AppendChannelHeader(nil, "news"))
	sess, tc := onlySessionChannel(t, srv, "news")
	require.NoError(t, sess.SendGoAway(transport.CodeGoingAway, "move"))
	require.NoError(t, raw.Close(), "FIN only: the client still reads")
	select {
	case ch := <-finished:
		require.Same(t, tc, ch)
	case <-ctx.Done():
		t.Fatal("the session's reader never read the client's FIN")
	}
	end(raw, tc)
	release()
	select {
	case name := <-closed:
		require.Equal(t, "news", name)
	case <-ctx.Done():
		t.Fatal("the session never reported news closed")
	}
	return sess
}

// A client that, after GOAWAY, closes a channel and opens the same name
// again on the same connection starts the channel afresh: the messages
// the server sent on the closed one that the client never took are not
// carried to the new one, and they are not lost silently either: the
// session reports them as unacknowledged when it ends.
func TestChannelReopenedOnTheConnectionThatClosedItCountsWhatTheClientNeverTook(t *testing.T) {
	ctx := testCtx(t)
	g := startUnreadAfterGoAway(ctx, t)
	require.NoError(t, g.ch.Close())
	awaitChannelClosed(ctx, t, g.closed, "news")
	ch, err := g.rc.conn.OpenChannel(ctx, "news") // the same name, the same connection
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("again")))
	g.rec.waitSeen(t, 2)

	ue := g.endSession(t)
	require.Equal(t, map[string]int{"news": 3}, ue.Messages)
}

// TestServerOpenOfANameClosedAfterGoAwayCountsWhatTheClientNeverTook is
// the case above with the server, not the client, opening the name again
// on the connection that closed it: with Session.Open after the client
// closed the channel, and with SendOpen after the handler closed it (the
// channel is then server-ended, so SendOpen opens a new one). The closed
// channel's messages the client never took count as unacknowledged.
func TestServerOpenOfANameClosedAfterGoAwayCountsWhatTheClientNeverTook(t *testing.T) {
	for _, viaSendOpen := range []bool{false, true} {
		name := "Open"
		if viaSendOpen {
			name = "SendOpen"
		}
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			g := startUnreadAfterGoAway(ctx, t)
			if viaSendOpen {
				tc, ok := g.sess.Channel("news")
				require.True(t, ok)
				require.NoError(t, tc.Close()) // the handler ends it
				awaitChannelClosed(ctx, t, g.closed, "news")
				require.NoError(t, g.sess.SendOpen(ctx, "news", []byte("x")))
			} else {
				require.NoError(t, g.ch.Close())
				awaitChannelClosed(ctx, t, g.closed, "news")
				_, err := g.sess.Open(ctx, "news")
				require.NoError(t, err)
			}

			ue := g.endSession(t)
			if viaSendOpen {
				// "x", on the server's channel the client never accepted, may
				// count too.
				require.Contains(t, []int{3, 4}, ue.Messages["news"], "%v", ue.Messages)
			} else {
				require.Equal(t, map[string]int{"news": 3}, ue.Messages)
			}
		})
	}
}

// unreadAfterGoAway is a resumable session whose client opened "news"
// and said hello on it, to which the server sent 3 messages the client
// never reads, and then GOAWAY (which the client has received).
type unreadAfterGoAway struct {
	srv    *Server
	hooks  *hookLog
	rec    *sessionRecorder
	rc     *resumeClient
	ch     *transport.Channel // the client's "news"
	sess   *Session
	closed chan string // the names Config.OnChannelClose reports
}

func startUnreadAfterGoAway(ctx context.Context, t *testing.T) *unreadAfterGoAway {
	t.Helper()
	g := &unreadAfterGoAway{hooks: new(hookLog), rec: new(sessionRecorder), closed: make(chan string, 4)}
	cfg := g.hooks.config(&Config{OnChannelClose: func(_ *Session, name string) { g.closed <- name }})
	var addr string
	g.srv, addr = startServer(t, cfg, g.rec)
	g.rc = dialResumable(t, addr, nil)
	var err error
	g.ch, err = g.rc.conn.OpenChannel(ctx, "news")
	require.NoError(t, err)
	require.NoError(t, g.ch.Send(ctx, []byte("hello")))
	g.rec.waitSeen(t, 1)
	g.sess = g.rec.only(t)
	for _, m := range numbered("unread", 0, 3) {
		require.NoError(t, g.sess.Send(ctx, "news", []byte(m)), "accepted, never taken by the client")
	}
	require.NoError(t, g.sess.SendGoAway(transport.CodeGoingAway, "move"))
	awaitClosed(ctx, t, g.rc.conn.GoAwayReceived(), "GOAWAY")
	return g
}

// endSession closes the client's connection, then the server, and
// returns the UnackedError the session ended with.
func (g *unreadAfterGoAway) endSession(t *testing.T) *UnackedError {
	t.Helper()
	require.NoError(t, g.rc.conn.Close())
	g.hooks.wait(t, "detached", 1)
	require.NoError(t, g.srv.Close())
	g.hooks.wait(t, "end", 1)
	var ue *UnackedError
	require.ErrorAs(t, g.hooks.lastEnd(), &ue, "the session ended with messages the client never took")
	return ue
}

// awaitChannelClosed waits until closed, fed by Config.OnChannelClose,
// reports a channel, and checks that it is name.
func awaitChannelClosed(ctx context.Context, t *testing.T, closed <-chan string, name string) {
	t.Helper()
	select {
	case got := <-closed:
		require.Equal(t, name, got)
	case <-ctx.Done():
		t.Fatalf("the session never reported %s closed", name)
	}
}

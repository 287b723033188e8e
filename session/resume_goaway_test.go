package session

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
			var sess *Session
			var tc *transport.Channel
			require.Eventually(t, func() bool {
				if ss := srv.Sessions(); len(ss) == 1 {
					sess = ss[0]
					tc, _ = sess.Channel("news")
				}
				return tc != nil
			}, 20*time.Second, 5*time.Millisecond)
			require.NoError(t, sess.SendGoAway(transport.CodeGoingAway, "move"))
			awaitClosed(ctx, t, rc.conn.GoAwayReceived(), "GOAWAY")
			end(tc)
			_ = tc.Flush(ctx)
			require.Error(t, sess.Send(ctx, "news", []byte("late")), "a channel the server ended is not the client leaving")
		})
	}
}

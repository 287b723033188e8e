package session

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// closeSignals lets a handler wait until the session has seen the client
// close a channel.
type closeSignals struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (c *closeSignals) get(name string) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]chan struct{})
	}
	if c.m[name] == nil {
		c.m[name] = make(chan struct{})
	}
	return c.m[name]
}

func (c *closeSignals) onClose(_ *Session, name string) {
	ch := c.get(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// answerAfterClose is a handler that waits until the client has closed the
// message's channel, then answers on it and reports Send's error. Messages
// on channel "final" are answered at once.
func answerAfterClose(closed *closeSignals, errs chan<- error) Handler {
	return HandlerFunc(func(ctx context.Context, s *Session, m Message) {
		if m.Channel != "final" {
			select {
			case <-closed.get(m.Channel):
			case <-ctx.Done():
				return
			}
		}
		err := s.Send(ctx, m.Channel, m.Data)
		if m.Channel != "final" {
			errs <- err
		}
	})
}

// sendAndClose opens channel name, sends one message on it and closes it.
func sendAndClose(ctx context.Context, t *testing.T, c *transport.Conn, name string) {
	t.Helper()
	ch, err := c.OpenChannel(ctx, name)
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte(name)))
	require.NoError(t, ch.Close())
}

func TestSendOnChannelTheClientClosedFailsWithItsName(t *testing.T) {
	var closed closeSignals
	errs := make(chan error, 1)
	srv, addr := startServer(t, &Config{OnChannelClose: closed.onClose}, answerAfterClose(&closed, errs))
	c := dial(t, addr, nil)
	ctx := testCtx(t)
	sendAndClose(ctx, t, c, "jobs")

	err := <-errs
	require.ErrorIs(t, err, ErrChannelClosed)
	var ce *ChannelClosedError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "jobs", ce.Channel)
	require.Contains(t, err.Error(), `"jobs"`)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = c.AcceptChannel(short)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the server opened no channel")
	sess := srv.Sessions()[0]
	require.ErrorIs(t, sess.TrySend("jobs", []byte("x")), ErrChannelClosed)

	// Asked for, a new channel of that name is opened.
	require.NoError(t, sess.SendOpen(ctx, "jobs", []byte("again")))
	ch, err := c.AcceptChannel(ctx)
	require.NoError(t, err)
	require.Equal(t, "jobs", ch.Name())
	msg, err := ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "again", string(msg))
}

// A client cycles through many channels, closing each right after its
// message, and accepts no channel from the server. Answers to the closed
// channels fail; none opens a channel the client never reads, so the
// handler never stalls on the client's channel limit.
func TestCyclingClientNeverStallsTheHandler(t *testing.T) {
	const cycles = 100
	var closed closeSignals
	errs := make(chan error, cycles)
	_, addr := startServer(t, &Config{OnChannelClose: closed.onClose}, answerAfterClose(&closed, errs))
	// The client lets the server open only a few channels.
	c := dial(t, addr, &transport.Config{MaxChannels: 8})
	ctx := testCtx(t)
	for i := range cycles {
		sendAndClose(ctx, t, c, fmt.Sprintf("c%d", i))
	}
	final, err := c.OpenChannel(ctx, "final")
	require.NoError(t, err)
	require.NoError(t, final.Send(ctx, []byte("still there?")))
	msg, err := final.Receive(ctx)
	require.NoError(t, err, "the handler answered after the cycles")
	require.Equal(t, "still there?", string(msg))
	for range cycles {
		require.ErrorIs(t, <-errs, ErrChannelClosed)
	}
}

func TestServerOpenedChannelsAreBounded(t *testing.T) {
	const limit = 4
	srv, addr := startServer(t, &Config{MaxServerChannels: limit}, echo)
	c := dial(t, addr, nil) // accepts nothing the server opens
	ctx := testCtx(t)
	// Real sockets, so the wall clock: the session starts once the server has read the HELLO (see helpers_test.go).
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 1 }, 10*time.Second, time.Millisecond)
	sess := srv.Sessions()[0]
	for i := range limit {
		require.NoError(t, sess.SendOpen(ctx, fmt.Sprintf("push%d", i), []byte("x")))
	}
	err := sess.SendOpen(ctx, "push4", []byte("x"))
	require.ErrorIs(t, err, ErrTooManyChannels)
	var le *ChannelLimitError
	require.ErrorAs(t, err, &le)
	require.Equal(t, limit, le.Limit)
	require.Equal(t, "push4", le.Channel)
	_, err = sess.Open(ctx, "push0")
	require.ErrorIs(t, err, transport.CodeDuplicateChannel)

	// Channels the client opens do not count against the limit.
	mine, err := c.OpenChannel(ctx, "mine")
	require.NoError(t, err)
	require.NoError(t, mine.Send(ctx, []byte("hi")))
	_, err = mine.Receive(ctx)
	require.NoError(t, err)

	// Closing a server-opened channel ends its reader and frees its place.
	ch, ok := sess.Channel("push0")
	require.True(t, ok)
	require.NoError(t, ch.Close())
	require.Eventually(t, func() bool {
		_, open := sess.Channel("push0")
		return !open
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, sess.SendOpen(ctx, "push4", []byte("x")))
}

// One client asked the server to slow down: Broadcast skips it and reports
// it, and delivers to the others without waiting.
func TestBroadcastSkipsASlowedSession(t *testing.T) {
	srv, addr := startServer(t, nil, echo)
	ctx := testCtx(t)
	conns, news := dialWithChannel(t, addr, "news", 3)
	// Real sockets, so the wall clock: the channels and SLOW_DOWN arrive over QUIC (see helpers_test.go).
	require.Eventually(t, func() bool { return sessionsWith(srv, "news") == 3 }, 10*time.Second, time.Millisecond)
	slow := conns[1]
	require.NoError(t, slow.SlowDown())
	sess, ok := srv.Session(slow.SessionID())
	require.True(t, ok)
	require.Eventually(t, sess.Conn().PeerSlowedDown, 10*time.Second, time.Millisecond)

	var delivered atomic.Int64
	for range 3 {
		r := srv.Broadcast("news", []byte("hello"))
		require.NoError(t, r.Err())
		require.Equal(t, 2, r.Delivered)
		require.Equal(t, 1, r.Slowed)
		require.Len(t, r.Undelivered, 1)
		u := r.Undelivered[0]
		require.Equal(t, slow.SessionID(), u.Session)
		require.Equal(t, BroadcastSlowed, u.Status)
		require.ErrorIs(t, u.Err, transport.ErrSlowDown)
		delivered.Add(int64(r.Delivered))
	}
	for i, ch := range news {
		if i == 1 {
			continue
		}
		for range 3 {
			msg, err := ch.Receive(ctx)
			require.NoError(t, err)
			require.Equal(t, "hello", string(msg))
		}
	}
	require.Equal(t, int64(6), delivered.Load())

	// Resumed, it gets the next broadcast.
	require.NoError(t, slow.Resume())
	require.Eventually(t, func() bool { return !sess.Conn().PeerSlowedDown() }, 10*time.Second, time.Millisecond)
	require.Equal(t, 3, srv.Broadcast("news", []byte("again")).Delivered)
	msg, err := news[1].Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "again", string(msg))
}

func TestBroadcastReportsFailedSessions(t *testing.T) {
	srv, addr := startServer(t, &Config{Transport: transport.Config{MaxMessageSize: 1 << 20}}, echo)
	ctx := testCtx(t)
	small := dial(t, addr, &transport.Config{MaxMessageSize: 1024})
	big := dial(t, addr, nil)
	for _, c := range []*transport.Conn{small, big} {
		_, err := c.OpenChannel(ctx, "news")
		require.NoError(t, err)
	}
	// Real sockets, so the wall clock: the channels arrive over QUIC (see helpers_test.go).
	require.Eventually(t, func() bool { return sessionsWith(srv, "news") == 2 }, 10*time.Second, time.Millisecond)
	r := srv.Broadcast("news", make([]byte, 2048))
	require.Equal(t, 1, r.Delivered)
	require.Equal(t, 1, r.Failed)
	require.Equal(t, small.SessionID(), r.Undelivered[0].Session)
	require.Equal(t, BroadcastFailed, r.Undelivered[0].Status)
	var tl *transport.MessageTooLargeError
	require.ErrorAs(t, r.Err(), &tl)
	require.Equal(t, 1024, tl.Limit)
}

package client

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/udpproxy"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// msgLog is a handler that records every message whole, with the options
// of the channel it came on.
type msgLog struct {
	mu     sync.Mutex
	msgs   []session.Message
	groups []string
	prios  []transport.Priority
	then   func(ctx context.Context, s *session.Session, m session.Message) // set before the server starts
}

func (l *msgLog) HandleMessage(ctx context.Context, s *session.Session, m session.Message) {
	var opts transport.ChannelOptions
	if ch, ok := s.Channel(m.Channel); ok {
		opts = ch.Options()
	}
	l.mu.Lock()
	l.msgs = append(l.msgs, m)
	l.groups = append(l.groups, opts.Group)
	l.prios = append(l.prios, opts.Priority)
	l.mu.Unlock()
	if l.then != nil {
		l.then(ctx, s, m)
	}
}

// wait waits until n messages were handled and returns them with the
// group of the channel each came on.
func (l *msgLog) wait(t *testing.T, n int) ([]session.Message, []string) {
	t.Helper()
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.msgs) >= n
	}, 30*time.Second, 5*time.Millisecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]session.Message(nil), l.msgs...), append([]string(nil), l.groups...)
}

// proxiedClient runs a resumable server with h behind a udpproxy and
// dials it with fastConfig, edited by edit when set.
func proxiedClient(t *testing.T, h session.Handler, edit func(*Config)) (*Client, *udpproxy.Proxy, *eventLog) {
	t.Helper()
	srv := startResumingServer(t, "127.0.0.1:0", &session.Config{CloseTimeout: time.Second}, h)
	proxy, err := udpproxy.New(srv.addr)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, proxy.Close()) })
	log := &eventLog{}
	cfg := fastConfig(t, log)
	if edit != nil {
		edit(cfg)
	}
	c, err := Dial(testCtx(t), proxy.Addr().String(), testClientTLS(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, proxy, log
}

// A gap notice from the server reaches Receive, and ReceiveMsg, at its
// place among the messages as a *transport.GapError, never as a message;
// the channel goes on, and the client counts the notices and the
// messages they report missed.
func TestClientReceiveReturnsGapErrorInOrder(t *testing.T) {
	gap := transport.Gap{Missed: 7, Reason: transport.GapSlowConsumer}
	h := &msgLog{then: func(ctx context.Context, s *session.Session, m session.Message) {
		_ = s.Send(ctx, m.Channel, []byte("before"))
		_ = s.SendGap(ctx, m.Channel, gap)
		_ = s.Send(ctx, m.Channel, []byte("after"))
	}}
	_, addr := startTestServer(t, nil, h)
	ctx := testCtx(t)
	c, err := Dial(ctx, addr, testClientTLS(t), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ch, err := c.Channel(ctx, "logs")
	require.NoError(t, err)

	require.NoError(t, ch.Send(ctx, []byte("go")))
	b, err := ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "before", string(b))
	b, err = ch.Receive(ctx)
	require.Nil(t, b, "a gap is never a message")
	requireGap(t, err, "logs", gap)
	b, err = ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "after", string(b))

	require.NoError(t, ch.Send(ctx, []byte("again")))
	m, err := ch.ReceiveMsg(ctx)
	require.NoError(t, err)
	require.Equal(t, "before", string(m.Data))
	m, err = ch.ReceiveMsg(ctx)
	require.Nil(t, m)
	requireGap(t, err, "logs", gap)
	m, err = ch.ReceiveMsg(ctx)
	require.NoError(t, err)
	require.Equal(t, "after", string(m.Data))

	st := c.Stats()
	require.Equal(t, uint64(2), st.GapNotices)
	require.Equal(t, uint64(14), st.MessagesMissed)
}

// A gap notice Receive returned counts, like a message, in what the
// client tells the server it received when it resumes the session: the
// server sends again what follows the gap, not the gap.
func TestClientGapCountsInResumeState(t *testing.T) {
	gap := transport.Gap{Missed: 3, Reason: transport.GapSlowConsumer}
	h := &msgLog{then: func(ctx context.Context, s *session.Session, m session.Message) {
		if string(m.Data) == "go" {
			_ = s.Send(ctx, m.Channel, []byte("a"))
			_ = s.SendGap(ctx, m.Channel, gap)
			_ = s.Send(ctx, m.Channel, []byte("b"))
		}
	}}
	c, proxy, log := proxiedClient(t, h, nil)
	ctx := testCtx(t)
	ch, err := c.Channel(ctx, "logs")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("go")))
	b, err := ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "a", string(b))
	_, err = ch.Receive(ctx)
	requireGap(t, err, "logs", gap)

	proxy.BlackHole(2500 * time.Millisecond) // the idle timeout is 1 s
	log.waitEvent(t, func(e Event) bool { return e.Type == EventReconnected })
	b, err = ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "b", string(b))
	require.NoError(t, ch.Send(ctx, []byte("more")))
	h.wait(t, 2)
	require.Equal(t, uint64(1), c.Stats().Resumes)
	require.Equal(t, uint64(1), c.Stats().GapNotices)
	require.False(t, log.has(func(e Event) bool { return e.Type == EventResumeFailed }))
}

// requireGap checks that err is the gap notice g on channel.
func requireGap(t *testing.T, err error, channel string, g transport.Gap) {
	t.Helper()
	var ge *transport.GapError
	require.True(t, errors.As(err, &ge), "want a *transport.GapError, got %v", err)
	require.ErrorIs(t, err, transport.ErrGap)
	require.Equal(t, channel, ge.Channel)
	require.Equal(t, g, ge.Gap)
}

// Messages with a subject and headers keep them across a connection loss:
// those written and not acknowledged when the connection broke (held for
// the resume), and those sent while the client was reconnecting (the
// reconnect buffer), reach the handler as they were sent, once, in order.
func TestClientHeadersSurviveReconnectBufferAndResume(t *testing.T) {
	h := &msgLog{}
	c, proxy, _ := proxiedClient(t, h, nil)
	ctx := testCtx(t)
	ch, err := c.Channel(ctx, "orders")
	require.NoError(t, err)
	msg := func(i int) *transport.Message {
		return &transport.Message{Subject: "orders.eu", Header: transport.Header{{Key: "i", Value: string(seq(i))}}, Data: seq(i)}
	}
	require.NoError(t, ch.SendMsg(ctx, msg(0)))
	h.wait(t, 1)
	proxy.SetBlackHole(true)
	require.NoError(t, ch.SendMsg(ctx, msg(1)), "written, never acknowledged")
	waitStatus(t, c, StatusReconnecting)
	require.NoError(t, ch.SendMsg(ctx, msg(2)), "buffered")
	require.NoError(t, ch.Send(ctx, seq(3)), "buffered, plain")
	proxy.SetBlackHole(false)

	got, _ := h.wait(t, 4)
	require.Len(t, got, 4, "exactly once")
	for i, m := range got[:3] {
		require.Equal(t, "orders.eu", m.Subject, "message %d", i)
		require.Equal(t, transport.Header{{Key: "i", Value: string(seq(i))}}, m.Header, "message %d", i)
		require.Equal(t, string(seq(i)), string(m.Data))
	}
	require.Equal(t, "orders", got[3].Subject)
	require.Nil(t, got[3].Header)
	require.GreaterOrEqual(t, c.Stats().Resumes, uint64(1))
}

// A channel made with ChannelWith is opened with its options on every
// connection: after a reconnect, with the session resumed or a new one
// begun (where the other channels ride in the 0-RTT first flight), the
// server sees its queue group again.
func TestClientChannelWithGroupKeptAcrossReconnect(t *testing.T) {
	for _, tc := range []struct {
		name   string
		resume bool
	}{{"resumed", true}, {"new session", false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := &msgLog{}
			c, proxy, log := proxiedClient(t, h, func(cfg *Config) { cfg.DisableResume = !tc.resume })
			ctx := testCtx(t)
			opts := transport.ChannelOptions{Group: "workers"}
			ch, err := c.ChannelWith(ctx, "jobs", opts)
			require.NoError(t, err)
			require.Equal(t, opts, ch.Options())
			plain, err := c.Channel(ctx, "plain")
			require.NoError(t, err)
			_, err = c.Channel(ctx, "jobs")
			require.ErrorIs(t, err, ErrChannelOptions)
			require.NoError(t, ch.Send(ctx, seq(0)))
			require.NoError(t, plain.Send(ctx, seq(0)))
			h.wait(t, 2)

			proxy.BlackHole(2500 * time.Millisecond) // the idle timeout is 1 s
			log.waitEvent(t, func(e Event) bool { return e.Type == EventReconnected && e.Resumed == tc.resume })
			require.NoError(t, ch.Send(ctx, seq(1)))
			msgs, groups := h.wait(t, 3)
			require.Len(t, msgs, 3)
			for i, m := range msgs {
				want := map[string]string{"jobs": "workers", "plain": ""}[m.Channel]
				require.Equal(t, want, groups[i], "message %d on %q", i, m.Channel)
			}
			require.Equal(t, "jobs", msgs[2].Channel)
			require.Equal(t, string(seq(1)), string(msgs[2].Data))
		})
	}
}

// A channel's priority is carried like its other options: the server sees
// it again on the channel opened on the next connection.
func TestClientChannelWithPriorityKeptAcrossReconnect(t *testing.T) {
	h := &msgLog{}
	c, proxy, log := proxiedClient(t, h, nil)
	ctx := testCtx(t)
	opts := transport.ChannelOptions{Priority: transport.NewPriority(0, false)}
	ch, err := c.ChannelWith(ctx, "interactive", opts)
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, seq(0)))
	h.wait(t, 1)

	proxy.BlackHole(2500 * time.Millisecond) // the idle timeout is 1 s
	log.waitEvent(t, func(e Event) bool { return e.Type == EventReconnected })
	require.NoError(t, ch.Send(ctx, seq(1)))
	msgs, _ := h.wait(t, 2)
	require.Len(t, msgs, 2)
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Equal(t, []transport.Priority{opts.Priority, opts.Priority}, h.prios)
}

// A message the reconnect buffer accepted that the next server refuses
// (it lowered its message size limit) is reported in an
// EventMessageRefused with the message, counted in MessagesFailed, and the
// channel goes on with the next one.
func TestBufferedMessageRefusedByTheNextServerIsReported(t *testing.T) {
	ctx := testCtx(t)
	rec := &msgLog{}
	srv := startResumingServer(t, "127.0.0.1:0", &session.Config{CloseTimeout: time.Second}, rec)
	log := &eventLog{}
	c, err := Dial(ctx, srv.addr, testClientTLS(t), fastConfig(t, log))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ch, err := c.Channel(ctx, "news")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("first")))
	rec.wait(t, 1)

	srv.close(t)
	waitStatus(t, c, StatusReconnecting)
	big := make([]byte, 100<<10)
	require.NoError(t, ch.Send(ctx, big), "the last server took 1 MiB: buffered")
	require.NoError(t, ch.Send(ctx, []byte("after")))

	small := &session.Config{CloseTimeout: time.Second, Transport: transport.Config{MaxMessageSize: 64 << 10}}
	startResumingServer(t, srv.addr, small, rec)
	t.Cleanup(func() {
		if t.Failed() {
			log.mu.Lock()
			for _, e := range log.events {
				t.Logf("event %v %v", e.Type, e.Err)
			}
			log.mu.Unlock()
		}
	})
	msgs, _ := rec.wait(t, 2)
	require.Equal(t, "after", string(msgs[1].Data))
	require.Eventually(t, func() bool { //nolint:staticcheck // wall clock: real sockets
		return log.has(func(e Event) bool {
			var re *RefusedError
			return e.Type == EventMessageRefused && errors.As(e.Err, &re) &&
				re.Channel == "news" && len(re.Message.Data) == len(big)
		})
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, uint64(1), c.Stats().MessagesFailed)
}

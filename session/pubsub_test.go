package session

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// msgRecorder is a handler that records the messages it handles, whole.
type msgRecorder struct {
	mu   sync.Mutex
	msgs []Message
	sess *Session // the last session seen
	// then, if set, runs after a message was recorded.
	then func(ctx context.Context, s *Session, m Message)
}

func (r *msgRecorder) HandleMessage(ctx context.Context, s *Session, m Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.sess = s
	r.mu.Unlock()
	if r.then != nil {
		r.then(ctx, s, m)
	}
}

// wait waits until the handler has seen n messages and returns them.
func (r *msgRecorder) wait(t testing.TB, n int) []Message {
	t.Helper()
	var got []Message
	// Real sockets, so the wall clock: the messages cross QUIC (see helpers_test.go).
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		got = append([]Message(nil), r.msgs...)
		return len(got) >= n
	}, 20*time.Second, time.Millisecond)
	return got
}

// session returns the session the handler last saw a message from.
func (r *msgRecorder) session() *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sess
}

// receiveMsg returns the next message of ch, or the gap notice there as a
// *transport.GapError, and counts either for the session's resume state.
func (rc *resumeClient) receiveMsg(ctx context.Context, ch *transport.Channel) (*transport.Message, error) {
	rc.t.Helper()
	m, err := ch.ReceiveMsg(ctx)
	if err == nil || errors.Is(err, transport.ErrGap) {
		rc.received[ch.Name()]++
	}
	return m, err
}

// requireGap checks that err is the gap notice g on channel.
func requireGap(t testing.TB, err error, channel string, g transport.Gap) {
	t.Helper()
	var ge *transport.GapError
	require.ErrorAs(t, err, &ge, "a gap notice, not a message")
	require.ErrorIs(t, err, transport.ErrGap)
	require.Equal(t, channel, ge.Channel)
	require.Equal(t, g, ge.Gap)
}

// The handler sees what a client published with its subject and headers,
// and the session's SendMsg and Reply reach the client with theirs: the
// subject, the headers in order, in-reply-to for a request's msg-id.
func TestSessionHeadersBothWaysAndReply(t *testing.T) {
	rec := &msgRecorder{then: func(ctx context.Context, s *Session, m Message) {
		if m.Header.Get(transport.HeaderReplyTo) != "" {
			_ = s.Reply(ctx, m, &transport.Message{Header: transport.Header{{Key: "k", Value: "v"}}, Data: []byte("pong")})
			return
		}
		assert.ErrorIs(t, s.Reply(ctx, m, &transport.Message{Data: []byte("x")}), ErrNoReplyTo)
		hdr := transport.Header{{Key: transport.HeaderTraceparent, Value: "00-trace"}, {Key: "a", Value: "1"}, {Key: "a", Value: "2"}}
		_ = s.SendMsg(ctx, m.Channel, &transport.Message{Subject: "orders.eu.paid", Header: hdr, Data: m.Data})
	}}
	_, addr := startServer(t, nil, rec)
	ctx := testCtx(t)
	c := dial(t, addr, nil)
	require.True(t, c.HeadersEnabled())
	ch, err := c.OpenChannel(ctx, "orders")
	require.NoError(t, err)

	hdr := transport.Header{{Key: "app", Value: "x"}, {Key: "empty", Value: ""}}
	require.NoError(t, ch.SendMsg(ctx, &transport.Message{Subject: "orders.eu", Header: hdr, Data: []byte("one")}))
	got := rec.wait(t, 1)[0]
	require.Equal(t, "orders", got.Channel)
	require.Equal(t, "orders.eu", got.Subject)
	require.Equal(t, hdr, got.Header)
	require.Equal(t, "one", string(got.Data))

	m, err := ch.ReceiveMsg(ctx)
	require.NoError(t, err)
	require.Equal(t, "orders.eu.paid", m.Subject)
	require.Equal(t, transport.Header{{Key: transport.HeaderTraceparent, Value: "00-trace"}, {Key: "a", Value: "1"}, {Key: "a", Value: "2"}}, m.Header)
	require.Equal(t, "one", string(m.Data))

	req := transport.Header{{Key: transport.HeaderReplyTo, Value: "_INBOX.abc"}, {Key: transport.HeaderMsgID, Value: "7"}}
	require.NoError(t, ch.SendMsg(ctx, &transport.Message{Header: req, Data: []byte("ping")}))
	got = rec.wait(t, 2)[1]
	require.Equal(t, "orders", got.Subject, "no subject header: the channel's name")
	m, err = ch.ReceiveMsg(ctx)
	require.NoError(t, err)
	require.Equal(t, "_INBOX.abc", m.Subject)
	require.Equal(t, "7", m.Header.Get(transport.HeaderInReplyTo))
	require.Equal(t, "v", m.Header.Get("k"))
	require.Equal(t, "pong", string(m.Data))

	// A plain message stays plain both ways.
	require.NoError(t, ch.Send(ctx, []byte("plain")))
	got = rec.wait(t, 3)[2]
	require.Equal(t, "orders", got.Subject)
	require.Nil(t, got.Header)
}

// SendGap reaches the client at its place among the messages, as a
// *transport.GapError and never as a message, and the channel goes on; a
// gap notice a client sends is counted and skipped, never handled.
func TestSessionSendGapInOrderAndClientGapSkipped(t *testing.T) {
	gap := transport.Gap{Missed: 42, Reason: transport.GapSlowConsumer}
	rec := &msgRecorder{then: func(ctx context.Context, s *Session, m Message) {
		if string(m.Data) != "go" {
			return
		}
		_ = s.Send(ctx, m.Channel, []byte("before"))
		_ = s.SendGap(ctx, m.Channel, gap)
		_ = s.Send(ctx, m.Channel, []byte("after"))
	}}
	_, addr := startServer(t, nil, rec)
	ctx := testCtx(t)
	c := dial(t, addr, nil)
	ch, err := c.OpenChannel(ctx, "logs")
	require.NoError(t, err)

	require.NoError(t, ch.SendGap(ctx, transport.Gap{Missed: 3, Reason: transport.GapBackplane}))
	require.NoError(t, ch.Send(ctx, []byte("go")))
	msgs := rec.wait(t, 1)
	require.Equal(t, "go", string(msgs[0].Data), "the client's gap notice is not handled")

	b, err := ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "before", string(b))
	b, err = ch.Receive(ctx)
	require.Nil(t, b)
	requireGap(t, err, "logs", gap)
	b, err = ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "after", string(b))

	s := rec.session()
	require.Equal(t, uint64(1), s.Stats().GapsReceived)
	require.Equal(t, uint64(1), s.Stats().MessagesReceived, "a gap notice is not a message")
}

// What a resumable session sent with headers, and its gap notices, keep
// their form across a detach and a resume: those written and not
// acknowledged when the connection broke, and those SendMsg and SendGap
// accepted while the session was detached, are written again as they were
// sent, in order, exactly once; a gap stays a gap.
func TestResumeKeepsSubjectsHeadersAndGaps(t *testing.T) {
	_, addr, hooks, rec, ctx := startResumable(t, Config{})
	rc, ch, sess := openNews(ctx, t, addr, nil, rec)
	hdr := transport.Header{{Key: "n", Value: "1"}}
	gap1 := transport.Gap{Missed: 5, Reason: transport.GapSlowConsumer}
	gap2 := transport.Gap{Missed: 2, Reason: transport.GapDisconnect}

	require.NoError(t, sess.SendMsg(ctx, "news", &transport.Message{Subject: "news.a", Header: hdr, Data: []byte("m0")}))
	require.NoError(t, sess.SendGap(ctx, "news", gap1))
	require.NoError(t, sess.SendMsg(ctx, "news", &transport.Message{Header: hdr, Data: []byte("m1")}))
	m, err := rc.receiveMsg(ctx, ch)
	require.NoError(t, err)
	require.Equal(t, "m0", string(m.Data)) // the gap and m1 are read by nobody
	// The client's gap notice is numbered like a message in the server's
	// resume state, though never handled.
	require.NoError(t, ch.SendGap(ctx, gap1))
	require.NoError(t, ch.Send(ctx, []byte("up")))
	rec.waitSeen(t, 2)
	rc.kill()
	hooks.wait(t, "detached", 1)

	// Accepted while detached.
	require.NoError(t, sess.SendGap(ctx, "news", gap2))
	require.NoError(t, sess.SendMsg(ctx, "news", &transport.Message{Subject: "news.b", Header: hdr, Data: []byte("m2")}))
	require.NoError(t, sess.Send(ctx, "news", []byte("m3")))
	require.ErrorIs(t, sess.SendMsg(ctx, "news", &transport.Message{Subject: "news.*", Data: []byte("x")}), transport.ErrWildcardSubject)

	claims, err := rc.resume(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"news": 3}, claims, "hello, the gap notice, up")
	hooks.wait(t, "resumed", 1)
	ch, err = rc.conn.OpenChannel(ctx, "news")
	require.NoError(t, err)

	_, err = rc.receiveMsg(ctx, ch)
	requireGap(t, err, "news", gap1)
	m, err = rc.receiveMsg(ctx, ch)
	require.NoError(t, err)
	require.Equal(t, &transport.Message{Subject: "news", Header: hdr, Data: []byte("m1")}, m)
	_, err = rc.receiveMsg(ctx, ch)
	requireGap(t, err, "news", gap2)
	m, err = rc.receiveMsg(ctx, ch)
	require.NoError(t, err)
	require.Equal(t, &transport.Message{Subject: "news.b", Header: hdr, Data: []byte("m2")}, m)
	m, err = rc.receiveMsg(ctx, ch)
	require.NoError(t, err)
	require.Equal(t, "m3", string(m.Data))
	require.Nil(t, m.Header)

	// Nothing more: the next is what is sent now.
	require.NoError(t, sess.Send(ctx, "news", []byte("after")))
	m, err = rc.receiveMsg(ctx, ch)
	require.NoError(t, err)
	require.Equal(t, "after", string(m.Data))
	require.Zero(t, hooks.count("end"))
}

// DisconnectGracefully delivers what was sent before it, then closes the
// connection with its code (SLOW_CONSUMER here, as the relay does), and
// the session ends: it is not detached for a resume.
func TestDisconnectGracefullyDeliversWhatWasSentFirst(t *testing.T) {
	const n = 200
	done := make(chan error, 1)
	var once sync.Once
	rec := &msgRecorder{then: func(ctx context.Context, s *Session, m Message) {
		once.Do(func() {
			for i := range n {
				if err := s.Send(ctx, m.Channel, numberedMsg(i)); err != nil {
					done <- err
					return
				}
			}
			dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			done <- s.DisconnectGracefully(dctx, transport.CodeSlowConsumer, "test: slow consumer")
		})
	}}
	var hooks hookLog
	_, addr := startServer(t, hooks.config(&Config{}), rec)
	ctx := testCtx(t)
	c := dial(t, addr, nil)
	ch, err := c.OpenChannel(ctx, "feed")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("start")))

	for i := range n {
		b, err := ch.Receive(ctx)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, string(numberedMsg(i)), string(b))
	}
	_, err = ch.Receive(ctx)
	require.ErrorIs(t, err, transport.CodeSlowConsumer)
	require.NoError(t, <-done)
	hooks.wait(t, "end", 1)
	require.ErrorIs(t, hooks.lastEnd(), transport.CodeSlowConsumer)
	require.Zero(t, hooks.count("detached"), "not kept for a resume")
}

func numberedMsg(i int) []byte { return []byte(numbered("m", i, i+1)[0]) }

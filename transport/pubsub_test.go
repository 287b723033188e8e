package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/udpproxy"
	"github.com/quicmsg/quicmsg/internal/wire"
)

// openNamed opens a channel named name on client and accepts it on server.
func openNamed(t *testing.T, client, server *Conn, name string) (cli, srv *Channel) {
	t.Helper()
	ctx := testCtx(t)
	cli, err := client.OpenChannel(ctx, name)
	require.NoError(t, err)
	srv, err = server.AcceptChannel(ctx)
	require.NoError(t, err)
	return cli, srv
}

// Headers arrive in order with repeated keys kept; the subject travels
// only when it differs from the channel's name; a message without headers
// is a plain frame; a large body behind headers arrives whole.
func TestHeadersRoundTrip(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	require.True(t, client.HeadersEnabled())
	require.True(t, server.HeadersEnabled())
	ctx := testCtx(t)
	cli, srv := openNamed(t, client, server, "orders")

	hdr := Header{{"a", "1"}, {HeaderMsgID, "7"}, {"a", "3"}, {"empty", ""}}
	large := bytes.Repeat([]byte("x"), 200<<10)
	sent := []*Message{
		{Subject: "orders.eu", Header: hdr, Data: []byte("one")},
		{Subject: "orders", Data: []byte("two")}, // the channel's name: plain
		{Header: hdr, Data: large},
		{Subject: "orders.us", Data: nil, ReplaySafe: true},
	}
	for _, m := range sent {
		require.NoError(t, cli.SendMsg(ctx, m))
	}
	require.NoError(t, cli.Send(ctx, []byte("plain")))

	for i, want := range sent {
		got, err := srv.ReceiveMsg(ctx)
		require.NoError(t, err, i)
		require.Equal(t, cmpOr(want.Subject, "orders"), got.Subject, i)
		require.Equal(t, want.Header, got.Header, i)
		require.Equal(t, len(want.Data), len(got.Data), i)
		require.True(t, bytes.Equal(want.Data, got.Data), i)
	}
	got, err := srv.ReceiveMsg(ctx)
	require.NoError(t, err)
	require.Equal(t, &Message{Subject: "orders", Data: []byte("plain")}, got)

	// Receive returns the payload of a message with headers.
	require.NoError(t, cli.SendMsg(ctx, &Message{Subject: "orders.eu", Header: hdr, Data: []byte("body")}))
	b, err := srv.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "body", string(b))
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// A message whose Subject is the channel's name, or empty, and that has no
// headers, is encoded exactly as Send encodes it.
func TestPlainSendMsgIsByteIdenticalToSend(t *testing.T) {
	ch := &Channel{name: "orders"}
	for _, m := range []*Message{{Data: []byte("x")}, {Subject: "orders", Data: []byte("x")}} {
		f, err := ch.msgFrame(m)
		require.NoError(t, err)
		require.Equal(t, wire.AppendMessage(nil, 0, []byte("x")), f.appendTo(nil, f.payloadLen()))
	}
	f, err := ch.msgFrame(&Message{Data: []byte("x"), ReplaySafe: true})
	require.NoError(t, err)
	require.Equal(t, wire.AppendMessage(nil, wire.FlagReplaySafe, []byte("x")), f.appendTo(nil, f.payloadLen()))
}

// Decoding encoded frames as UnsentMessage values and encoding them again
// gives the same bytes: a re-sent message or gap is the same frame.
func TestUnsentMessageReproducesTheFrame(t *testing.T) {
	ch := &Channel{name: "orders"}
	var batch []byte
	for _, m := range []*Message{
		{Data: []byte("plain")},
		{Subject: "orders.1", Header: Header{{"k", "v"}, {"k", "w"}}, Data: []byte("h"), ReplaySafe: true},
		{Header: Header{{"only", "header"}}},
	} {
		f, err := ch.msgFrame(m)
		require.NoError(t, err)
		batch = f.appendTo(batch, f.payloadLen())
	}
	batch = wire.AppendGap(batch, 42, uint64(GapSlowConsumer))
	withHeader := append(wire.AppendChannelHeaderWith(nil, "orders", wire.ChannelOptions{Group: "g"}), batch...)

	us := appendUnsent(nil, withHeader)
	require.Len(t, us, 4)
	require.Equal(t, &Gap{Missed: 42, Reason: GapSlowConsumer}, us[3].Gap)
	require.Nil(t, us[3].Message())
	require.Equal(t, "orders.1", us[1].Subject)
	require.Equal(t, Header{{"k", "v"}, {"k", "w"}}, us[1].Header)
	var again []byte
	for _, u := range us {
		f := outFrame{flags: wire.FlagGap}
		if u.Gap != nil {
			f.gap = *u.Gap
		} else {
			var err error
			f, err = ch.msgFrame(u.Message())
			require.NoError(t, err)
		}
		again = f.appendTo(again, f.payloadLen())
	}
	require.Equal(t, batch, again)
}

// Headers that break a rule or a limit fail SendMsg with a *HeaderError
// and the channel stays usable.
func TestHeaderLimitsFailTheSendOnly(t *testing.T) {
	client, server, _ := pair(t, &Config{MaxMessageSize: 1024}, nil)
	ctx := testCtx(t)
	cli, srv := openNamed(t, client, server, "limits")
	many := make(Header, MaxHeaderFields+1)
	for i := range many {
		many[i] = HeaderField{"k", "v"}
	}
	for name, m := range map[string]*Message{
		"too many fields":  {Header: many},
		"subject counts":   {Subject: "other", Header: many[:MaxHeaderFields]},
		"block too large":  {Header: Header{{"k", strings.Repeat("v", MaxHeaderBytes)}}},
		"reserved key":     {Header: Header{{HeaderSubject, "x"}}},
		"key with a colon": {Header: Header{{"a:b", "x"}}},
		"empty key":        {Header: Header{{"", "x"}}},
		"key with a space": {Header: Header{{"a b", "x"}}},
	} {
		var he *HeaderError
		require.ErrorAs(t, cli.SendMsg(ctx, m), &he, name)
		require.ErrorAs(t, cli.TrySendMsg(m), &he, name)
	}
	// The peer's limit counts the header block with the body.
	var tooLarge *MessageTooLargeError
	require.ErrorAs(t, cli.SendMsg(ctx, &Message{Header: Header{{"k", "v"}}, Data: make([]byte, 1024)}), &tooLarge)
	require.Equal(t, 1024+1+wire.HeaderFieldLen("k", "v"), tooLarge.Size)
	require.NoError(t, cli.SendMsg(ctx, &Message{Header: many[:MaxHeaderFields], Data: []byte("ok")}))
	m, err := srv.ReceiveMsg(ctx)
	require.NoError(t, err)
	require.Len(t, m.Header, MaxHeaderFields)
}

// A malformed header block or gap notice from the peer resets that channel
// with PROTOCOL_ERROR; the other channels and the connection carry on.
func TestMalformedHeadersResetOnlyThatChannel(t *testing.T) {
	for name, frame := range map[string][]byte{
		"empty header block": {wire.FrameMessage, wire.FlagHeaders, 2, 0, 'x'},
		"key with a colon":   {wire.FrameMessage, wire.FlagHeaders, 4, 3, 1, ':', 0},
		"gap of nothing":     {wire.FrameMessage, wire.FlagGap, 2, 0, 1},
		"gap and headers":    {wire.FrameMessage, wire.FlagGap | wire.FlagHeaders, 2, 1, 1},
	} {
		t.Run(name, func(t *testing.T) {
			client, server, _ := pair(t, nil, nil)
			ctx := testCtx(t)
			bad, badSrv := openNamed(t, client, server, "bad")
			good, goodSrv := openNamed(t, client, server, "good")
			require.NoError(t, bad.Flush(ctx))
			_, err := bad.s.Write(frame)
			require.NoError(t, err)

			_, err = badSrv.ReceiveMsg(ctx)
			var ce *ChannelError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, CodeProtocolError, ce.Code)
			require.Contains(t, ce.Reason, "wire: malformed")

			require.NoError(t, good.SendMsg(ctx, &Message{Header: Header{{"k", "v"}}, Data: []byte("on")}))
			m, err := goodSrv.ReceiveMsg(ctx)
			require.NoError(t, err)
			require.Equal(t, "on", string(m.Data))
			require.NoError(t, client.Context().Err())
		})
	}
}

// Gap notices come out of Receive and ReceiveMsg as *GapError, in order
// between the messages, and count as messages in the acknowledgements.
func TestGapNoticesInOrderAndAcknowledged(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	cli, srv := openNamed(t, client, server, "logs")
	require.NoError(t, cli.Send(ctx, []byte("1")))
	require.NoError(t, cli.SendGap(ctx, Gap{Missed: 5, Reason: GapSlowConsumer}))
	require.NoError(t, cli.Send(ctx, []byte("7")))
	require.NoError(t, cli.SendGap(ctx, Gap{Missed: 2, Reason: GapDisconnect}))
	require.ErrorIs(t, cli.SendGap(ctx, Gap{}), ErrInvalidGap)

	b, err := srv.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "1", string(b))
	_, err = srv.Receive(ctx)
	var ge *GapError
	require.ErrorAs(t, err, &ge)
	require.ErrorIs(t, err, ErrGap)
	require.Equal(t, &GapError{Channel: "logs", Gap: Gap{Missed: 5, Reason: GapSlowConsumer}}, ge)
	m, err := srv.ReceiveMsg(ctx)
	require.NoError(t, err, "the channel stays usable after a gap")
	require.Equal(t, "7", string(m.Data))
	_, err = srv.ReceiveBuf(ctx, make([]byte, 8))
	require.ErrorAs(t, err, &ge)
	require.Equal(t, Gap{Missed: 2, Reason: GapDisconnect}, ge.Gap)
	require.Eventually(t, func() bool { return cli.Acked() == 4 }, 10*time.Second, time.Millisecond)
}

// A gap notice is not a message: the peer's message size limit, however
// small, does not apply to it.
func TestGapNoticeIgnoresTheMessageSizeLimit(t *testing.T) {
	client, server, _ := pair(t, &Config{MaxMessageSize: 1}, nil)
	ctx := testCtx(t)
	cli, srv := openNamed(t, client, server, "tiny")
	require.NoError(t, cli.SendGap(ctx, Gap{Missed: 1 << 40, Reason: GapBackplane}))
	require.NoError(t, cli.Send(ctx, []byte("1")))
	_, err := srv.Receive(ctx)
	require.ErrorIs(t, err, ErrGap)
	b, err := srv.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "1", string(b))
}

// After a connection is killed, Unacked holds messages with their headers
// and gap notices as gaps; re-sent on the resumed session, the peer gets
// them exactly as they were.
func TestResumedSessionResendsHeadersAndGaps(t *testing.T) {
	book := newSessionBook()
	ln := resumeListener(t, book, nil)
	c1 := dialTest(t, ln, nil)
	s1, err := ln.Accept(testCtx(t))
	require.NoError(t, err)
	tok, ok := c1.ResumeToken()
	require.True(t, ok)
	book.add(tok.ID)
	ctx := testCtx(t)
	cli, srv := openNamed(t, c1, s1, "feed")
	msgs := []*Message{
		{Data: []byte("read")},
		{Subject: "feed.a", Header: Header{{"k", "1"}, {"k", "2"}}, Data: []byte("h")},
	}
	for _, m := range msgs {
		require.NoError(t, cli.SendMsg(ctx, m))
	}
	require.NoError(t, cli.SendGap(ctx, Gap{Missed: 3, Reason: GapSlowConsumer}))
	require.NoError(t, cli.Send(ctx, []byte("after")))
	_, err = srv.Receive(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return cli.Acked() == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, s1.CloseWithError(CodeGoingAway, "killed"))
	waitEnd(t, c1)
	held := append(cli.Unacked(), cli.Unsent()...)
	require.Len(t, held, 3)

	c2, s2 := resumePair(t, ln, tok)
	cli2, srv2 := openNamed(t, c2, s2, "feed")
	for _, u := range held {
		if u.Gap != nil {
			require.NoError(t, cli2.SendGap(ctx, *u.Gap))
		} else {
			require.NoError(t, cli2.SendMsg(ctx, u.Message()))
		}
	}
	m, err := srv2.ReceiveMsg(ctx)
	require.NoError(t, err)
	require.Equal(t, &Message{Subject: "feed.a", Header: msgs[1].Header, Data: []byte("h")}, m)
	_, err = srv2.ReceiveMsg(ctx)
	var ge *GapError
	require.ErrorAs(t, err, &ge)
	require.Equal(t, Gap{Missed: 3, Reason: GapSlowConsumer}, ge.Gap)
	m, err = srv2.ReceiveMsg(ctx)
	require.NoError(t, err)
	require.Equal(t, "after", string(m.Data))
}

// Against a peer that did not offer HEADERS, what needs it fails with
// ErrHeadersUnsupported and plain messages go through.
func TestHeadersUnsupportedByThePeer(t *testing.T) {
	for name, cfgs := range map[string][2]*Config{
		"server": {{noHeaders: true}, nil},
		"client": {nil, {noHeaders: true}},
	} {
		t.Run(name, func(t *testing.T) {
			client, server, _ := pair(t, cfgs[0], cfgs[1])
			require.False(t, client.HeadersEnabled())
			require.False(t, server.HeadersEnabled())
			ctx := testCtx(t)
			cli, srv := openNamed(t, client, server, "old")
			require.ErrorIs(t, cli.SendMsg(ctx, &Message{Header: Header{{"k", "v"}}}), ErrHeadersUnsupported)
			require.ErrorIs(t, cli.TrySendMsg(&Message{Subject: "old.x"}), ErrHeadersUnsupported)
			require.ErrorIs(t, cli.SendGap(ctx, Gap{Missed: 1}), ErrHeadersUnsupported)
			_, err := client.OpenChannelWith(ctx, "grouped", ChannelOptions{Group: "g"})
			require.ErrorIs(t, err, ErrHeadersUnsupported)
			require.NoError(t, cli.SendMsg(ctx, &Message{Subject: "old", Data: []byte("plain")}))
			b, err := srv.Receive(ctx)
			require.NoError(t, err)
			require.Equal(t, "plain", string(b))
		})
	}
}

// Options given to OpenChannelWith are seen by both sides; an invalid
// group is refused.
func TestOpenChannelWithGroupSeenByTheAcceptor(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	opts := ChannelOptions{Group: "workers"}
	cli, err := client.OpenChannelWith(ctx, "orders.>", opts)
	require.NoError(t, err)
	require.Equal(t, opts, cli.Options())
	srv, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	require.Equal(t, "orders.>", srv.Name())
	require.Equal(t, opts, srv.Options())

	plain, plainSrv := openNamed(t, client, server, "plain")
	require.Zero(t, plain.Options())
	require.Zero(t, plainSrv.Options())

	for _, g := range []string{"a.b", "*", ">", "a b", strings.Repeat("g", 256)} {
		_, err := client.OpenChannelWith(ctx, "x", ChannelOptions{Group: g})
		require.ErrorIs(t, err, ErrInvalidGroup, g)
	}
	// The acceptor of a wildcard channel replies with a concrete subject.
	require.NoError(t, srv.SendMsg(ctx, &Message{Subject: "orders.1", Data: []byte("r")}))
	m, err := cli.ReceiveMsg(ctx)
	require.NoError(t, err)
	require.Equal(t, "orders.1", m.Subject)
}

// A channel named by a wildcard pattern is a subscription: publishing on
// it needs a concrete subject.
func TestWildcardChannelRefusesPublish(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	cli, srv := openNamed(t, client, server, "orders.*")
	requireWildcard := func(err error) {
		t.Helper()
		var se *SubjectError
		require.ErrorAs(t, err, &se)
		require.ErrorIs(t, err, ErrWildcardSubject)
	}
	requireWildcard(cli.Send(ctx, []byte("x")))
	requireWildcard(cli.TrySend([]byte("x")))
	requireWildcard(cli.SendReplaySafe(ctx, []byte("x")))
	requireWildcard(cli.SendMsg(ctx, &Message{Data: []byte("x")}))
	requireWildcard(cli.SendMsg(ctx, &Message{Subject: "orders.*", Data: []byte("x")}))
	requireWildcard(cli.SendMsg(ctx, &Message{Subject: "orders.>", Data: []byte("x")}))
	require.ErrorIs(t, cli.SendMsg(ctx, &Message{Subject: "a\xff"}), ErrInvalidSubject)
	require.NoError(t, cli.SendMsg(ctx, &Message{Subject: "orders.1", Data: []byte("x")}))
	m, err := srv.ReceiveMsg(ctx)
	require.NoError(t, err)
	require.Equal(t, "orders.1", m.Subject)
	require.Equal(t, uint64(1), client.Stats().MessagesSent)
}

// ShutdownWithError closes with the code only after the peer received
// every message sent before it.
func TestShutdownWithErrorDeliversWhatWasSent(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	cli, srv := openNamed(t, client, server, "drain")
	const n = 3000
	got := make(chan int, 1)
	var last error
	go func() {
		count := 0
		for {
			if _, err := srv.Receive(ctx); err != nil {
				last = err
				got <- count
				return
			}
			count++
		}
	}()
	for i := range n {
		require.NoError(t, cli.Send(ctx, seqMsg(i)))
	}
	require.NoError(t, client.ShutdownWithError(ctx, CodeSlowConsumer, "too slow"))
	require.Equal(t, n, <-got, "every message sent before the close was received")
	require.ErrorIs(t, last, CodeSlowConsumer)
	require.NoError(t, client.ShutdownWithError(ctx, CodeNoError, "again"), "idempotent")
	require.NoError(t, client.Close())
	require.ErrorIs(t, cli.Send(ctx, []byte("late")), CodeSlowConsumer)
}

// A ShutdownWithError whose peer does not read is bounded by its ctx and
// reports what was not acknowledged.
func TestShutdownWithErrorBoundedByItsContext(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	cli, srv := openNamed(t, client, server, "stuck")
	require.NoError(t, cli.Send(ctx, []byte("never read")))
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err := client.ShutdownWithError(short, CodeSlowConsumer, "stuck")
	require.ErrorIs(t, err, ErrInDoubt)
	waitEnd(t, server)
	var ce *ConnError
	require.ErrorAs(t, context.Cause(server.Context()), &ce)
	require.Equal(t, CodeSlowConsumer, ce.Code)
	_, err = srv.Receive(ctx)
	require.False(t, errors.Is(err, io.EOF))
	require.Len(t, cli.Unacked(), 1)
}

// After DialEarly, a message with headers waits for the server's HELLO (to
// know whether it may carry them) while a plain replay-safe one goes in
// 0-RTT data at once.
func TestEarlyMessageWithHeadersWaitsForHello(t *testing.T) {
	c, proxy := dialEarlyHeldBack(t, "early")
	ctx := testCtx(t)
	ch := c.EarlyChannels()[0]
	withHeader := &Message{Header: Header{{"k", "v"}}, Data: []byte("headers"), ReplaySafe: true}
	require.False(t, c.HeadersEnabled(), "not known before the server's HELLO")
	require.ErrorIs(t, ch.TrySendMsg(withHeader), ErrWouldBlock)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, ch.SendMsg(short, withHeader), context.DeadlineExceeded)
	require.NoError(t, ch.SendMsg(ctx, &Message{Data: []byte("plain"), ReplaySafe: true}), "a plain message goes at once")

	proxy.SetDropRate(udpproxy.ToClient, 0)
	require.NoError(t, ch.SendMsg(ctx, withHeader))
	require.True(t, c.HeadersEnabled())
	for _, want := range []string{"plain", "headers"} {
		msg, err := ch.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, want, string(msg))
	}
}

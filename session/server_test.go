package session

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/internal/wire"
	"github.com/quicmsg/quicmsg/transport"
)

func TestThousandClientsLeaveNoSessionBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 handshakes")
	}
	var got atomic.Int64
	srv, addr := startServer(t, nil, HandlerFunc(func(ctx context.Context, s *Session, m Message) {
		got.Add(1)
	}))
	baseline := goleak.IgnoreCurrent()

	const clients = 1000
	var g errgroup.Group
	g.SetLimit(16)
	for i := range clients {
		g.Go(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := transport.Dial(ctx, addr, testTLS(t).client, nil)
			if err != nil {
				return err
			}
			ch, err := c.OpenChannel(ctx, "hello")
			if err != nil {
				return err
			}
			if err := ch.Send(ctx, []byte(fmt.Sprintf("client %d", i))); err != nil {
				return err
			}
			return c.Close()
		})
	}
	require.NoError(t, g.Wait())
	// Real sockets, so the wall clock: the server learns of each client leaving from quic-go (see helpers_test.go).
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 0 }, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return got.Load() == clients }, 10*time.Second, time.Millisecond, "every message handled")
	st := srv.Stats()
	require.Equal(t, uint64(clients), st.SessionsAccepted)
	require.Zero(t, st.SessionsRefused)
	// Goroutines return to where they were before the clients came.
	goleak.VerifyNone(t, baseline)
}

func TestSessionRemovedWhenClientVanishes(t *testing.T) {
	cfg := &Config{Transport: transport.Config{IdleTimeout: 500 * time.Millisecond, KeepAlivePeriod: 100 * time.Millisecond}}
	srv, addr := startServer(t, cfg, echo)

	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	tr := &quic.Transport{Conn: udp}
	ctx := testCtx(t)
	c, err := transport.DialTransport(ctx, tr, addr, testTLS(t).client, &transport.Config{IdleTimeout: 500 * time.Millisecond})
	require.NoError(t, err)
	ch, err := c.OpenChannel(ctx, "x")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("ping")))
	_, err = ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, srv.ActiveSessions())

	// The client disappears without a word: no CONNECTION_CLOSE is sent.
	require.NoError(t, tr.Close())
	require.NoError(t, udp.Close())
	// Real sockets, so the wall clock: the vanished client is found by the real QUIC idle timeout (see helpers_test.go).
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 0 }, 20*time.Second, 10*time.Millisecond)
	_ = c.CloseWithError(transport.CodeNoError, "")
}

func TestFloodAtStalledHandlerTurnsBackpressureOn(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var seen []uint32
	srv, addr := startServer(t, &Config{PendingCap: 1000}, HandlerFunc(func(ctx context.Context, s *Session, m Message) {
		<-release
		mu.Lock()
		seen = append(seen, binary.BigEndian.Uint32(m.Data))
		mu.Unlock()
	}))
	c := dial(t, addr, nil)
	ctx := testCtx(t)
	ch, err := c.OpenChannel(ctx, "flood")
	require.NoError(t, err)

	const n = 3000
	sendDone := make(chan error, 1)
	go func() {
		for i := range n {
			msg := make([]byte, 64)
			binary.BigEndian.PutUint32(msg, uint32(i))
			if err := ch.Send(ctx, msg); err != nil {
				sendDone <- err
				return
			}
		}
		sendDone <- ch.Flush(ctx)
	}()

	var sess *Session
	// Real sockets, so the wall clock: the flood and SLOW_DOWN/RESUME cross QUIC (see helpers_test.go).
	require.Eventually(t, func() bool {
		ss := srv.Sessions()
		if len(ss) == 1 {
			sess = ss[0]
		}
		return sess != nil && sess.BackpressureActive() && c.PeerSlowedDown()
	}, 20*time.Second, 5*time.Millisecond)
	require.LessOrEqual(t, sess.Stats().Pending, 1000, "the pending queue stays within its cap")
	require.GreaterOrEqual(t, srv.Stats().BackpressureEvents, uint64(1))
	require.ErrorIs(t, ch.TrySend([]byte("x")), transport.ErrSlowDown)

	close(release)
	require.NoError(t, <-sendDone)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n
	}, 20*time.Second, 5*time.Millisecond)
	mu.Lock()
	for i, v := range seen {
		require.Equal(t, uint32(i), v, "messages arrive in order and intact")
	}
	mu.Unlock()
	require.Eventually(t, func() bool { return !sess.BackpressureActive() && !c.PeerSlowedDown() }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 1, srv.ActiveSessions(), "backpressure never disconnects under the block policy")
}

func TestFloodWithShedPolicyDisconnectsOverloadedSender(t *testing.T) {
	// Small windows and messages keep the allowance after SLOW_DOWN (what a
	// conforming client may still have under way) at 256 KiB.
	srv, addr := startStalledSheddingServer(t, Config{PendingCap: 1000})
	healthy := dial(t, addr, nil)

	// An abusive client that ignores SLOW_DOWN and keeps writing.
	raw := dialRaw(t, addr)
	var frames []byte
	frames = wire.AppendChannelHeader(frames, "flood")
	for range 8000 {
		frames = wire.AppendMessage(frames, 0, make([]byte, 64))
	}
	s, err := raw.qc.OpenStreamSync(testCtx(t))
	require.NoError(t, err)
	// The write may end early with the server's close: that is the point.
	_, _ = s.Write(frames)

	<-raw.qc.Context().Done()
	var ae *quic.ApplicationError
	require.ErrorAs(t, context.Cause(raw.qc.Context()), &ae)
	require.Equal(t, quic.ApplicationErrorCode(transport.CodeOverloaded), ae.ErrorCode)
	require.Contains(t, ae.ErrorMessage, "pending cap 1000")
	require.Equal(t, uint64(1), srv.Stats().OverloadDisconnects)
	require.NoError(t, healthy.Context().Err(), "other sessions are unaffected")
}

func TestFiftySessionsEightChannelsBothDirections(t *testing.T) {
	srv, addr := startServer(t, nil, echo)
	const sessions, channels, msgs = 50, 8, 100
	ctx := testCtx(t)
	var g errgroup.Group
	for i := range sessions {
		c := dial(t, addr, nil)
		for j := range channels {
			g.Go(func() error { return exchange(ctx, c, fmt.Sprintf("s%d-c%d", i, j), msgs) })
		}
	}
	require.NoError(t, g.Wait())
	st := srv.Stats()
	require.Equal(t, uint64(sessions*channels*msgs), st.MessagesHandled)
}

// exchange sends n checksummed messages on a new channel while reading the
// echoes, and checks that every echo is intact and in order.
func exchange(ctx context.Context, c *transport.Conn, name string, n int) error {
	ch, err := c.OpenChannel(ctx, name)
	if err != nil {
		return err
	}
	if err := testenv.Exchange(ctx, ch, name, n); err != nil {
		return err
	}
	return ch.Close()
}

func TestOversizedFrameResetsOnlyItsChannel(t *testing.T) {
	_, addr := startServer(t, &Config{Transport: transport.Config{MaxMessageSize: 1024}}, echo)
	raw := dialRaw(t, addr)
	good := raw.openRaw(t, wire.AppendMessage(wire.AppendChannelHeader(nil, "good"), 0, []byte("fine")))
	bad := raw.openRaw(t, wire.AppendMessage(wire.AppendChannelHeader(nil, "bad"), 0, make([]byte, 2048)))
	require.Equal(t, transport.CodeMessageTooLarge, streamResetCode(t, bad))

	// The session and its other channel carry on.
	buf := make([]byte, 64)
	_ = good.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := good.Read(buf)
	require.NoError(t, err)
	_, size, hdr, err := wire.ParseMessageHeader(buf[:n], 1024)
	require.NoError(t, err)
	require.Equal(t, "fine", string(buf[hdr:hdr+size]))
	require.NoError(t, raw.qc.Context().Err())
}

func TestSendOverPeerLimitIsRefusedLocally(t *testing.T) {
	_, addr := startServer(t, &Config{Transport: transport.Config{MaxMessageSize: 1024}}, echo)
	c := dial(t, addr, nil)
	ctx := testCtx(t)
	ch, err := c.OpenChannel(ctx, "big")
	require.NoError(t, err)
	err = ch.Send(ctx, make([]byte, 2048))
	var tl *transport.MessageTooLargeError
	require.ErrorAs(t, err, &tl)
	require.Equal(t, 1024, tl.Limit)
	require.ErrorIs(t, err, transport.CodeMessageTooLarge)
	require.NoError(t, ch.Send(ctx, []byte("small")))
	msg, err := ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "small", string(msg))
}

func TestMalformedChannelHeaderResetsOnlyThatStream(t *testing.T) {
	_, addr := startServer(t, nil, echo)
	raw := dialRaw(t, addr)
	for _, hdr := range [][]byte{
		{wire.StreamChannel, 0},          // empty name
		{wire.StreamChannel, 2, 0xff, 0}, // not UTF-8
		{0x7f, 1, 'x'},                   // unknown stream type
		{wire.StreamControl},             // a second control stream
	} {
		s := raw.openRaw(t, hdr)
		require.Equal(t, transport.CodeProtocolError, streamResetCode(t, s), "header %x", hdr)
	}
	good := raw.openRaw(t, wire.AppendMessage(wire.AppendChannelHeader(nil, "ok"), 0, []byte("still here")))
	buf := make([]byte, 64)
	_ = good.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := good.Read(buf)
	require.NoError(t, err)
	require.NoError(t, raw.qc.Context().Err())
}

func TestUnknownControlFrameClosesOnlyThatSession(t *testing.T) {
	srv, addr := startServer(t, nil, echo)
	healthy := dial(t, addr, nil)
	raw := dialRaw(t, addr)
	_, err := raw.ctrl.Write([]byte{0x3f, 0})
	require.NoError(t, err)
	<-raw.qc.Context().Done()
	var ae *quic.ApplicationError
	require.ErrorAs(t, context.Cause(raw.qc.Context()), &ae)
	require.Equal(t, quic.ApplicationErrorCode(transport.CodeProtocolError), ae.ErrorCode)
	require.Contains(t, ae.ErrorMessage, "unknown control frame type 0x3f")

	ctx := testCtx(t)
	ch, err := healthy.OpenChannel(ctx, "still")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("up")))
	msg, err := ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "up", string(msg))
	// Real sockets, so the wall clock: the sessions start and end as the server reads real connections (see helpers_test.go).
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 1 }, 10*time.Second, 5*time.Millisecond)
}

func TestWrongALPNIsRefusedInHandshake(t *testing.T) {
	_, addr := startServer(t, nil, echo)
	tc := testTLS(t).client.Clone()
	tc.NextProtos = []string{"h3"}
	ctx := testCtx(t)
	_, err := quic.DialAddr(ctx, addr, tc, nil)
	var te *quic.TransportError
	require.ErrorAs(t, err, &te)
	require.Equal(t, quic.TransportErrorCode(0x100+120), te.ErrorCode, "TLS alert no_application_protocol")
}

func TestClientWithoutCAIsRefused(t *testing.T) {
	srv, addr := startServer(t, nil, echo)
	healthy := dial(t, addr, nil)
	ctx := testCtx(t)
	_, err := transport.Dial(ctx, addr, &tls.Config{ServerName: "localhost"}, nil)
	require.ErrorIs(t, err, transport.ErrUntrusted)
	require.Contains(t, err.Error(), "certificate is not trusted")
	require.NoError(t, healthy.Context().Err())
	require.Equal(t, 1, srv.ActiveSessions())
}

func TestMaxSessionsRefusesWithCode(t *testing.T) {
	srv, addr := startServer(t, &Config{MaxSessions: 2}, echo)
	dial(t, addr, nil)
	dial(t, addr, nil)
	// Real sockets, so the wall clock: the sessions start once the server has read each HELLO (see helpers_test.go).
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 2 }, 10*time.Second, 5*time.Millisecond)
	// The refusal comes right after the HELLO exchange: Dial either fails
	// with it or returns a connection that ends with it.
	ctx := testCtx(t)
	c, err := transport.Dial(ctx, addr, testTLS(t).client, nil)
	if err == nil {
		<-c.Context().Done()
		err = context.Cause(c.Context())
	}
	require.ErrorIs(t, err, transport.CodeTooManySessions)
	require.Contains(t, err.Error(), "limit of 2 sessions")
	require.Equal(t, uint64(1), srv.Stats().SessionsRefused)
}

func TestShutdownSendsGoAwayAndDrains(t *testing.T) {
	var handled atomic.Int64
	srv, addr, serveDone := serve(t, nil, HandlerFunc(func(ctx context.Context, s *Session, m Message) { handled.Add(1) }))

	c := dial(t, addr, nil)
	ctx := testCtx(t)
	ch, err := c.OpenChannel(ctx, "work")
	require.NoError(t, err)
	for range 100 {
		require.NoError(t, ch.Send(ctx, []byte("job")))
	}
	require.NoError(t, ch.Flush(ctx))
	// The drain of a session: wait until the server has made one of the
	// connection (Dial returns once the listener answered its HELLO,
	// before Serve admits it; TestConnectionDuringShutdownGetsGoAway is
	// the connection that arrives during Shutdown).
	// Real sockets, so the wall clock.
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 1 }, 10*time.Second, 5*time.Millisecond)

	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- srv.Shutdown(ctx) }()
	select {
	case <-c.GoAwayReceived():
	case <-ctx.Done():
		t.Fatal("no GOAWAY")
	}
	ga, ok := c.PeerGoAway()
	require.True(t, ok)
	require.Equal(t, transport.CodeGoingAway, ga.Code)
	// The client finishes its work and leaves, as asked.
	require.NoError(t, c.Close())
	require.NoError(t, <-shutdownDone)
	require.ErrorIs(t, <-serveDone, ErrServerClosed)
	require.Equal(t, int64(100), handled.Load())
	require.Zero(t, srv.ActiveSessions())
}

// A connection that arrives while Shutdown drains is a session too: it is
// told to go away, and its messages are handled, not cut off.
func TestConnectionDuringShutdownGetsGoAway(t *testing.T) {
	var handled atomic.Int64
	srv, addr, serveDone := serve(t, nil, HandlerFunc(func(ctx context.Context, s *Session, m Message) { handled.Add(1) }))

	ctx := testCtx(t)
	first, shutdownDone := beginDrain(t, srv, addr) // the drain has begun; first stays

	late := dial(t, addr, nil)
	ch, err := late.OpenChannel(ctx, "work")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("job")))
	select {
	case <-late.GoAwayReceived():
	case <-late.Context().Done():
		t.Fatalf("the late connection was closed instead: %v", context.Cause(late.Context()))
	case <-ctx.Done():
		t.Fatal("no GOAWAY for the late connection")
	}
	require.NoError(t, late.Close())
	require.NoError(t, first.Close())
	require.NoError(t, <-shutdownDone)
	require.ErrorIs(t, <-serveDone, ErrServerClosed)
	require.Equal(t, int64(1), handled.Load(), "the late session's message was handled")
	require.Equal(t, uint64(2), srv.Stats().SessionsAccepted)
}

func TestShutdownDeadlineClosesStragglers(t *testing.T) {
	srv, addr, serveDone := serve(t, nil, echo)
	c := dial(t, addr, nil)
	// Real sockets, so the wall clock: the straggler is a real client that must see GOING_AWAY (the deadline logic alone runs on synctest in TestCloseWaitsCloseTimeoutThenCancelsHandlers) (see helpers_test.go).
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 1 }, 10*time.Second, 5*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, srv.Shutdown(ctx), context.DeadlineExceeded)
	<-c.Context().Done()
	require.ErrorIs(t, context.Cause(c.Context()), transport.CodeGoingAway)
	require.ErrorIs(t, <-serveDone, ErrServerClosed)
}

func TestBroadcastAndServerSend(t *testing.T) {
	srv, addr := startServer(t, nil, echo)
	ctx := testCtx(t)
	conns, news := dialWithChannel(t, addr, "news", 3)
	dial(t, addr, nil) // without the channel
	// Real sockets, so the wall clock: the sessions and their channels arrive over QUIC (see helpers_test.go).
	require.Eventually(t, func() bool { return sessionsWith(srv, "news") == 3 && srv.ActiveSessions() == 4 },
		10*time.Second, 5*time.Millisecond)
	r := srv.Broadcast("news", []byte("hello all"))
	require.NoError(t, r.Err())
	require.Equal(t, BroadcastResult{Delivered: 3, NotOpen: 1}, r)
	for _, ch := range news {
		msg, err := ch.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, "hello all", string(msg))
	}
	require.NoError(t, srv.Send(ctx, conns[0].SessionID(), "news", []byte("just you")))
	msg, err := news[0].Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "just you", string(msg))
	require.ErrorIs(t, srv.Send(ctx, [16]byte{1}, "news", nil), ErrNoSession)
	require.NoError(t, srv.Disconnect(conns[1].SessionID(), transport.CodeDisconnected, "bye"))
	<-conns[1].Context().Done()
	require.ErrorIs(t, context.Cause(conns[1].Context()), transport.CodeDisconnected)
}

// sessionsWith counts the server's sessions that have channel open.
// dialWithChannel dials n clients that each open channel.
func dialWithChannel(t *testing.T, addr, channel string, n int) ([]*transport.Conn, []*transport.Channel) {
	t.Helper()
	var conns []*transport.Conn
	var chans []*transport.Channel
	for range n {
		c := dial(t, addr, nil)
		ch, err := c.OpenChannel(testCtx(t), channel)
		require.NoError(t, err)
		conns, chans = append(conns, c), append(chans, ch)
	}
	return conns, chans
}

// startStalledSheddingServer runs a server under OverflowDisconnect whose
// handler stalls until the test ends, with 1 KiB messages and 64 KiB
// receive windows, which keep the allowance after SLOW_DOWN (what a
// conforming client may still have under way) small; cfg sets the rest.
func startStalledSheddingServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	release := make(chan struct{})
	cfg.Overflow = OverflowDisconnect
	cfg.Transport = transport.Config{MaxMessageSize: 1024, MaxConnectionReceiveWindow: 64 << 10, MaxStreamReceiveWindow: 64 << 10}
	srv, addr := startServer(t, &cfg, HandlerFunc(func(ctx context.Context, s *Session, m Message) {
		select {
		case <-release:
		case <-ctx.Done():
		}
	}))
	// Registered after the server's, so it runs first: Close lets the
	// handler drain what was received.
	t.Cleanup(func() { close(release) })
	return srv, addr
}

func sessionsWith(srv *Server, channel string) int {
	n := 0
	for _, s := range srv.Sessions() {
		if _, ok := s.Channel(channel); ok {
			n++
		}
	}
	return n
}

func TestDuplicateChannelNameIsRefused(t *testing.T) {
	_, addr := startServer(t, nil, echo)
	c := dial(t, addr, nil)
	ctx := testCtx(t)
	a, err := c.OpenChannel(ctx, "same")
	require.NoError(t, err)
	require.NoError(t, a.Send(ctx, []byte("1")))
	_, err = a.Receive(ctx)
	require.NoError(t, err)
	b, err := c.OpenChannel(ctx, "same")
	require.NoError(t, err)
	_, err = b.Receive(ctx)
	require.ErrorIs(t, err, transport.CodeDuplicateChannel)
	require.NoError(t, a.Send(ctx, []byte("2")))
	msg, err := a.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "2", string(msg))
}

func TestChannelHooksSeeOpenAndClose(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	cfg := &Config{
		OnChannelOpen: func(s *Session, ch string) {
			mu.Lock()
			seen = append(seen, "open "+ch)
			mu.Unlock()
		},
		OnChannelClose: func(s *Session, ch string) {
			mu.Lock()
			seen = append(seen, "close "+ch)
			mu.Unlock()
		},
	}
	srv, addr := startServer(t, cfg, echo)
	c := dial(t, addr, nil)
	ctx := testCtx(t)
	ch, err := c.OpenChannel(ctx, "topic")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("x")))
	_, err = ch.Receive(ctx)
	require.NoError(t, err)
	require.NoError(t, srv.Sessions()[0].SendOpen(ctx, "from-server", []byte("y")))
	require.NoError(t, c.Close())
	// Real sockets, so the wall clock: the channel closes over QUIC (see helpers_test.go).
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 4
	}, 10*time.Second, time.Millisecond)
	require.ElementsMatch(t, []string{"open topic", "open from-server", "close topic", "close from-server"}, seen)
}

package client

import (
	"context"
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// ErrClosed matches net.ErrClosed, as transport.ErrClosed does, so that
// code written against net.Conn recognises a closed client.
func TestErrClosedMatchesNetErrClosed(t *testing.T) {
	require.ErrorIs(t, ErrClosed, net.ErrClosed)
	synctest.Test(t, func(t *testing.T) {
		c := disconnectedClient(t, nil)
		ch, err := c.Channel(t.Context(), "jobs")
		require.NoError(t, err)
		require.NoError(t, c.Close())
		require.ErrorIs(t, ch.Send(t.Context(), []byte("late")), net.ErrClosed)
		_, err = c.Channel(t.Context(), "other")
		require.ErrorIs(t, err, net.ErrClosed)
	})
}

// disconnectedClient returns a client that has no connection and never
// dials: its channels buffer what they are sent. No socket is opened, so it
// runs inside a synctest bubble.
func disconnectedClient(t *testing.T, cfg *Config) *Client {
	t.Helper()
	conf, err := cfg.withDefaults()
	require.NoError(t, err)
	c := newClient(conf, testClientTLSStub(), "127.0.0.1:1")
	c.status = StatusReconnecting
	c.startEvents()
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Closing a channel while disconnected drops what waits in the reconnect
// buffer, reports it, and frees its room; the client forgets the channel,
// and asking for the name again gives a fresh, working channel.
func TestChannelCloseReportsBufferedMessagesAndLeavesTheClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := disconnectedClient(t, &Config{ReconnectBufferSize: 100})
		ctx := t.Context()
		ch, err := c.Channel(ctx, "jobs")
		require.NoError(t, err)
		for range 3 {
			require.NoError(t, ch.Send(ctx, make([]byte, 30)))
		}
		require.ErrorIs(t, ch.TrySend(make([]byte, 30)), ErrBufferFull)

		err = ch.Close()
		var ue *UndeliveredError
		require.ErrorAs(t, err, &ue)
		require.Equal(t, 3, ue.Messages)
		require.ErrorIs(t, err, ErrClosed)
		require.Equal(t, err, ch.Close(), "Close is idempotent")
		st := c.Stats()
		require.Zero(t, st.BufferedMessages)
		require.Zero(t, st.BufferedBytes)
		require.Equal(t, uint64(3), st.MessagesFailed)
		require.Empty(t, c.channelNames(), "the client forgot the channel")

		require.ErrorIs(t, ch.Send(ctx, []byte("x")), ErrClosed)
		_, err = ch.Receive(ctx)
		require.ErrorIs(t, err, ErrClosed)

		fresh, err := c.Channel(ctx, "jobs")
		require.NoError(t, err)
		require.NotSame(t, ch, fresh)
		require.NoError(t, fresh.TrySend(make([]byte, 30)), "the closed channel's room was freed")
		require.Equal(t, 1, c.Stats().BufferedMessages)
	})
}

// A closed channel is no longer part of the client, and a fresh one by the
// same name works once the server has let the old one go.
func TestChannelCloseOnLiveConnection(t *testing.T) {
	released := make(chan string, 1)
	srv, addr := startEchoServer(t, &session.Config{OnChannelClose: func(_ *session.Session, name string) {
		select {
		case released <- name:
		default: // the fresh channel, at cleanup
		}
	}})
	ctx := testCtx(t)
	c, ch := ticketedClient(ctx, t, addr, nil)
	require.NoError(t, ch.Close())
	require.ErrorIs(t, ch.Send(ctx, []byte("two")), ErrClosed)
	_, err := ch.Receive(ctx)
	require.ErrorIs(t, err, net.ErrClosed)
	require.Empty(t, c.channelNames())
	// The server may refuse the name until it has read the old channel to
	// its end (PROTOCOL.md, DUPLICATE_CHANNEL).
	require.Equal(t, "echo", <-released)

	fresh, err := c.Channel(ctx, "echo")
	require.NoError(t, err)
	require.NotSame(t, ch, fresh)
	require.NoError(t, fresh.Send(ctx, []byte("three")))
	got, err := fresh.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "three", string(got))
	require.Equal(t, uint64(1), srv.Stats().SessionsAccepted)
}

// ReceiveBuf stores a message that fits in the caller's buffer, as
// transport.Channel.ReceiveBuf does, and allocates for one that does not.
func TestChannelReceiveBufReusesTheBuffer(t *testing.T) {
	_, addr := startEchoServer(t, nil)
	ctx := testCtx(t)
	_, ch := ticketedClient(ctx, t, addr, nil)
	buf := make([]byte, 0, 16)
	require.NoError(t, ch.Send(ctx, []byte("small")))
	got, err := ch.ReceiveBuf(ctx, buf)
	require.NoError(t, err)
	require.Equal(t, "small", string(got))
	require.Same(t, &buf[:1][0], &got[0], "the message went into buf")

	big := make([]byte, 100)
	require.NoError(t, ch.Send(ctx, big))
	got, err = ch.ReceiveBuf(ctx, buf)
	require.NoError(t, err)
	require.Len(t, got, 100)
	require.NotSame(t, &buf[:1][0], &got[0])
}

// EventClosed reaches OnEvent even when the event queue is full: the queue
// keeps a place for it. Before, emit dropped it like any other event.
func TestEventClosedIsDeliveredFromAFullQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var got []Event
		c := disconnectedClient(t, &Config{EventQueueSize: 2, OnEvent: func(e Event) {
			<-release
			got = append(got, e)
		}})
		for i := range 10 {
			c.emit(Event{Type: EventReconnecting, Attempt: i})
		}
		synctest.Wait()
		dropped := c.Stats().EventsDropped
		require.Positive(t, dropped, "the queue overflowed")

		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		synctest.Wait()
		close(release)
		require.NoError(t, <-closed)
		require.Equal(t, dropped, c.Stats().EventsDropped, "EventClosed was not dropped")
		require.Len(t, got, 10-int(dropped)+1)
		require.Equal(t, EventClosed, got[len(got)-1].Type)
	})
}

// Shutdown waits for nothing it cannot do: with no connection it returns at
// once, even with a context that has already ended, and reports what the
// buffer held.
func TestShutdownWithoutConnectionReportsTheBuffer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := disconnectedClient(t, nil)
		ch, err := c.Channel(t.Context(), "jobs")
		require.NoError(t, err)
		require.NoError(t, ch.Send(t.Context(), []byte("waiting")))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err = c.Shutdown(ctx)
		var ue *UndeliveredError
		require.ErrorAs(t, err, &ue)
		require.Equal(t, 1, ue.Messages)
		require.True(t, errors.Is(err, ErrClosed))
		require.Equal(t, err, c.Close(), "every call returns the first one's result")
	})
}

// Shutdown closes gracefully while its context lasts and at once when it
// ends: against a server that cannot confirm the close (its handler is
// stuck and its pending queue full, so it stops reading), Shutdown waits
// until its context is cancelled, then reports the messages it wrote as in
// doubt and those it could not write as undelivered.
func TestShutdownWaitsForItsContextThenClosesAtOnce(t *testing.T) {
	stuck, handling := make(chan struct{}), make(chan struct{}, 1)
	_, addr := startTestServer(t, &session.Config{PendingCap: 1}, session.HandlerFunc(
		func(context.Context, *session.Session, session.Message) {
			select {
			case handling <- struct{}{}:
			default:
			}
			<-stuck
		}))
	t.Cleanup(func() { close(stuck) }) // before the server closes
	ctx := testCtx(t)
	c, err := Dial(ctx, addr, testClientTLS(t), nil)
	require.NoError(t, err)
	ch, err := c.Channel(ctx, "jobs")
	require.NoError(t, err)
	const sent = 3
	for range sent {
		require.NoError(t, ch.Send(ctx, []byte("job")))
	}
	<-handling
	conn := c.Conn()

	sctx, cancel := context.WithCancel(ctx)
	shut := make(chan error, 1)
	go func() { shut <- c.Shutdown(sctx) }()
	require.Empty(t, shut, "Shutdown waits while its context lasts")
	cancel()
	err = <-shut
	require.ErrorIs(t, err, transport.ErrInDoubt)
	st := c.Stats()
	require.Positive(t, st.MessagesInDoubt)
	// The server may have acknowledged what its reader took before the
	// Shutdown: those were delivered, neither in doubt nor failed.
	acked := conn.Stats().MessagesAcked
	require.Equal(t, uint64(sent), acked+st.MessagesInDoubt+st.MessagesFailed, "every accepted message is accounted for")
	require.Equal(t, err, c.Close())
}

// A Send waiting for room in a full reconnect buffer ends with ErrClosed
// when its channel is closed, instead of waiting for space that other
// channels hold.
func TestChannelCloseEndsASendWaitingForBufferSpace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := disconnectedClient(t, &Config{ReconnectBufferSize: 10})
		ctx := t.Context()
		full, err := c.Channel(ctx, "full")
		require.NoError(t, err)
		require.NoError(t, full.Send(ctx, make([]byte, 10)))
		waiting, err := c.Channel(ctx, "waiting")
		require.NoError(t, err)
		sent := make(chan error, 1)
		go func() { sent <- waiting.Send(ctx, []byte("x")) }()
		synctest.Wait()
		require.Empty(t, sent, "Send waits for room")
		require.NoError(t, waiting.Close())
		require.ErrorIs(t, <-sent, ErrClosed)
		require.Equal(t, 1, c.Stats().BufferedMessages, "the other channel keeps its message")
	})
}

// stuckServer starts a server whose handler never returns, with a small
// per-channel window, so that a client's sends pile up unwritten; the
// returned channel tells when the first message reached the handler.
func stuckServer(t *testing.T) (addr string, handling <-chan struct{}) {
	stuck, h := make(chan struct{}), make(chan struct{}, 1)
	_, addr = startTestServer(t, &session.Config{PendingCap: 1, Transport: transport.Config{
		MaxStreamReceiveWindow: 64 << 10, MaxConnectionReceiveWindow: 128 << 10,
	}}, session.HandlerFunc(func(context.Context, *session.Session, session.Message) {
		select {
		case h <- struct{}{}:
		default:
		}
		<-stuck
	}))
	t.Cleanup(func() { close(stuck) }) // before the server closes
	return addr, h
}

// A later Shutdown whose context ends first cuts short a first Shutdown
// that would wait for ever: neither waits behind the other's bound.
func TestLaterShutdownCutsShortTheFirst(t *testing.T) {
	addr, handling := stuckServer(t)
	ctx := testCtx(t)
	c, err := Dial(ctx, addr, testClientTLS(t), nil)
	require.NoError(t, err)
	ch, err := c.Channel(ctx, "jobs")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("job")))
	<-handling
	// The session took the message: the server acknowledged it.
	conn := c.Conn()
	require.Eventually(t, func() bool { return conn.Stats().MessagesAcked == 1 }, 10*time.Second, time.Millisecond)

	first := make(chan error, 1)
	go func() { first <- c.Shutdown(context.Background()) }()
	// Real sockets, so the wall clock: the first Shutdown has begun once
	// the client says it is closed.
	require.Eventually(t, func() bool { return c.Status() == StatusClosed }, 10*time.Second, time.Millisecond)
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	later := make(chan error, 1)
	go func() { later <- c.Shutdown(sctx) }()
	for _, res := range []chan error{later, first} {
		select {
		case <-res:
		case <-ctx.Done():
			t.Fatal("the later Shutdown did not cut the first one short")
		}
	}
	st := c.Stats()
	require.Zero(t, st.MessagesInDoubt+st.MessagesFailed, "the acknowledged message is delivered, though the close was cut short")
}

// Channel.Close reports, as the client's Shutdown does, the messages its
// connection accepted but could not write before the close timeout: in an
// UndeliveredError and in Stats.MessagesFailed. The server is a bare
// transport listener that never reads the channel, so that flow control,
// not SLOW_DOWN, holds the messages back.
func TestChannelCloseReportsWhatItsConnectionDidNotWrite(t *testing.T) {
	ctx := testCtx(t)
	serverTLS, _ := testTLS(t)
	ln, err := transport.Listen("127.0.0.1:0", serverTLS, &transport.Config{
		MaxStreamReceiveWindow: 64 << 10, MaxConnectionReceiveWindow: 128 << 10,
	})
	require.NoError(t, err)
	accepted := make(chan *transport.Conn, 1)
	go func() {
		if conn, err := ln.Accept(ctx); err == nil {
			accepted <- conn
		}
		close(accepted)
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		for conn := range accepted {
			_ = conn.CloseWithError(transport.CodeNoError, "")
		}
	})
	c, err := Dial(ctx, ln.Addr().String(), testClientTLS(t), &Config{Transport: transport.Config{
		CloseTimeout: 300 * time.Millisecond, SendBufferSize: 1 << 20,
	}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ch, err := c.Channel(ctx, "jobs")
	require.NoError(t, err)
	msg := make([]byte, 16<<10)
	const sent = 32 // 512 KiB: far more than the server's window
	for range sent {
		require.NoError(t, ch.Send(ctx, msg))
	}

	err = ch.Close()
	var ue *UndeliveredError
	require.ErrorAs(t, err, &ue)
	require.Positive(t, ue.Messages)
	st := c.Stats()
	require.Equal(t, uint64(ue.Messages), st.MessagesFailed, "what Close reports is what the stats count")
	require.Less(t, ue.Messages, sent, "what was written is not counted as undelivered")
}

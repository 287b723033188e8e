package client

import (
	"context"
	"errors"
	"net"
	"testing"
	"testing/synctest"

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

// Shutdown closes gracefully while its context lasts and at once after: with
// a context that has already ended, the client closes the connection itself,
// where Close's graceful close waits for the server to confirm by closing
// it.
func TestShutdownWithEndedContextClosesAtOnce(t *testing.T) {
	ends := make(chan error, 2)
	_, addr := startEchoServer(t, &session.Config{OnSessionEnd: func(_ *session.Session, cause error) { ends <- cause }})
	for _, graceful := range []bool{true, false} {
		ctx := testCtx(t)
		c, _ := ticketedClient(ctx, t, addr, nil)
		if graceful {
			require.NoError(t, c.Close())
		} else {
			ended, cancel := context.WithCancel(ctx)
			cancel()
			_ = c.Shutdown(ended) // what it reports depends on what was confirmed
		}
		var ce *transport.ConnError
		require.ErrorAs(t, <-ends, &ce)
		require.Equal(t, transport.CodeNoError, ce.Code)
		if graceful {
			require.False(t, ce.Remote, "the server read everything and closed, confirming")
		} else {
			require.True(t, ce.Remote, "the client closed at once")
		}
	}
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

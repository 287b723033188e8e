package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"
)

func TestPeerSlowDownHoldsSendsUntilResume(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "flow")
	require.NoError(t, err)
	sch, err := server.AcceptChannel(ctx)
	require.NoError(t, err)

	require.NoError(t, server.SlowDown())
	require.NoError(t, server.SlowDown(), "repeated signals are harmless")
	// Polled, and a short real deadline to show Send blocks: SLOW_DOWN
	// crosses a real UDP socket, which synctest cannot wait for.
	require.Eventually(t, client.PeerSlowedDown, 10*time.Second, time.Millisecond)
	require.ErrorIs(t, ch.TrySend([]byte("x")), ErrSlowDown)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, ch.Send(short, []byte("x")), context.DeadlineExceeded)

	sent := make(chan error, 1)
	go func() { sent <- ch.Send(ctx, []byte("after resume")) }()
	require.NoError(t, server.Resume())
	require.NoError(t, <-sent)
	msg, err := sch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "after resume", string(msg))
	require.False(t, client.PeerSlowedDown())
}

// fillUntilBlocked sends 64 KiB messages with TrySend to a peer that does not
// read, until the send buffer is full.
func fillUntilBlocked(t *testing.T, ch *Channel) {
	t.Helper()
	msg := make([]byte, 64<<10)
	blocked := 0
	for range 10000 {
		err := ch.TrySend(msg)
		if !errors.Is(err, ErrWouldBlock) {
			require.NoError(t, err)
			blocked = 0
			continue
		}
		// Full for a while: QUIC flow control has stopped the writer. A
		// real sleep: the writer blocks on a real socket, which synctest
		// cannot treat as blocked.
		if blocked++; blocked == 5 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the send buffer never filled")
}

func TestTrySendFailsWhenBufferFull(t *testing.T) {
	client, server, _ := pair(t, nil, &Config{SendBufferSize: 128 << 10})
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "full")
	require.NoError(t, err)
	_, err = server.AcceptChannel(ctx)
	require.NoError(t, err)
	fillUntilBlocked(t, ch)
	// A short real deadline: the buffer drains only through a real socket.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, ch.Send(short, make([]byte, 64<<10)), context.DeadlineExceeded)
}

// Close, after Config.CloseTimeout, and Shutdown, once its context ended, do
// not wait for a peer that reads nothing: they cut the channel and report
// what was not written. Both are idempotent.
func TestCloseReportsUnwrittenMessages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close func(*Channel) error
	}{
		{"Close", (*Channel).Close},
		{"Shutdown", func(ch *Channel) error {
			ended, cancel := context.WithCancel(context.Background())
			cancel()
			return ch.Shutdown(ended)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server, _ := pair(t, nil, &Config{SendBufferSize: 128 << 10, CloseTimeout: 200 * time.Millisecond})
			ctx := testCtx(t)
			ch := unreadChannel(t, client, server)
			fillUntilBlocked(t, ch)
			err := tc.close(ch)
			require.ErrorIs(t, err, ErrUnflushed)
			require.Contains(t, err.Error(), "were not written")
			require.Equal(t, err, ch.Close(), "Close is idempotent")
			require.Equal(t, err, ch.Shutdown(ctx), "Shutdown is idempotent")
			require.ErrorIs(t, ch.Send(ctx, []byte("late")), ErrClosed)
			st := client.Stats()
			require.Greater(t, st.MessagesSent, st.MessagesWritten, "the loss is counted, not silent")
		})
	}
}

func TestReceiveHonoursContextAndCarriesOn(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "wait")
	require.NoError(t, err)
	sch, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	// A short real deadline: Receive waits on a real QUIC stream.
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	_, err = sch.Receive(short)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, ch.Send(ctx, []byte("late")))
	msg, err := sch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "late", string(msg))
}

func TestInvalidChannelNames(t *testing.T) {
	client, _, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	for _, name := range []string{"", strings.Repeat("n", 256), "\xff\xfe"} {
		_, err := client.OpenChannel(ctx, name)
		require.ErrorIs(t, err, ErrInvalidName)
	}
	_, err := client.OpenChannel(ctx, strings.Repeat("n", 255))
	require.NoError(t, err)
}

func TestConfigRejectsBadValuesByName(t *testing.T) {
	_, err := Listen("127.0.0.1:0", testTLS(t).server, &Config{MaxMessageSize: 17 << 20})
	require.ErrorContains(t, err, "Config.MaxMessageSize")
	_, err = Listen("127.0.0.1:0", testTLS(t).server, &Config{MaxChannels: -1})
	require.ErrorContains(t, err, "Config.MaxChannels")
	_, err = Listen("127.0.0.1:0", nil, nil)
	require.ErrorContains(t, err, "tls.Config")
	tc := testTLS(t).server.Clone()
	tc.MaxVersion = tls.VersionTLS12
	_, err = Listen("127.0.0.1:0", tc, nil)
	require.ErrorContains(t, err, "TLS 1.3")
}

func TestDialNamesTheFault(t *testing.T) {
	ctx := testCtx(t)
	// Nothing answers on this UDP port.
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer udp.Close()
	_, err = Dial(ctx, udp.LocalAddr().String(), testTLS(t).client, &Config{HandshakeTimeout: 300 * time.Millisecond})
	require.ErrorIs(t, err, ErrNoAnswer)
	require.Contains(t, err.Error(), "is the server running?")
	var de *DialError
	require.ErrorAs(t, err, &de)

	ln := listen(t, nil)
	_, err = Dial(ctx, ln.Addr().String(), &tls.Config{ServerName: "localhost"}, nil)
	require.ErrorIs(t, err, ErrUntrusted)
	require.Contains(t, err.Error(), "certificate is not trusted")
}

func TestListenerCloseEndsItsConnections(t *testing.T) {
	client, _, ln := pair(t, nil, nil)
	require.NoError(t, ln.Close())
	require.NoError(t, ln.Close())
	<-client.Context().Done()
	require.ErrorIs(t, contextCause(client), CodeGoingAway)
	_, err := ln.Accept(testCtx(t))
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, err, net.ErrClosed)
}

func TestChannelErrorsAfterConnectionEnds(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "doomed")
	require.NoError(t, err)
	require.NoError(t, server.CloseWithError(CodeDisconnected, "operator said so"))
	_, err = ch.Receive(ctx)
	require.ErrorIs(t, err, CodeDisconnected)
	var ce *ConnError
	require.ErrorAs(t, err, &ce)
	require.True(t, ce.Remote)
	require.Equal(t, "operator said so", ce.Reason)
	// Polled: the send side learns of the close from the real connection.
	require.Eventually(t, func() bool { return errors.Is(ch.Send(ctx, []byte("x")), CodeDisconnected) }, 10*time.Second, time.Millisecond)
	_, err = client.OpenChannel(ctx, "another")
	require.ErrorIs(t, err, CodeDisconnected)
}

func TestReceiveBufReusesTheCallersBuffer(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "reuse")
	require.NoError(t, err)
	sch, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	big := make([]byte, 100<<10)
	for i := range big {
		big[i] = byte(i)
	}
	require.NoError(t, ch.Send(ctx, []byte("small")))
	require.NoError(t, ch.Send(ctx, big))
	require.NoError(t, ch.Send(ctx, []byte("tiny")))

	buf := make([]byte, 0, 64)
	m, err := sch.ReceiveBuf(ctx, buf)
	require.NoError(t, err)
	require.Equal(t, "small", string(m))
	require.Equal(t, &buf[:1][0], &m[0], "a message that fits lands in buf")
	m, err = sch.ReceiveBuf(ctx, buf)
	require.NoError(t, err)
	require.Equal(t, big, m, "a larger one gets its own slice")
	m, err = sch.ReceiveBuf(ctx, m)
	require.NoError(t, err)
	require.Equal(t, "tiny", string(m))
}

// A dial cut short by its context's deadline says so, and does not blame
// the handshake timeout, which never fired.
func TestDialNamesTheDeadlineThatFired(t *testing.T) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}) // nothing answers
	require.NoError(t, err)
	defer udp.Close()
	ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, udp.LocalAddr().String(), testTLS(t).client, nil)
	require.ErrorIs(t, err, ErrNoAnswer)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var de *DialError
	require.ErrorAs(t, err, &de)
	require.Contains(t, de.Reason, "the dial context's deadline")
	require.NotContains(t, de.Reason, DefaultHandshakeTimeout.String(), "the handshake timeout did not fire")
}

// A server that completes the QUIC handshake but never sends its HELLO is
// reported by the handshake timeout, which is the deadline that fired.
func TestDialNamesTheHelloTimeout(t *testing.T) {
	tc := testTLS(t).server.Clone()
	tc.NextProtos = []string{alpn}
	ql, err := quic.ListenAddr("127.0.0.1:0", tc, nil) // answers QUIC, never HELLO
	require.NoError(t, err)
	defer ql.Close()
	_, err = Dial(testCtx(t), ql.Addr().String(), testTLS(t).client, &Config{HandshakeTimeout: 300 * time.Millisecond})
	require.ErrorIs(t, err, ErrNoAnswer)
	var de *DialError
	require.ErrorAs(t, err, &de)
	require.Contains(t, de.Reason, "no HELLO within 300ms, the handshake timeout")
}

package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/udpproxy"
)

// earlyServer serves echo connections with 0-RTT allowed; keys, when set,
// are its session ticket keys.
func earlyServer(t *testing.T, addr string, keys [][32]byte) *Listener {
	t.Helper()
	tc := testTLS(t).server.Clone()
	if keys != nil {
		tc.SetSessionTicketKeys(keys)
	}
	return earlyServerTLS(t, addr, tc)
}

// earlyServerTLS is earlyServer with the server's TLS config tc.
func earlyServerTLS(t *testing.T, addr string, tc *tls.Config) *Listener {
	t.Helper()
	ln, err := Listen(addr, tc, &Config{Allow0RTT: true})
	require.NoError(t, err)
	go func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				for {
					ch, err := c.AcceptChannel(context.Background())
					if err != nil {
						return
					}
					go func() { _ = echoAll(context.Background(), ch) }()
				}
			}()
		}
	}()
	return ln
}

func resumingClientTLS(t *testing.T) *tls.Config {
	tc := testTLS(t).client.Clone()
	tc.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	return tc
}

// primeTicket makes one full connection so that the client holds a ticket.
func primeTicket(t *testing.T, addr string, tc *tls.Config) {
	t.Helper()
	ctx := testCtx(t)
	c, err := DialEarly(ctx, addr, tc, nil)
	require.NoError(t, err)
	require.False(t, c.Used0RTT(), "no ticket yet")
	ch, err := c.OpenChannel(ctx, "prime")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("x")))
	_, err = ch.Receive(ctx)
	require.NoError(t, err)
	require.NoError(t, c.Close())
}

func TestReconnectUsesZeroRTT(t *testing.T) {
	ln := earlyServer(t, "127.0.0.1:0", nil)
	defer ln.Close()
	tc := resumingClientTLS(t)
	primeTicket(t, ln.Addr().String(), tc)

	ctx := testCtx(t)
	c, err := DialEarly(ctx, ln.Addr().String(), tc, nil, "early")
	require.NoError(t, err)
	defer c.CloseWithError(CodeNoError, "")
	ch := c.EarlyChannels()[0]
	require.Equal(t, "early", ch.Name())
	require.NoError(t, ch.SendReplaySafe(ctx, []byte("in the first flight")))
	msg, err := ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "in the first flight", string(msg))
	<-c.HandshakeComplete()
	require.True(t, c.Used0RTT(), "the client used 0-RTT")
	<-c.Ready()
	require.NotEqual(t, SessionID{}, c.SessionID())
}

// dialEarlyHeldBack dials an echo server with DialEarly and a ticket,
// opening channel, through a proxy that holds the server's answers back, so
// that the handshake cannot complete until the test lets them through
// (proxy.SetDropRate(udpproxy.ToClient, 0)).
func dialEarlyHeldBack(t *testing.T, channel string) (*Conn, *udpproxy.Proxy) {
	t.Helper()
	ln := earlyServer(t, "127.0.0.1:0", nil)
	t.Cleanup(func() { _ = ln.Close() })
	proxy, err := udpproxy.New(ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	tc := resumingClientTLS(t)
	primeTicket(t, proxy.Addr().String(), tc)
	proxy.SetDropRate(udpproxy.ToClient, 1)
	c, err := DialEarly(testCtx(t), proxy.Addr().String(), tc, nil, channel)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseWithError(CodeNoError, "") })
	return c, proxy
}

func TestNonIdempotentSendWaitsForHandshake(t *testing.T) {
	c, proxy := dialEarlyHeldBack(t, "rule")
	ctx := testCtx(t)
	ch := c.EarlyChannels()[0]
	// Short real deadlines show that these calls block: the handshake waits
	// on real UDP through the proxy, out of synctest's reach.
	short0, cancel0 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel0()
	_, err := c.OpenChannel(short0, "later")
	require.ErrorIs(t, err, context.DeadlineExceeded, "later channels wait for the handshake")
	require.NoError(t, ch.SendReplaySafe(ctx, []byte("safe")), "replay-safe messages go at once")
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, ch.Send(short, []byte("unsafe")), context.DeadlineExceeded, "a plain Send waits for the handshake")
	require.ErrorIs(t, ch.TrySend([]byte("unsafe")), ErrWouldBlock)
	select {
	case <-c.HandshakeComplete():
		t.Fatal("handshake completed through a black hole")
	default:
	}

	proxy.SetDropRate(udpproxy.ToClient, 0)
	require.NoError(t, ch.Send(ctx, []byte("unsafe")))
	select {
	case <-c.HandshakeComplete():
	default:
		t.Fatal("Send returned before the handshake completed")
	}
	for _, want := range []string{"safe", "unsafe"} {
		msg, err := ch.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, want, string(msg))
	}
}

func TestRejectedZeroRTTHandsBackWhatWasSentEarly(t *testing.T) {
	keys := [][32]byte{{1}}
	ln := earlyServer(t, "127.0.0.1:0", keys)
	addr := ln.Addr().String()
	tc := resumingClientTLS(t)
	primeTicket(t, addr, tc)
	require.NoError(t, ln.Close())

	// The server comes back on the same port with new ticket keys.
	ln2 := earlyServer(t, addr, [][32]byte{{2}})
	defer ln2.Close()
	ctx := testCtx(t)
	c, err := DialEarly(ctx, addr, tc, nil, "early")
	require.NoError(t, err)
	defer c.CloseWithError(CodeNoError, "")
	ch := c.EarlyChannels()[0]
	var want []string
	for i := range 5 {
		m := fmt.Sprintf("early %d", i)
		want = append(want, m)
		require.NoError(t, ch.SendReplaySafe(ctx, []byte(m)))
	}
	<-c.Context().Done()
	require.ErrorIs(t, context.Cause(c.Context()), ErrEarlyDataRejected)
	_, err = ch.Receive(ctx)
	require.Error(t, err)
	require.NotErrorIs(t, err, io.EOF)
	// Polled: the send side hands messages back after the real connection
	// was refused over UDP, which synctest cannot wait for.
	require.Eventually(t, func() bool { return len(ch.Unsent()) == len(want) }, 10*time.Second, time.Millisecond)
	var got []string
	for _, u := range ch.Unsent() {
		require.True(t, u.ReplaySafe)
		got = append(got, string(u.Data))
	}
	require.Equal(t, want, got, "everything sent early comes back, in order")
	require.Zero(t, ch.InDoubt())
}

// The gate notices the 0-RTT attempt from the ticket the TLS stack offers,
// and the handshake completes, with 0-RTT, once it is released.
func TestEarlyGateSeesTheZeroRTTAttempt(t *testing.T) {
	ln := earlyServer(t, "127.0.0.1:0", nil)
	defer ln.Close()
	tc := resumingClientTLS(t)
	primeTicket(t, ln.Addr().String(), tc)

	ctx := testCtx(t)
	conf, err := (&Config{}).withDefaults()
	require.NoError(t, err)
	qtc, err := clientTLS(tc)
	require.NoError(t, err)
	qc, g, err := dialEarlyGated(ctx, ln.Addr().String(), qtc, conf.quicConfig())
	require.NoError(t, err)
	require.True(t, g.attempt.Load(), "a ticket allowing early data was offered")
	// A stream created before the server's parameters are installed; it
	// stays unwritten, so the server never sees it.
	_, err = qc.OpenStreamSync(ctx)
	require.NoError(t, err)
	g.release()
	select {
	case <-qc.HandshakeComplete():
	case <-qc.Context().Done():
		t.Fatalf("the connection ended before its handshake completed: %v", context.Cause(qc.Context()))
	case <-ctx.Done():
		t.Fatal("handshake did not complete after the release")
	}
	require.True(t, qc.ConnectionState().Used0RTT)
	require.NoError(t, qc.CloseWithError(0, ""))
	<-qc.Context().Done()
}

// Without a ticket there is no 0-RTT attempt, and the gate never holds the
// packets of the full handshake that DialEarly waits for.
func TestEarlyGateLetsAFullHandshakeThrough(t *testing.T) {
	ln := earlyServer(t, "127.0.0.1:0", nil)
	defer ln.Close()
	ctx := testCtx(t)
	conf, err := (&Config{}).withDefaults()
	require.NoError(t, err)
	qtc, err := clientTLS(resumingClientTLS(t))
	require.NoError(t, err)
	qc, g, err := dialEarlyGated(ctx, ln.Addr().String(), qtc, conf.quicConfig())
	require.NoError(t, err)
	require.False(t, g.attempt.Load())
	<-qc.HandshakeComplete()
	require.False(t, qc.ConnectionState().Used0RTT)
	g.release()
	require.NoError(t, qc.CloseWithError(0, ""))
}

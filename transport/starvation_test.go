package transport

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

// TestSilentPeersDoNotLockOutHonestClients: a peer that completes the TLS
// handshake and never sends HELLO, a couple of hundred times over, must not
// keep honest clients out. (Before the HELLO deadline and the bounded
// pending set, AcceptBacklog + 32 such connections, 160 by default, filled
// the listener's slots and quic-go's accept queue, and every new client was
// refused until HandshakeTimeout freed them. The small backlog and long
// handshake timeout here make that lockout certain on a slow machine.)
func TestSilentPeersDoNotLockOutHonestClients(t *testing.T) {
	ln := listen(t, &Config{AcceptBacklog: 16, HandshakeTimeout: 20 * time.Second})
	addr := ln.Addr().String()
	hostile := testenv.NewSilentPeer(t, addr, "127.0.0.1", 4)
	ctx := testCtx(t)

	const silent = 200
	var wg sync.WaitGroup
	hostileDone := make(chan struct{})
	wg.Go(func() {
		defer close(hostileDone)
		hostile.Open(ctx, silent, 8, 5*time.Second)
	})
	defer wg.Wait()

	dialAccept := func() {
		t.Helper()
		c, err := Dial(ctx, addr, testTLS(t).client, nil)
		require.NoError(t, err, "an honest client was kept out (%d silent connections completed)", hostile.Completed())
		s, err := ln.Accept(ctx)
		require.NoError(t, err)
		require.NoError(t, c.CloseWithError(CodeNoError, ""))
		require.NoError(t, s.CloseWithError(CodeNoError, ""))
	}
	honest := 0
	for running := true; running; honest++ {
		select {
		case <-hostileDone:
			running = false
		default:
		}
		dialAccept()
	}
	// The silent peer holds what it got; newcomers still get in.
	for range 3 {
		dialAccept()
		honest++
	}
	t.Logf("%d honest dials, %d silent connections completed, %d refused; %+v",
		honest, hostile.Completed(), hostile.Failed(), ln.Stats())

	// The silent connections were closed for their silence, and counted.
	st := ln.Stats()
	require.NotZero(t, st.EvictedHellos+st.HelloTimeouts, "%+v", st)
	require.LessOrEqual(t, st.EvictedHellos+st.HelloTimeouts, hostile.Completed())
	require.LessOrEqual(t, st.PendingHellos, DefaultMaxPendingHellosPerIP)
	require.Zero(t, st.Refused+st.HandshakeFailures, "%+v", st)
}

func TestPendingSetEvictsOldest(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	b := netip.MustParseAddr("10.0.0.2")
	s := newPendingSet(4, 2)
	p := func(src string) *pendingConn { return &pendingConn{src: netip.MustParseAddr(src)} }

	a1, a2, a3 := p("10.0.0.1"), p("10.0.0.1"), p("10.0.0.1")
	b1, b2, b3 := p("10.0.0.2"), p("10.0.0.2"), p("10.0.0.3")
	for _, c := range []*pendingConn{a1, a2, b1} {
		old, _ := s.add(c)
		require.Nil(t, old)
	}
	// A third from a evicts a's oldest, not the oldest of all.
	old, global := s.add(a3)
	require.Same(t, a1, old)
	require.False(t, global)
	require.Equal(t, 3, s.len())
	require.Equal(t, 2, s.count(a))

	old, _ = s.add(b2)
	require.Nil(t, old)
	// Full: a newcomer from a third address evicts the oldest of all.
	old, global = s.add(b3)
	require.Same(t, a2, old)
	require.True(t, global)
	require.Equal(t, 4, s.len())

	s.remove(a3)
	s.remove(a3)
	require.Equal(t, 0, s.count(a))
	require.Equal(t, 2, s.count(b))
	require.Equal(t, 3, s.len())
}

// TestHandshakeGateCapsHandshakesPerAddress runs in a synctest bubble: the
// gate is plain code, no socket, so synctest.Wait sees the release that a
// connection's end schedules with context.AfterFunc.
func TestHandshakeGateCapsHandshakesPerAddress(t *testing.T) {
	synctest.Test(t, testHandshakeGateCapsHandshakesPerAddress)
}

func testHandshakeGateCapsHandshakesPerAddress(t *testing.T) {
	g := newHandshakeGate(2)
	from := func(ip string) *quic.ClientInfo {
		return &quic.ClientInfo{RemoteAddr: &net.UDPAddr{IP: net.ParseIP(ip), Port: 4433}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, cancelFirst := context.WithCancel(ctx)
	_, err := g.connContext(first, from("10.0.0.1"))
	require.NoError(t, err)
	second, err := g.connContext(ctx, from("10.0.0.1"))
	require.NoError(t, err)
	_, err = g.connContext(ctx, from("10.0.0.1"))
	require.ErrorIs(t, err, errHandshakeCap)
	_, err = g.connContext(ctx, from("10.0.0.2"))
	require.NoError(t, err, "another address has its own cap")
	require.Equal(t, uint64(1), g.refused.Load())

	// A connection that ends frees its place...
	cancelFirst()
	synctest.Wait()
	_, err = g.connContext(ctx, from("10.0.0.1"))
	require.NoError(t, err)
	// ...and so does one the listener takes, once only.
	tok := second.Value(handshakeTokenKey{}).(*handshakeToken)
	tok.release()
	tok.release()
	_, err = g.connContext(ctx, from("10.0.0.1"))
	require.NoError(t, err)
	_, err = g.connContext(ctx, from("10.0.0.1"))
	require.ErrorIs(t, err, errHandshakeCap)
}

// A connection that sends no HELLO keeps its HandshakeTimeout while the
// listener is not under pressure, its HELLO timer re-armed every
// HelloTimeout, and is closed for its silence by the timer once more than
// half of MaxPendingHellosPerIP connections from its address wait. With
// Allow0RTT the listener is handed connections before their handshake
// completes and starts the timer from the completion; without, the
// handshake is complete on arrival and no goroutine waits for it.
func TestHelloTimeoutOnlyUnderPressure(t *testing.T) {
	for _, early := range []bool{false, true} {
		t.Run(fmt.Sprintf("Allow0RTT=%v", early), func(t *testing.T) {
			ln := listen(t, &Config{Allow0RTT: early, MaxPendingHellosPerIP: 4, HelloTimeout: 50 * time.Millisecond, HandshakeTimeout: 30 * time.Second})
			silent := testenv.NewSilentPeer(t, ln.Addr().String(), "127.0.0.1", 1)
			ctx := testCtx(t)
			silent.Open(ctx, 2, 1, 5*time.Second)
			require.EqualValues(t, 2, silent.Completed())
			// Two of four is not pressure: several HelloTimeouts pass and
			// both wait on.
			time.Sleep(10 * 50 * time.Millisecond)
			st := ln.Stats()
			require.Zero(t, st.HelloTimeouts, "%+v", st)
			require.Equal(t, 2, st.PendingHellos, "%+v", st)
			// A third is: an overdue one is closed at its next check, which
			// ends the pressure.
			silent.Open(ctx, 1, 1, 5*time.Second)
			require.Eventually(t, func() bool { return ln.Stats().HelloTimeouts == 1 }, 10*time.Second, 10*time.Millisecond)
			st = ln.Stats()
			require.Zero(t, st.EvictedHellos, "%+v", st)
			require.Equal(t, 2, st.PendingHellos, "%+v", st)
		})
	}
}

// The listener holds an accepted connection for its Close only while the
// connection lives: the connection's end hook lets it go, whichever side
// ended it.
func TestListenerForgetsEndedConnections(t *testing.T) {
	ln := listen(t, nil)
	tracked := func() int {
		ln.mu.Lock()
		defer ln.mu.Unlock()
		return len(ln.conns)
	}
	for _, serverCloses := range []bool{false, true} {
		c := dialTest(t, ln, nil)
		s, err := ln.Accept(testCtx(t))
		require.NoError(t, err)
		require.Equal(t, 1, tracked())
		if serverCloses {
			require.NoError(t, s.CloseWithError(CodeNoError, ""))
		} else {
			require.NoError(t, c.CloseWithError(CodeNoError, ""))
		}
		require.Eventually(t, func() bool { return tracked() == 0 }, 10*time.Second, time.Millisecond)
		// An ended connection the application still holds does not keep
		// its listener reachable.
		require.Eventually(t, func() bool { return s.tracker.Load() == nil }, 10*time.Second, time.Millisecond)
	}
}

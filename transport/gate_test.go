package transport

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/udpproxy"
)

// inProgress is how many handshakes the gate counts for src.
func (g *handshakeGate) inProgress(src netip.Addr) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n[src]
}

// TestHandshakeGateSpoofedInitialsDoNotLockOutTheirAddress: Initials that
// carry an address whose owner never sent them, enough to fill the address's
// handshake cap, must not keep that owner out. The spoofer here is a set of
// real clients behind a relay that drops every answer of the server, so
// their handshakes never complete and a Retry never reaches them, as it
// would not reach a spoofer; the relay sends from 127.0.0.1, the address the
// honest client then dials from. (Before the Retry, the gate refused the
// honest client with CONNECTION_REFUSED until the spoofed handshakes timed
// out, and a spoofer who sent the cap's worth every handshake timeout locked
// the address out for good.)
func TestHandshakeGateSpoofedInitialsDoNotLockOutTheirAddress(t *testing.T) {
	const max = 4
	ln := listen(t, &Config{MaxHandshakesPerIP: max, HandshakeTimeout: 20 * time.Second})
	proxy, err := udpproxy.New(ln.Addr().String())
	require.NoError(t, err)
	defer proxy.Close()
	proxy.SetDropRate(udpproxy.ToClient, 1)

	ctx := testCtx(t)
	spoofCtx, stopSpoofing := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopSpoofing()
	for range 2 * max {
		wg.Go(func() {
			c, err := Dial(spoofCtx, proxy.Addr().String(), testTLS(t).client, nil)
			if err == nil { // cannot happen: the server's answers are dropped
				_ = c.CloseWithError(CodeNoError, "")
			}
		})
	}
	victim := netip.MustParseAddr("127.0.0.1")
	require.Eventually(t, func() bool { return ln.gate.inProgress(victim) >= max },
		10*time.Second, time.Millisecond, "the spoofed Initials fill the address's cap")

	for range 3 {
		c, err := Dial(ctx, ln.Addr().String(), testTLS(t).client, nil)
		require.NoError(t, err, "the owner of a spoofed address was kept out; %+v", ln.Stats())
		s, err := ln.Accept(ctx)
		require.NoError(t, err)
		require.NoError(t, c.CloseWithError(CodeNoError, ""))
		require.NoError(t, s.CloseWithError(CodeNoError, ""))
	}
	st := ln.Stats()
	t.Logf("%+v", st)
	require.NotZero(t, st.HandshakeRetries, "the honest client was asked to prove its address")
	require.Zero(t, st.RefusedHandshakes)
	require.LessOrEqual(t, ln.gate.inProgress(victim), 2*max, "unvalidated handshakes stay capped")
}

package transport

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/udpproxy"
)

// countingServer accepts with 0-RTT allowed and counts the messages that
// arrive on channels named "jobs"; other channels echo.
func countingServer(t *testing.T, handled *atomic.Int64) *Listener {
	t.Helper()
	// A short handshake timeout ends the replays' connections, which
	// cannot complete their handshakes, soon.
	ln, err := Listen("127.0.0.1:0", testTLS(t).server, &Config{Allow0RTT: true, HandshakeTimeout: time.Second})
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		require.NoError(t, ln.Close())
		wg.Wait()
	})
	serve := func(ch *Channel) {
		if ch.Name() != "jobs" {
			_ = echoAll(context.Background(), ch)
			return
		}
		for {
			if _, err := ch.Receive(context.Background()); err != nil {
				return
			}
			handled.Add(1)
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() {
				for {
					ch, err := c.AcceptChannel(context.Background())
					if err != nil {
						return
					}
					wg.Go(func() { serve(ch) })
				}
			})
		}
	})
	return ln
}

// captureFirstFlight dials with 0-RTT through a relay that holds back every
// answer of the server, sends one replay-safe message on channel "jobs", and
// returns the datagrams the client sent until the server handled it: the
// client's first flight (ClientHello and 0-RTT packets). The connection then
// completes and closes.
func captureFirstFlight(t *testing.T, ln *Listener, tc *tls.Config, handled *atomic.Int64) [][]byte {
	t.Helper()
	proxy, err := udpproxy.New(ln.Addr().String())
	require.NoError(t, err)
	defer proxy.Close()
	primeTicket(t, proxy.Addr().String(), tc)

	var mu sync.Mutex
	var flight [][]byte
	var recording atomic.Bool
	recording.Store(true)
	proxy.SetDropFunc(udpproxy.ToServer, func(pkt []byte) bool {
		if recording.Load() {
			mu.Lock()
			flight = append(flight, append([]byte(nil), pkt...))
			mu.Unlock()
		}
		return false
	})
	proxy.SetDropRate(udpproxy.ToClient, 1)
	ctx := testCtx(t)
	c, err := DialEarly(ctx, proxy.Addr().String(), tc, nil, "jobs")
	require.NoError(t, err)
	require.NoError(t, c.EarlyChannels()[0].SendReplaySafe(ctx, []byte("replay-safe job")))
	// Polled on the wall clock: the 0-RTT packets cross real UDP sockets and
	// the proxy, which a synctest bubble cannot wait for.
	require.Eventually(t, func() bool { return handled.Load() == 1 }, 10*time.Second, time.Millisecond,
		"the server handles the message from the 0-RTT data")
	recording.Store(false)
	proxy.SetDropRate(udpproxy.ToClient, 0)
	<-c.HandshakeComplete()
	require.True(t, c.Used0RTT(), "the legitimate connection used 0-RTT")
	require.NoError(t, c.Close())
	mu.Lock()
	defer mu.Unlock()
	return flight
}

// replay sends a captured flight to ln from a new UDP socket, as an
// attacker on the path would, until the server has decided on it: decided
// returns a count that grows when it has (the message handled, or its early
// data refused). The flight is sent again every 100 ms, because a server
// routes it to the connection it came from, or to the previous replay's,
// while that connection's IDs are still known. The socket stays open until
// the test ends, so that the server's answers go somewhere.
func replay(t *testing.T, ln *Listener, flight [][]byte, decided func() int64) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	before := decided()
	for range 300 {
		for _, d := range flight {
			_, err := conn.WriteTo(d, ln.Addr())
			require.NoError(t, err)
		}
		for range 10 {
			if decided() > before {
				return
			}
			// A real sleep: the replay is raw UDP to a real listener,
			// which synctest cannot treat as blocked.
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Fatal("the server never decided on the replayed flight")
}

// A first flight captured on the path and sent again, twice, from new
// addresses: the server refuses the replays' early data, so the replay-safe
// message in it is handled once in all.
func TestReplayedFirstFlightRunsItsMessageOnce(t *testing.T) {
	var handled atomic.Int64
	ln := countingServer(t, &handled)
	flight := captureFirstFlight(t, ln, resumingClientTLS(t), &handled)
	require.NotEmpty(t, flight)

	// The server decides on early data when it reads a replay's ClientHello,
	// before any of its 0-RTT packets can be opened.
	decided := func() int64 { return handled.Load() + int64(ln.Stats().EarlyDataRefused) }
	replay(t, ln, flight, decided)
	replay(t, ln, flight, decided)
	require.Equal(t, int64(1), handled.Load(), "the replays ran the message again")
	require.Equal(t, uint64(2), ln.Stats().EarlyDataRefused)
}

// newTestGuard returns a guard with a clock the test moves.
func newTestGuard(t *testing.T, size int, window time.Duration) (*replayGuard, *time.Time) {
	t.Helper()
	tc := &tls.Config{}
	g, err := withAntiReplay(tc, Config{Allow0RTT: true, ReplayCacheSize: size, EarlyDataWindow: window})
	require.NoError(t, err)
	now := time.Unix(1_700_000_000, 0)
	g.now = func() time.Time { return now }
	return g, &now
}

// ticket stamps a fresh ticket at the guard's current time.
func ticket(t *testing.T, g *replayGuard) [][]byte {
	t.Helper()
	ss := &tls.SessionState{EarlyData: true, Extra: [][]byte{[]byte("quic-go entry")}}
	require.NoError(t, g.stamp(ss))
	return ss.Extra
}

func TestReplayGuardAdmitsEachTicketOnce(t *testing.T) {
	g, _ := newTestGuard(t, 10, time.Hour)
	a, b := ticket(t, g), ticket(t, g)
	require.True(t, g.admit(a))
	require.True(t, g.admit(b))
	require.False(t, g.admit(a), "second use")
	require.False(t, g.admit(b), "second use")
	require.False(t, g.admit([][]byte{[]byte("quic-go entry")}), "a ticket without an ID")
}

func TestReplayGuardRefusesTicketsOlderThanTheWindow(t *testing.T) {
	g, now := newTestGuard(t, 10, time.Hour)
	old, fresh := ticket(t, g), ticket(t, g)
	require.True(t, g.admit(fresh))
	*now = now.Add(time.Hour)
	require.False(t, g.admit(old), "issued a window ago")
	require.Empty(t, g.used, "records older than the window are forgotten")
	require.False(t, g.admit(fresh), "forgotten, but too old to be admitted again")
}

// A full register forgets its oldest record and refuses early data for
// every ticket issued no later than it: forgetting never admits a replay.
func TestReplayGuardFullFailsSafe(t *testing.T) {
	const size = 4
	g, now := newTestGuard(t, size, time.Hour)
	var tickets [][][]byte
	for range size + 2 {
		tickets = append(tickets, ticket(t, g))
		*now = now.Add(time.Second)
	}
	for _, tk := range tickets[:size] {
		require.True(t, g.admit(tk))
	}
	require.True(t, g.admit(tickets[size]), "admitted; the oldest record goes")
	require.Len(t, g.used, size)
	require.False(t, g.admit(tickets[0]), "the forgotten ticket is not admitted again")
	for _, tk := range tickets[:size+1] {
		require.False(t, g.admit(tk), "no ticket is admitted twice")
	}
	require.True(t, g.admit(tickets[size+1]), "newer tickets still get early data")
	require.LessOrEqual(t, len(g.used), size)
}

func TestZeroRTTListenerRefusesGetConfigForClient(t *testing.T) {
	tc := testTLS(t).server.Clone()
	tc.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return nil, nil }
	_, err := Listen("127.0.0.1:0", tc, &Config{Allow0RTT: true})
	require.ErrorContains(t, err, "GetConfigForClient")
	ln, err := Listen("127.0.0.1:0", tc, nil)
	require.NoError(t, err, "without 0-RTT there is nothing to check")
	require.NoError(t, ln.Close())
}

func TestZeroRTTConfigLimitsAreValidated(t *testing.T) {
	_, err := (&Config{EarlyDataWindow: 8 * 24 * time.Hour}).withDefaults()
	require.ErrorContains(t, err, "EarlyDataWindow")
	_, err = (&Config{ReplayCacheSize: -1}).withDefaults()
	require.ErrorContains(t, err, "ReplayCacheSize")
}

// The caller's own WrapSession and UnwrapSession keep running inside the
// check, and 0-RTT still works with them.
func TestReplayCheckKeepsTheCallersSessionHooks(t *testing.T) {
	var wrapped, unwrapped atomic.Int64
	tc := testTLS(t).server.Clone()
	tc.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		wrapped.Add(1)
		return tc.EncryptTicket(cs, ss)
	}
	tc.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		unwrapped.Add(1)
		return tc.DecryptTicket(identity, cs)
	}
	ln := earlyServerTLS(t, "127.0.0.1:0", tc)
	defer ln.Close()
	ctc := resumingClientTLS(t)
	primeTicket(t, ln.Addr().String(), ctc)
	ctx := testCtx(t)
	c, err := DialEarly(ctx, ln.Addr().String(), ctc, nil, "early")
	require.NoError(t, err)
	defer c.CloseWithError(CodeNoError, "")
	ch := c.EarlyChannels()[0]
	require.NoError(t, ch.SendReplaySafe(ctx, []byte("hi")))
	_, err = ch.Receive(ctx)
	require.NoError(t, err)
	<-c.HandshakeComplete()
	require.True(t, c.Used0RTT())
	require.GreaterOrEqual(t, wrapped.Load(), int64(1))
	require.Equal(t, int64(1), unwrapped.Load())
	require.Zero(t, ln.Stats().EarlyDataRefused)
}

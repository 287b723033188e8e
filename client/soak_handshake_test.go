//go:build soak && !race

package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// Shape of TestSoakHandshakeStarvation (issue 8, part 1).
const (
	soakRun           = 30 * time.Second
	soakSilentBurst   = 2000                  // silent connections opened at the start
	soakSilentPerTick = 10                    // then this many per tick...
	soakSilentTick    = 50 * time.Millisecond // ...200 per second
	soakSilentFlight  = 256                   // silent dials in flight at most
	soakSilentSockets = 64                    // UDP sockets (source ports) of the silent peer
	soakHonestPause   = 50 * time.Millisecond // between two honest dials of one dialer
)

// honestDial is one measured connect by an honest client.
type honestDial struct {
	kind string
	at   time.Time
	took time.Duration
	err  error
}

// TestSoakHandshakeStarvation: while a hostile peer opens 2,000 connections
// that complete the TLS handshake and never send HELLO, then 200 more per
// second from 64 source ports, honest transport.Dial and client.Dial calls
// (the latter resuming with 0-RTT where they can) made throughout a 30 s run
// all succeed. The connect times are reported as figures. The hostile peer
// comes from 127.0.0.2, the honest clients from 127.0.0.1, as an attacker
// and the clients come from different addresses on the internet; the
// server's listener allows 0-RTT, as quicsrv's does.
func TestSoakHandshakeStarvation(t *testing.T) {
	ln, addr := soakServer(t)

	ctx, cancel := context.WithTimeout(context.Background(), soakRun)
	defer cancel()
	begin := time.Now()
	var wg sync.WaitGroup
	var hostile silentReport
	wg.Go(func() { hostile = runSilentPeerProcess(t, addr) })

	var mu sync.Mutex
	var dials []honestDial
	record := func(d honestDial) {
		mu.Lock()
		dials = append(dials, d)
		mu.Unlock()
	}
	_, clientTLS := testTLS(t)
	resuming := clientTLS.Clone()
	resuming.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	wg.Go(func() {
		honestLoop(ctx, "transport", record, func(c context.Context) (func(), error) { return dialTransport(c, addr, clientTLS) })
	})
	wg.Go(func() {
		honestLoop(ctx, "client", record, func(c context.Context) (func(), error) { return dialClient(c, addr, resuming) })
	})
	wg.Wait()

	st := ln.Stats()
	reportHonest(t, dials)
	for _, d := range dials {
		if d.took > time.Second {
			t.Logf("slow %s dial: started %s into the run, took %s", d.kind, d.at.Sub(begin).Round(time.Millisecond), d.took.Round(time.Millisecond))
		}
	}
	testenv.Figure(t, "silent connections completed", "%d", hostile.completed)
	testenv.Figure(t, "silent dials failed (refused, timed out)", "%d", hostile.failed)
	testenv.Figure(t, "silent dials skipped (in flight at cap)", "%d", hostile.skipped)
	testenv.Figure(t, "listener hello timeouts", "%d", st.HelloTimeouts)
	testenv.Figure(t, "listener evictions", "%d", st.EvictedHellos)
	testenv.Figure(t, "listener refused / handshake failures", "%d / %d", st.Refused, st.HandshakeFailures)
	testenv.Figure(t, "listener handshakes refused (per-IP cap)", "%d", st.RefusedHandshakes)
	testenv.Figure(t, "listener accepted", "%d", st.Accepted)

	for _, d := range dials {
		require.NoError(t, d.err, "an honest %s dial failed after %s", d.kind, d.took)
	}
	require.NotEmpty(t, dials)
	require.NotZero(t, hostile.completed, "the hostile peer got its connections")
	require.NotZero(t, st.HelloTimeouts+st.EvictedHellos, "the silent connections were closed for their silence")
}

// silentPeerEnv carries the server address to the hostile peer's process.
const silentPeerEnv = "QUICMSG_SOAK_SILENT_PEER_ADDR"

type silentReport struct{ completed, failed, skipped uint64 }

// runSilentPeerProcess runs the hostile peer in a process of its own (this
// test binary, running TestHelperSilentPeerProcess), so that its
// goroutines do not share the server's Go scheduler, as a real attacker's
// would not, and returns what it reported.
func runSilentPeerProcess(t *testing.T, addr string) silentReport {
	ctx, cancel := context.WithTimeout(context.Background(), soakRun+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperSilentPeerProcess$", "-test.v")
	cmd.Env = append(os.Environ(), silentPeerEnv+"="+addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("silent peer process: %v\n%s", err, out)
		return silentReport{}
	}
	var r silentReport
	for line := range strings.Lines(string(out)) {
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "SILENT completed=%d failed=%d skipped=%d", &r.completed, &r.failed, &r.skipped); err == nil {
			return r
		}
	}
	t.Errorf("silent peer process reported nothing:\n%s", out)
	return r
}

// TestHelperSilentPeerProcess is the hostile peer of
// TestSoakHandshakeStarvation, in a process of its own: from 127.0.0.2 and
// soakSilentSockets source ports, it opens soakSilentBurst connections that
// never send HELLO, then 200 more per second, for soakRun. Run on its own it
// skips.
func TestHelperSilentPeerProcess(t *testing.T) {
	addr := os.Getenv(silentPeerEnv)
	if addr == "" {
		t.Skip("the hostile peer of TestSoakHandshakeStarvation; it runs it")
	}
	hostile := testenv.NewSilentPeer(t, addr, "127.0.0.2", soakSilentSockets)
	ctx, cancel := context.WithTimeout(context.Background(), soakRun)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { hostile.Open(ctx, soakSilentBurst, 64, 5*time.Second) })
	var skipped atomic.Uint64
	wg.Go(func() { silentStream(ctx, hostile, &skipped) })
	wg.Wait()
	fmt.Printf("SILENT completed=%d failed=%d skipped=%d\n", hostile.Completed(), hostile.Failed(), skipped.Load())
}

// soakServer runs an echo session server whose listener allows 0-RTT.
func soakServer(t *testing.T) (*transport.Listener, string) {
	srv, err := session.NewServer(nil, echoHandler)
	require.NoError(t, err)
	ln := serveListener(t, srv, &transport.Config{Allow0RTT: true})
	return ln, ln.Addr().String()
}

// silentStream opens soakSilentPerTick silent connections every
// soakSilentTick until ctx ends, skipping (and counting) a tick's dials
// while soakSilentFlight are in flight.
func silentStream(ctx context.Context, p *testenv.SilentPeer, skipped *atomic.Uint64) {
	var wg sync.WaitGroup
	defer wg.Wait()
	var inFlight atomic.Int64
	tick := time.NewTicker(soakSilentTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if inFlight.Load()+soakSilentPerTick > soakSilentFlight {
			skipped.Add(soakSilentPerTick)
			continue
		}
		inFlight.Add(soakSilentPerTick)
		wg.Go(func() {
			defer inFlight.Add(-soakSilentPerTick)
			p.Open(ctx, soakSilentPerTick, soakSilentPerTick, 5*time.Second)
		})
	}
}

// honestLoop dials with dial, measuring each connect, until ctx ends.
func honestLoop(ctx context.Context, kind string, record func(honestDial), dial func(context.Context) (func(), error)) {
	for ctx.Err() == nil {
		// Each dial gets its own time, so that the end of the run does not
		// cut one short.
		dctx, cancel := context.WithTimeout(context.Background(), 2*transport.DefaultHandshakeTimeout)
		start := time.Now()
		closeConn, err := dial(dctx)
		record(honestDial{kind: kind, at: start, took: time.Since(start), err: err})
		cancel()
		if err == nil {
			closeConn()
		}
		select {
		case <-ctx.Done():
		case <-time.After(soakHonestPause):
		}
	}
}

func dialTransport(ctx context.Context, addr string, tc *tls.Config) (func(), error) {
	c, err := transport.Dial(ctx, addr, tc, nil)
	if err != nil {
		return nil, err
	}
	return func() { _ = c.Close() }, nil
}

func dialClient(ctx context.Context, addr string, tc *tls.Config) (func(), error) {
	c, err := Dial(ctx, addr, tc, nil)
	if err != nil {
		return nil, err
	}
	return func() { _ = c.Close() }, nil
}

func reportHonest(t *testing.T, dials []honestDial) {
	t.Helper()
	for _, kind := range []string{"transport", "client", ""} {
		var took []time.Duration
		failed := 0
		for _, d := range dials {
			if kind != "" && d.kind != kind {
				continue
			}
			if d.err != nil {
				failed++
				continue
			}
			took = append(took, d.took)
		}
		name := kind + ".Dial"
		if kind == "" {
			name = "all honest dials"
		}
		testenv.Figure(t, name+" count / failed", "%d / %d", len(took)+failed, failed)
		if len(took) == 0 {
			continue
		}
		slices.Sort(took)
		pct := func(p float64) time.Duration { return took[min(len(took)-1, int(p*float64(len(took))))] }
		slow := len(took) - slices.IndexFunc(append(took, time.Hour), func(d time.Duration) bool { return d > time.Second })
		testenv.Figure(t, name+" connect p50 / p99 / max", "%s / %s / %s",
			fmtDur(pct(0.50)), fmtDur(pct(0.99)), fmtDur(took[len(took)-1]))
		testenv.Figure(t, name+" connects over 1 s", "%d", slow)
	}
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

//go:build soak && !race

package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

const (
	// cycleCount is how many connections TestSoakConnectCycles makes and
	// closes, cycleWorkers at a time.
	cycleCount   = 100_000
	cycleWorkers = 12
	// cycleEchoEvery: every so many cycles, the connection also opens a
	// channel and checks an echo, so that the sessions are not only
	// handshakes.
	cycleEchoEvery = 100
	// cycleBudget bounds the whole run.
	cycleBudget = 30 * time.Minute
	// Leak bounds: what the server may hold after every session ended,
	// beyond what it held before the first.
	cycleGoroutineSlack = 10
	cycleHeapSlack      = 16 << 20
)

// TestSoakConnectCycles opens and closes cycleCount connections against one
// echo server and checks that none fails and that the server's goroutines
// and heap come back to where they were. It is a rate measurement, so it is
// built without the race detector (which makes each cycle 7 times slower);
// make soak runs it in a pass of its own.
func TestSoakConnectCycles(t *testing.T) {
	srv, addr := startEchoServer(t, nil)
	_, clientTLS := testTLS(t)
	tc := clientTLS.Clone()
	tc.ClientSessionCache = tls.NewLRUClientSessionCache(cycleWorkers)
	ctx, cancel := context.WithTimeout(context.Background(), cycleBudget)
	defer cancel()

	// One connection first, so that lazily started state is in the baseline.
	require.NoError(t, cycle(ctx, addr, tc, true))
	waitNoSessions(t, srv)
	g0, h0 := settle()

	var next, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range cycleWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1); n <= cycleCount && ctx.Err() == nil; n = next.Add(1) {
				if err := cycle(ctx, addr, tc, n%cycleEchoEvery == 0); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	require.NoError(t, ctx.Err(), "the cycles did not finish within %s", cycleBudget)
	waitNoSessions(t, srv)
	g1, h1 := settle()

	testenv.Figure(t, "cycles", "%d", cycleCount)
	testenv.Figure(t, "workers", "%d", cycleWorkers)
	testenv.Figure(t, "rate_per_s", "%.0f", float64(cycleCount)/elapsed.Seconds())
	testenv.Figure(t, "failures", "%d", failures.Load())
	testenv.Figure(t, "goroutines_before_after", "%d -> %d", g0, g1)
	testenv.Figure(t, "heap_before_after_kib", "%d -> %d", h0>>10, h1>>10)
	testenv.Figure(t, "sessions_accepted", "%d", srv.Stats().SessionsAccepted)
	require.Zero(t, failures.Load(), "first failure: %v", firstErr.Load())
	require.LessOrEqual(t, g1, g0+cycleGoroutineSlack, "goroutines leaked")
	require.LessOrEqual(t, h1, h0+cycleHeapSlack, "heap grew")
}

// cycle makes one connection, optionally checks one echo on it, and closes it.
func cycle(ctx context.Context, addr string, tc *tls.Config, echo bool) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := transport.Dial(cctx, addr, tc, nil)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	if echo {
		ch, err := conn.OpenChannel(cctx, "cycle")
		if err == nil {
			err = testenv.Exchange(cctx, ch, "cycle", 1)
		}
		if err != nil {
			_ = conn.Close()
			return fmt.Errorf("echo: %w", err)
		}
	}
	if err := conn.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

func waitNoSessions(t *testing.T, srv *session.Server) {
	t.Helper()
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 0 }, time.Minute, 10*time.Millisecond,
		"%d sessions still active", srv.ActiveSessions())
}

// settle lets closing connections finish, collects garbage and returns the
// process's goroutine count and live heap. The test process holds only the
// server once every client is closed, so these are the server's.
func settle() (goroutines int, heap uint64) {
	var ms runtime.MemStats
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		runtime.GC()
		if g := runtime.NumGoroutine(); g == goroutines {
			break
		} else {
			goroutines = g
		}
	}
	runtime.ReadMemStats(&ms)
	return goroutines, ms.HeapAlloc
}

package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// benchJSON runs bench with -json and returns its parsed result.
func benchJSON(t *testing.T, ts *testServer, args ...string) benchResult {
	t.Helper()
	got := runCLI(t, nil, ts.args(append([]string{"-json", "bench"}, args...)...)...)
	require.NoError(t, got.err, got.stderr)
	var r benchResult
	require.NoError(t, json.Unmarshal([]byte(got.stdout), &r), got.stdout)
	return r
}

// requireSane checks what every bench result must satisfy.
func requireSane(t *testing.T, r benchResult) {
	t.Helper()
	require.Positive(t, r.Delivered, "%+v", r)
	require.LessOrEqual(t, r.Delivered, r.Sent)
	require.Equal(t, r.Sent-r.Delivered, r.Undelivered)
	require.Positive(t, r.Seconds)
	require.Positive(t, r.MsgsPerSec)
	require.InEpsilon(t, r.MsgsPerSec*float64(r.Size)/1e6, r.MBPerSec, 1e-9)
	l := r.LatencyUs
	require.Equal(t, r.Delivered, l.Count, "one latency per delivery")
	require.True(t, 0 < l.Min && l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max, "%+v", l)
	require.Zero(t, r.Errors, r.ErrorSamples)
}

func TestBenchOnewayThroughARelayCountsDeliveriesAtTheSubscribers(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	r := benchJSON(t, ts, "-conns", "2", "-channels", "2", "-size", "100", "-duration", "300ms")
	requireSane(t, r)
	require.Equal(t, "oneway", r.Mode)
	require.Equal(t, "relay", r.ServerMode)
	require.Equal(t, "receiving connections", r.CountedAt)
	require.Equal(t, "duration", r.EndedBy)
	require.Equal(t, 2, r.Conns)
	require.Equal(t, 2, r.Channels)
	require.Equal(t, 100, r.Size)
}

func TestBenchOnewayAgainstAnEchoServerCountsEchoesUpToCount(t *testing.T) {
	ts := startServer(t, serverOptions{})
	r := benchJSON(t, ts, "-count", "2000", "-channels", "3", "-duration", "10s")
	requireSane(t, r)
	require.Equal(t, "echo", r.ServerMode)
	require.Equal(t, "sending connections (echoes)", r.CountedAt)
	require.Equal(t, "count", r.EndedBy)
	require.EqualValues(t, 2000, r.Sent)
	require.EqualValues(t, 2000, r.Delivered)
}

func TestBenchEchoModeMeasuresRoundTrips(t *testing.T) {
	ts := startServer(t, serverOptions{})
	r := benchJSON(t, ts, "-mode", "echo", "-channels", "2", "-duration", "300ms")
	requireSane(t, r)
	require.Equal(t, "echo", r.Mode)
	require.Equal(t, "echo", r.ServerMode)
	require.Zero(t, r.Undelivered, "every round trip in flight at the end is awaited")
}

func TestBenchRateLimitsWhatIsSent(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	r := benchJSON(t, ts, "-rate", "200", "-duration", "500ms")
	requireSane(t, r)
	// Message i is due i/200 s after the start: at most 101 in 500 ms.
	require.LessOrEqual(t, r.Sent, uint64(101))
}

func TestBenchTextOutputNamesEveryFigure(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	got := runCLI(t, nil, ts.args("bench", "-duration", "200ms")...)
	require.NoError(t, got.err, got.stderr)
	for _, want := range []string{"oneway to " + ts.addr, "the server relays", "sent ", "delivered ", "msg/s", "MB/s", "p50 ", "p90 ", "p99 ", "p99.9 ", "max ", "errors       0"} {
		require.Contains(t, got.stdout, want)
	}
	require.Empty(t, got.stderr, "no progress line when stderr is not a terminal")
}

// A relay that predates MODE is found out by the test message.
func TestBenchEchoModeAgainstAnOlderRelayExplainsWhy(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true, mode: modeNone})
	got := runCLI(t, nil, ts.args("-timeout", "300ms", "bench", "-mode", "echo", "-duration", "200ms")...)
	require.Equal(t, exitError, got.code)
	require.Equal(t, "no echo from "+ts.addr+" within 300ms: bench -mode echo needs a server in echo mode (quicsrv -mode echo); against a relay use -mode oneway", got.err.Error())
}

func TestBenchRefusesAMessageSizeOverTheServerLimit(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true, maxMessageSize: 1000})
	got := runCLI(t, nil, ts.args("bench", "-size", "2000", "-duration", "200ms")...)
	require.Equal(t, exitError, got.code)
	require.Equal(t, "-size 2000 is larger than the server's limit of 1000 bytes (quicsrv -max-message-size)", got.err.Error())
}

// lateDeadline is a context whose deadline has passed while its timer has
// not fired yet: Err is nil until cancel.
type lateDeadline struct {
	context.Context
	deadline time.Time
}

func (c lateDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

func TestBenchPaceSendsNothingDueAfterTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now().Add(-time.Second)
		late := lateDeadline{Context: ctx, deadline: start.Add(500 * time.Millisecond)}
		timer := time.NewTimer(0)
		defer timer.Stop()
		require.True(t, pace(late, timer, start, 1, 100*time.Millisecond), "due before the deadline")
		done := make(chan bool, 1)
		go func() { done <- pace(late, timer, start, 6, 100*time.Millisecond) }()
		synctest.Wait()
		require.Empty(t, done, "message 6 is overdue by the clock but due after the deadline")
		cancel() // the deadline's timer fires
		require.False(t, <-done)
	})
}

func TestBenchTextSaysNAForLatencyWithoutDeliveries(t *testing.T) {
	var out strings.Builder
	g := &globals{stdout: &out}
	r := &benchResult{Addr: "127.0.0.1:4242", Mode: "oneway", Conns: 1, Channels: 1, Size: 64, EndedBy: "duration", Sent: 10, Expected: 10, Undelivered: 10}
	require.NoError(t, r.writeText(g))
	require.Contains(t, out.String(), "  latency      n/a (nothing was delivered to time)\n")
	require.NotContains(t, out.String(), "p50 0")

	out.Reset()
	r.Delivered, r.Undelivered, r.LatencyUs = 10, 0, benchLatency{Count: 10, Min: 100, P50: 250, P90: 300, P99: 400, P999: 400, Max: 400}
	require.NoError(t, r.writeText(g))
	require.Contains(t, out.String(), "p50 250µs")
}

// After Ctrl-C, bench still waits a moment for the messages in flight,
// under a context the interrupt does not end; otherwise up to -timeout.
func TestBenchWaitsBrieflyForMessagesInFlightAfterAnInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dctx, wait := drainWindow(ctx, 5*time.Second)
	require.Equal(t, 5*time.Second, wait)
	require.Equal(t, ctx, dctx)

	cancel()
	dctx, wait = drainWindow(ctx, 5*time.Second)
	require.Equal(t, interruptGrace, wait)
	require.NoError(t, dctx.Err(), "the interrupt does not end the wait for deliveries")
	_, wait = drainWindow(ctx, 100*time.Millisecond)
	require.Equal(t, 100*time.Millisecond, wait, "never longer than -timeout")
}

package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// decodeBench decodes bench -json's result.
func decodeBench(t *testing.T, got outcome) benchResult {
	t.Helper()
	var r benchResult
	require.NoError(t, json.Unmarshal([]byte(got.stdout), &r), "stdout %q, stderr %q, err %v", got.stdout, got.stderr, got.err)
	return r
}

// waitSending waits until one session of ts (the sender's) has sent the
// server more messages than the test messages before the run, and returns
// the others (the receivers').
func waitSending(t *testing.T, ts *testServer, sessions int) (receivers []*session.Session) {
	t.Helper()
	// Real sockets, so the wall clock: bench's messages reach the server over QUIC.
	require.Eventually(t, func() bool {
		receivers = receivers[:0]
		all := ts.srv.Sessions()
		running := false
		for _, s := range all {
			switch n := s.Stats().MessagesReceived; {
			case n == 0:
				receivers = append(receivers, s)
			case n > 20:
				running = true
			}
		}
		return running && len(all) == sessions && len(receivers) == sessions-1
	}, 10*time.Second, 5*time.Millisecond)
	return receivers
}

// A oneway run whose receiving connections are all lost stops at once,
// ended by "receivers gone", instead of sending into nothing until
// -duration (60 s here, beyond the test's 20 s bound).
func TestBenchStopsWhenItsReceiversAreGone(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	_, wait := startCLI(t, nil, ts.args("-json", "bench", "-duration", "60s", "-rate", "2000", "-subscribers", "2")...)
	for _, s := range waitSending(t, ts, 3) {
		_ = s.Conn().CloseWithError(transport.CodeDisconnected, "test: receiver lost")
	}
	got := wait()
	r := decodeBench(t, got)
	require.Equal(t, "receivers gone", r.EndedBy)
	require.NotEmpty(t, r.ErrorSamples, "why the receivers ended is shown")
}

// A GOAWAY during the run is reported in the result.
func TestBenchReportsAGoAwayDuringTheRun(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	_, wait := startCLI(t, nil, ts.args("-json", "bench", "-duration", "60s", "-rate", "2000")...)
	waitSending(t, ts, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = ts.srv.Shutdown(ctx) // GOAWAY, then the sessions are closed
	r := decodeBench(t, wait())
	require.Contains(t, r.GoAway, "the server sent GOAWAY during the run")
	require.Contains(t, r.GoAway, "server shutting down")
}

// Ctrl-C ends a run with its report: the messages sent are accounted for,
// delivered or undelivered, and the exit status is 0.
func TestBenchInterruptedReportsWhatWasSent(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run, stop := context.WithCancel(ctx)
	done := make(chan outcome, 1)
	go func() {
		done <- runCLIContext(run, nil, ts.args("-json", "bench", "-duration", "60s", "-rate", "2000")...)
	}()
	waitSending(t, ts, 2)
	stop() // as Ctrl-C does
	got := <-done
	require.NoError(t, got.err, got.stderr)
	require.Equal(t, 0, got.code)
	r := decodeBench(t, got)
	require.Equal(t, "interrupt", r.EndedBy)
	require.Positive(t, r.Delivered)
	require.Equal(t, r.Expected, r.Delivered+r.Undelivered)
	t.Logf("sent %d, delivered %d, undelivered %d", r.Sent, r.Delivered, r.Undelivered)
}

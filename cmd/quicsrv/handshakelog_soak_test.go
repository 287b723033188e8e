//go:build soak

package main

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/transport"
)

// TestSoakRefusedHandshakeFloodIsLoggedBoundedAndAccountedFor floods a
// mutual-TLS server with clients that have no certificate, from a few
// dialers at once (fewer than the listener's handshakes per source
// address), and checks the log: at most refusedLogPerSecond lines for each
// second begun, and every refusal accounted for (lines logged plus the
// ones they say were left out, plus the last line's at shutdown).
func TestSoakRefusedHandshakeFloodIsLoggedBoundedAndAccountedFor(t *testing.T) {
	const (
		dialers   = 8
		perDialer = 250
	)
	dir := t.TempDir()
	dev, err := certs.EnsureDev(dir, nil)
	require.NoError(t, err)
	ts := startServerIn(t, dir, "-client-ca", dev.CAFile, "-mode", "echo", "-log-format", "json", "-log-level", "info")
	conf := ts.clientTLS(t)

	start := time.Now()
	var wg sync.WaitGroup
	var resets atomic.Int64
	for range dialers {
		wg.Go(func() {
			for range perDialer {
				_, err := transport.Dial(testCtx(t), ts.addr, conf, nil)
				var sr *quic.StatelessResetError
				switch {
				case errors.Is(err, transport.ErrUntrusted):
				case errors.As(err, &sr):
					// The server refused the handshake and forgot the
					// connection; the client missed its CONNECTION_CLOSE
					// (a datagram lost under the flood) and learnt of
					// the end from a stateless reset.
					resets.Add(1)
				default:
					t.Errorf("dial without a client certificate: want ErrUntrusted, got %v", err)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	require.NoError(t, ts.stop(t))

	lines := jsonLines(t, ts.stderr.String())
	logged := withMsg(lines, "handshake refused")
	accounted := len(logged)
	for _, l := range logged {
		accounted += int(l["suppressed"].(float64))
	}
	for _, l := range withMsg(lines, "handshakes refused and not logged (rate limit)") {
		accounted += int(l["suppressed"].(float64))
	}
	const n = dialers * perDialer
	require.Equal(t, n, accounted, "every refusal is logged or counted as left out")
	seconds := int(elapsed/time.Second) + 2 // each second begun, and the one the last refusals fall in
	require.LessOrEqual(t, len(logged), refusedLogPerSecond*seconds)

	testenv.Figure(t, "refused handshakes", "%d in %.2f s (%.0f/s)", n, elapsed.Seconds(), float64(n)/elapsed.Seconds())
	testenv.Figure(t, "lines logged", "%d (limit %d a second)", len(logged), refusedLogPerSecond)
	testenv.Figure(t, "refusals left out and counted", "%d", n-len(logged))
	testenv.Figure(t, "clients told by a stateless reset instead of the alert", "%d", resets.Load())
}

//go:build soak

package main

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/transport"
)

// soakLines is the case: 200,000 lines through the relay to a
// subscriber that falls behind.
const soakLines = 200000

// TestSoakRelayPolicies publishes soakLines numbered lines through quicsrv
// to a subscriber that stops reading for a while every 20,000 lines, under
// each slow consumer policy, and checks what the subscriber learns: under
// drop every line is received or reported missed, in order (after a gap
// notice of N, the next line is exactly N further on); under block every
// line is received.
func TestSoakRelayPolicies(t *testing.T) {
	for _, policy := range []string{"drop", "block"} {
		t.Run(policy, func(t *testing.T) {
			ts := startServer(t, "-metrics", "127.0.0.1:0", "-subscriber-queue", "1000", "-slow-consumer", policy,
				"-publish-timeout", "30s", "-log-level", "info")
			conf := ts.clientTLS(t)
			pub, sub := dial(t, ts.addr, conf), dial(t, ts.addr, conf)
			subCh := openChannel(t, sub, "logs")
			pubCh := openChannel(t, pub, "logs")
			ts.waitMetric(t, 2, "quicmsg_relay_subscriptions")

			start := time.Now()
			sent := make(chan error, 1)
			go func() {
				for i := range soakLines {
					if err := pubCh.Send(testCtx(t), []byte(strconv.Itoa(i))); err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			received, missed, gaps := readNumbered(t, subCh)
			require.NoError(t, <-sent)
			elapsed := time.Since(start)
			require.Equal(t, soakLines, received+missed)
			if policy == "block" {
				require.Zero(t, missed, "block loses nothing")
			}
			f := scrape(t, ts.metricsURL)
			require.Equal(t, float64(missed), metricValue(f, "quicmsg_relay_gap_messages_total", "reason", "slow_consumer"))
			testenv.Figure(t, "received", "%d", received)
			testenv.Figure(t, "missed", "%d in %d gap notices", missed, gaps)
			testenv.Figure(t, "elapsed", "%.2f s (%.0f lines/s)", elapsed.Seconds(), soakLines/elapsed.Seconds())
		})
	}
}

// readNumbered reads lines "0", "1", ... until soakLines were received or
// reported missed, pausing 300 ms every 20,000 lines, and checks that each
// gap notice accounts exactly for the lines skipped.
func readNumbered(t *testing.T, ch *transport.Channel) (received, missed, gaps int) {
	t.Helper()
	next := 0
	for next < soakLines {
		if next > 0 && next%20000 == 0 {
			time.Sleep(300 * time.Millisecond) // the slow consumer
		}
		b, err := ch.Receive(testCtx(t))
		var ge *transport.GapError
		if errors.As(err, &ge) {
			require.Equal(t, transport.GapSlowConsumer, ge.Reason)
			missed += int(ge.Missed)
			next += int(ge.Missed)
			gaps++
			continue
		}
		require.NoError(t, err, "after line %d", next)
		n, err := strconv.Atoi(string(b))
		require.NoError(t, err)
		require.Equal(t, next, n, "lines in order, gaps exact")
		next++
		received++
	}
	return received, missed, gaps
}

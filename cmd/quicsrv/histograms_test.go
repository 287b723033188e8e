package main

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// histogramCount returns the sample count of the unlabelled histogram
// name, -1 if there is none.
func histogramCount(families map[string]*dto.MetricFamily, name string) int {
	f, ok := families[name]
	if !ok || f.GetType() != dto.MetricType_HISTOGRAM || len(f.GetMetric()) != 1 {
		return -1
	}
	return int(f.GetMetric()[0].GetHistogram().GetSampleCount())
}

// waitHistogram waits until a scrape shows name with want samples.
func (ts *testServer) waitHistogram(t *testing.T, want int, name string) {
	t.Helper()
	require.Eventually(t, func() bool { return histogramCount(scrape(t, ts.metricsURL), name) == want },
		waitTimeout, 10*time.Millisecond, "histogram %s: want %d samples", name, want)
}

func TestHistogramsOfHandshakesSessionsAndQueueDelay(t *testing.T) {
	ts := startServer(t, "-metrics", "127.0.0.1:0")
	f := scrape(t, ts.metricsURL)
	for _, name := range []string{"quicmsg_handshake_duration_seconds", "quicmsg_session_duration_seconds", "quicmsg_relay_queue_delay_seconds"} {
		require.Equal(t, 0, histogramCount(f, name), name)
	}

	sub := dial(t, ts.addr, ts.clientTLS(t))
	pub := dial(t, ts.addr, ts.clientTLS(t))
	in := openChannel(t, sub, "h")
	ts.waitLog(t, `channel opened.*channel=h\b`)
	send(t, openChannel(t, pub, "h"), "m1")
	require.Equal(t, "m1", receive(t, in))

	ts.waitHistogram(t, 2, "quicmsg_handshake_duration_seconds")
	ts.waitHistogram(t, 1, "quicmsg_relay_queue_delay_seconds")
	require.Equal(t, 0, histogramCount(scrape(t, ts.metricsURL), "quicmsg_session_duration_seconds"))
	require.NoError(t, pub.Close())
	ts.waitHistogram(t, 1, "quicmsg_session_duration_seconds")

	f = scrape(t, ts.metricsURL)
	h := f["quicmsg_handshake_duration_seconds"].GetMetric()[0].GetHistogram()
	require.Positive(t, h.GetSampleSum(), "handshakes take time")
}

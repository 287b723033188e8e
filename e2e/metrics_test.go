package e2e

import (
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

func TestMetricsAreScrapedAndParsedWithThePrometheusTextParser(t *testing.T) {
	s := startServer(t)
	status, body := s.get(t, "/healthz")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "ok", body[:min(len(body), 2)])

	listener := s.quiccli(t, "listen", "-count", "3", "chat")
	s.waitSubscriptions(t, 1)
	requireQuiccli(t, s.client("send", "chat", "one", "two", "three")...)
	require.Equal(t, 0, listener.wait(t))

	// Both quiccli processes closed their sessions cleanly.
	s.waitMetric(t, 2, "quicmsg_session_disconnects_total", "code", "no_error", "by", "client")
	f := s.scrape(t)

	types := map[string]dto.MetricType{
		"quicmsg_build_info":              dto.MetricType_GAUGE,
		"quicmsg_sessions_active":         dto.MetricType_GAUGE,
		"quicmsg_sessions_accepted_total": dto.MetricType_COUNTER,
		"quicmsg_messages_received_total": dto.MetricType_COUNTER,
		"quicmsg_relay_delivered_total":   dto.MetricType_COUNTER,
		"quicmsg_handshakes_total":        dto.MetricType_COUNTER,
		"go_goroutines":                   dto.MetricType_GAUGE,
		"process_resident_memory_bytes":   dto.MetricType_GAUGE,
	}
	for name, typ := range types {
		require.Contains(t, f, name)
		require.Equal(t, typ, f[name].GetType(), name)
	}
	buildInfo := f["quicmsg_build_info"].GetMetric()
	require.Len(t, buildInfo, 1)
	var labels []string
	for _, lp := range buildInfo[0].GetLabel() {
		labels = append(labels, lp.GetName())
	}
	require.Equal(t, []string{"commit", "goversion", "version"}, labels)
	require.Equal(t, 1.0, buildInfo[0].GetGauge().GetValue())

	want := map[string]float64{
		"quicmsg_sessions_active":         0,
		"quicmsg_sessions_accepted_total": 2,
		"quicmsg_sessions_refused_total":  0,
		"quicmsg_channels_open":           0,
		"quicmsg_channels_opened_total":   2,
		"quicmsg_messages_received_total": 3,
		"quicmsg_received_bytes_total":    float64(len("one" + "two" + "three")),
		"quicmsg_messages_sent_total":     3,
		"quicmsg_sent_bytes_total":        float64(len("one" + "two" + "three")),
		"quicmsg_relay_published_total":   3,
		"quicmsg_relay_routed_total":      3,
		"quicmsg_relay_delivered_total":   3,
		"quicmsg_relay_dropped_total":     0,
		"quicmsg_relay_failed_total":      0,
		"quicmsg_relay_subscriptions":     0,
	}
	for name, v := range want {
		require.Equal(t, v, metricValue(f, name), name)
	}
	// Each quiccli process has its own TLS session cache: full handshakes.
	require.Equal(t, 2.0, metricValue(f, "quicmsg_handshakes_total", "zero_rtt", "false"))
	require.Equal(t, 0.0, metricValue(f, "quicmsg_handshakes_total", "zero_rtt", "true"))
}

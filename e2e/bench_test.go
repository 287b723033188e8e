package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// benchJSON is the part of `quiccli bench -json` that the tests check.
type benchJSON struct {
	Addr        string  `json:"addr"`
	Mode        string  `json:"mode"`
	ServerMode  string  `json:"server_mode"`
	CountedAt   string  `json:"counted_at"`
	Conns       int     `json:"conns"`
	Channels    int     `json:"channels"`
	Subscribers int     `json:"subscribers"`
	Group       string  `json:"group"`
	Inflight    int     `json:"inflight"`
	Size        int     `json:"size"`
	EndedBy     string  `json:"ended_by"`
	Seconds     float64 `json:"seconds"`
	Sent        uint64  `json:"sent"`
	Expected    uint64  `json:"expected"`
	Delivered   uint64  `json:"delivered"`
	Undelivered uint64  `json:"undelivered"`
	Missed      uint64  `json:"missed"`
	Duplicates  uint64  `json:"duplicates"`
	MsgsPerSec  float64 `json:"msgs_per_sec"`
	MBPerSec    float64 `json:"mb_per_sec"`
	LatencyUs   struct {
		Count uint64  `json:"count"`
		Min   float64 `json:"min"`
		P50   float64 `json:"p50"`
		P90   float64 `json:"p90"`
		P99   float64 `json:"p99"`
		P999  float64 `json:"p99_9"`
		Max   float64 `json:"max"`
	} `json:"latency_us"`
	Errors uint64 `json:"errors"`
}

// runBench runs quiccli -json bench with args against s and checks that the
// result is sane whatever the machine's speed.
func runBench(t *testing.T, s *server, args ...string) benchJSON {
	t.Helper()
	out := requireQuiccli(t, s.client(append([]string{"-json", "bench"}, args...)...)...)
	require.Equal(t, 1, strings.Count(out, "\n"), "one JSON object on one line: %s", out)
	var r benchJSON
	require.NoError(t, json.Unmarshal([]byte(out), &r))

	require.Equal(t, s.addr, r.Addr)
	require.Zero(t, r.Errors)
	require.Greater(t, r.Delivered, uint64(0))
	require.Equal(t, r.Expected, r.Delivered+r.Undelivered)
	require.Greater(t, r.Seconds, 0.0)
	require.Greater(t, r.MsgsPerSec, 0.0)
	require.InDelta(t, r.MsgsPerSec*float64(r.Size)/1e6, r.MBPerSec, r.MBPerSec*1e-6)
	l := r.LatencyUs
	require.Equal(t, r.Delivered, l.Count, "one latency per delivery")
	require.True(t, 0 < l.Min && l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max,
		"latency percentiles out of order: %+v", l)
	return r
}

func TestBenchOnewayThroughTheRelayReportsSaneJSON(t *testing.T) {
	s := startServer(t)
	r := runBench(t, s, "-duration", "1s", "-rate", "20000", "-conns", "2", "-channels", "2")
	require.Equal(t, "oneway", r.Mode)
	require.Equal(t, "relay", r.ServerMode)
	require.Equal(t, "receiving connections", r.CountedAt)
	require.Equal(t, "duration", r.EndedBy)
	require.Equal(t, 2, r.Conns)
	require.Equal(t, 2, r.Channels)
	require.Equal(t, 64, r.Size)

	// The relay handed over at least what bench counted as delivered.
	f := s.scrape(t)
	require.GreaterOrEqual(t, metricValue(f, "quicmsg_relay_delivered_total"), float64(r.Delivered))
	require.GreaterOrEqual(t, metricValue(f, "quicmsg_relay_published_total"), float64(r.Delivered))
}

func TestBenchEchoAgainstAnEchoServerReportsSaneJSON(t *testing.T) {
	s := startServer(t, "-mode", "echo")
	r := runBench(t, s, "-mode", "echo", "-count", "2000", "-duration", "10s", "-size", "128")
	require.Equal(t, "echo", r.Mode)
	require.Equal(t, "echo", r.ServerMode)
	require.Equal(t, "count", r.EndedBy)
	require.Equal(t, uint64(2000), r.Sent)
	require.Equal(t, uint64(2000), r.Delivered, "an echo server answers every message")
	require.Equal(t, 128, r.Size)
	require.GreaterOrEqual(t, metricValue(s.scrape(t), "quicmsg_messages_received_total"), 2000.0)
}

func TestBenchFanOutCountsEverySubscribersDeliveries(t *testing.T) {
	s := startServer(t)
	r := runBench(t, s, "-subscribers", "3", "-count", "3000", "-rate", "20000", "-duration", "10s")
	require.Equal(t, 3, r.Subscribers)
	require.Equal(t, "relay", r.ServerMode)
	require.Equal(t, "count", r.EndedBy)
	require.Equal(t, uint64(3000), r.Sent)
	require.Equal(t, uint64(9000), r.Expected, "each message once per subscriber")
	require.Equal(t, uint64(9000), r.Delivered, "20,000 msgs/s fit the relay's default queues")
	require.GreaterOrEqual(t, metricValue(s.scrape(t), "quicmsg_relay_routed_total"), float64(r.Delivered))
}

func TestBenchQueueGroupDeliversEachMessageOnce(t *testing.T) {
	s := startServer(t)
	r := runBench(t, s, "-subscribers", "4", "-group", "workers", "-count", "4000", "-rate", "20000", "-duration", "10s")
	require.Equal(t, "workers", r.Group)
	require.Equal(t, uint64(4000), r.Expected, "each message to one member")
	require.Zero(t, r.Duplicates)
	require.Zero(t, r.Missed)
	require.Equal(t, uint64(4000), r.Delivered, "the relay's default queue holds 4000 messages")
}

func TestBenchRequestModeThroughTheRelayAndAgainstAnEchoServer(t *testing.T) {
	relay := startServer(t)
	r := runBench(t, relay, "-mode", "request", "-inflight", "8", "-count", "2000", "-duration", "10s")
	require.Equal(t, "request", r.Mode)
	require.Equal(t, "relay", r.ServerMode, "bench's own responder answered")
	require.Equal(t, 8, r.Inflight)
	require.Equal(t, uint64(2000), r.Delivered, "every request answered")

	echo := startServer(t, "-mode", "echo")
	r = runBench(t, echo, "-mode", "request", "-count", "500", "-duration", "10s")
	require.Equal(t, "echo", r.ServerMode, "the echo server answers requests itself")
	require.Equal(t, uint64(500), r.Delivered)
}

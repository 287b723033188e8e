package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

// server is a quicsrv process and what its first lines said.
type server struct {
	*process
	addr       string // from "quicsrv listening on ADDR (...)"
	caFile     string // from "CA file for clients: FILE", with development certificates
	pin        string // from "server key pin: PIN"
	metricsURL string // from "metrics: URL", without the trailing /metrics
	devDir     string
}

var (
	reListening = regexp.MustCompile(`(?m)^quicsrv listening on (\S+) \(quicmsg/1, (\w+) mode\)$`)
	reCA        = regexp.MustCompile(`(?m)^CA file for clients: (.+)$`)
	rePin       = regexp.MustCompile(`(?m)^server key pin: (\S+)$`)
	reMetrics   = regexp.MustCompile(`(?m)^metrics: (http://\S+)/metrics$`)
)

// startServer runs quicsrv on an ephemeral port of 127.0.0.1, with metrics
// on another and development certificates in a fresh directory; args come
// after these and override them.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	return startServerIn(t, t.TempDir(), args...)
}

// startServerIn is startServer with development certificates in devDir.
func startServerIn(t *testing.T, devDir string, args ...string) *server {
	t.Helper()
	full := append([]string{
		"-addr", "127.0.0.1:0",
		"-dev-certs", devDir,
		"-metrics", "127.0.0.1:0",
		"-log-level", "debug",
	}, args...)
	s := &server{process: start(t, quicsrvBin, full...), devDir: devDir}
	// The metrics line is the last of the first lines.
	s.waitOutput(t, "quicsrv's first lines", func(stdout, _ string) bool { return reMetrics.MatchString(stdout) })
	out := s.stdout.String()
	require.Regexp(t, `^quicsrv listening on 127\.0\.0\.1:\d+ `, out, "the bound address is on the first line")
	s.addr = reListening.FindStringSubmatch(out)[1]
	s.pin = rePin.FindStringSubmatch(out)[1]
	s.metricsURL = reMetrics.FindStringSubmatch(out)[1]
	if m := reCA.FindStringSubmatch(out); m != nil {
		s.caFile = m[1]
	}
	return s
}

// client returns quiccli's arguments for this server, trusting its
// development CA, followed by args.
func (s *server) client(args ...string) []string {
	return append([]string{"-addr", s.addr, "-ca", s.caFile}, args...)
}

// quiccli starts quiccli against this server; see client.
func (s *server) quiccli(t *testing.T, args ...string) *process {
	t.Helper()
	return start(t, quiccliBin, s.client(args...)...)
}

// httpClient makes no keep-alive connections, so that none outlives a test.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

// get fetches path from the metrics server and returns the status and body.
func (s *server) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := httpClient.Get(s.metricsURL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// scrape fetches /metrics and parses it with the Prometheus text parser.
func (s *server) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	return testenv.Scrape(t, httpClient, s.metricsURL+"/metrics")
}

// metricValue returns the value of the counter or gauge name whose labels
// are exactly the given name/value pairs; -1 if there is none.
func metricValue(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	if v, ok := testenv.MetricValue(families, name, labels...); ok {
		return v
	}
	return -1
}

// waitMetric waits until a scrape shows the sample name (with labels) at
// want.
func (s *server) waitMetric(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("metric %s%v to reach %v", name, labels, want), func() bool {
		return metricValue(s.scrape(t), name, labels...) == want
	})
}

// waitSubscriptions waits until the relay has n (session, channel)
// subscriptions: a listener counts once it has its channels open.
func (s *server) waitSubscriptions(t *testing.T, n int) {
	t.Helper()
	s.waitMetric(t, float64(n), "quicmsg_relay_subscriptions")
}

package main

import (
	"context"
	"crypto/tls"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/transport"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

// waitTimeout bounds every wait in these tests; nothing should come close.
const waitTimeout = 15 * time.Second

// testServer is a run() in progress.
type testServer struct {
	addr       string // from "quicsrv listening on ADDR"
	caFile     string // from "CA file for clients: FILE", with development certificates
	pin        string
	metricsURL string // "http://ADDR" when started with -metrics
	devDir     string
	stdout     *testenv.Buffer
	stderr     *testenv.Buffer

	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
	stopErr  error
}

var (
	reListening = regexp.MustCompile(`(?m)^quicsrv listening on (\S+) `)
	reCA        = regexp.MustCompile(`(?m)^CA file for clients: (.+)$`)
	rePin       = regexp.MustCompile(`(?m)^server key pin: (\S+)$`)
	reMetrics   = regexp.MustCompile(`(?m)^metrics: (http://\S+)/metrics$`)
)

// startServer runs quicsrv on 127.0.0.1:0 with development certificates in
// a fresh directory; args come after the defaults and override them.
func startServer(t *testing.T, args ...string) *testServer {
	t.Helper()
	return startServerIn(t, t.TempDir(), args...)
}

// startServerIn is startServer with development certificates in devDir.
func startServerIn(t *testing.T, devDir string, args ...string) *testServer {
	t.Helper()
	return startServerArgs(t, devDir, append([]string{"-addr", "127.0.0.1:0", "-dev-certs", devDir, "-shutdown-timeout", "10s", "-log-level", "debug"}, args...))
}

// startServerArgs runs quicsrv with exactly the arguments full, which use
// the development certificates in devDir.
func startServerArgs(t *testing.T, devDir string, full []string) *testServer {
	t.Helper()
	ts := &testServer{devDir: devDir, stdout: &testenv.Buffer{}, stderr: &testenv.Buffer{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	go func() { ts.done <- run(ctx, full, ts.stdout, ts.stderr) }()
	t.Cleanup(func() {
		if err := ts.stop(t); err != nil {
			t.Errorf("run returned %v", err)
		}
		if t.Failed() {
			t.Logf("quicsrv stdout:\n%s\nquicsrv stderr:\n%s", ts.stdout, ts.stderr)
		}
	})

	withMetrics := false
	for _, a := range full {
		withMetrics = withMetrics || a == "-metrics"
	}
	deadline := time.After(waitTimeout)
	for {
		out := ts.stdout.String()
		if rePin.MatchString(out) && (!withMetrics || reMetrics.MatchString(out)) {
			ts.addr = reListening.FindStringSubmatch(out)[1]
			ts.pin = rePin.FindStringSubmatch(out)[1]
			if m := reCA.FindStringSubmatch(out); m != nil {
				ts.caFile = m[1]
			}
			if m := reMetrics.FindStringSubmatch(out); m != nil {
				ts.metricsURL = m[1]
			}
			return ts
		}
		if ts.startedJSON() { // -log-format json: no text on stdout
			return ts
		}
		select {
		case err := <-ts.done:
			ts.done <- err
			t.Fatalf("run returned before listening: %v\nstderr:\n%s", err, ts.stderr)
		case <-deadline:
			t.Fatalf("quicsrv did not print its address; stdout:\n%s\nstderr:\n%s", out, ts.stderr)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// stop cancels run's context, as SIGINT does, and returns what run returned.
func (ts *testServer) stop(t *testing.T) error {
	t.Helper()
	ts.stopOnce.Do(func() {
		ts.cancel()
		select {
		case ts.stopErr = <-ts.done:
		case <-time.After(2 * waitTimeout):
			t.Fatal("run did not return after its context ended")
		}
	})
	return ts.stopErr
}

// waitLog waits until stderr matches re.
func (ts *testServer) waitLog(t *testing.T, re string) {
	t.Helper()
	r := regexp.MustCompile(re)
	require.Eventually(t, func() bool { return r.MatchString(ts.stderr.String()) }, waitTimeout, 5*time.Millisecond,
		"no log line matching %q", re)
}

// clientTLS trusts the server's development CA.
func (ts *testServer) clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	conf, err := certs.ClientConfig(certs.ClientOptions{CAFile: ts.caFile, ServerName: "localhost"})
	require.NoError(t, err)
	return conf
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// dial connects to addr and closes the connection at cleanup.
func dial(t *testing.T, addr string, conf *tls.Config) *transport.Conn {
	t.Helper()
	c, err := transport.Dial(testCtx(t), addr, conf, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseWithError(transport.CodeNoError, "") })
	return c
}

func openChannel(t *testing.T, c *transport.Conn, name string) *transport.Channel {
	t.Helper()
	ch, err := c.OpenChannel(testCtx(t), name)
	require.NoError(t, err)
	return ch
}

func send(t *testing.T, ch *transport.Channel, msg string) {
	t.Helper()
	require.NoError(t, ch.Send(testCtx(t), []byte(msg)))
}

func receive(t *testing.T, ch *transport.Channel) string {
	t.Helper()
	b, err := ch.Receive(testCtx(t))
	require.NoError(t, err)
	return string(b)
}

var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: waitTimeout}

// scrape fetches /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, baseURL string) map[string]*dto.MetricFamily {
	t.Helper()
	return testenv.Scrape(t, httpClient, baseURL+"/metrics")
}

// metricValue returns the value of the unlabelled sample name, or of the
// sample with the given label pairs; -1 if there is none.
func metricValue(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	if v, ok := testenv.MetricValue(families, name, labels...); ok {
		return v
	}
	return -1
}

// waitMetric waits until a scrape shows name (with labels) at want.
func (ts *testServer) waitMetric(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		return metricValue(scrape(t, ts.metricsURL), name, labels...) == want
	}, waitTimeout, 10*time.Millisecond, "metric %s%v: want %v", name, labels, want)
}

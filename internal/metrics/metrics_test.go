package metrics

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/relay"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

type fakeConn struct {
	mu     sync.Mutex
	st     transport.ConnStats
	goAway *transport.GoAway
}

func (c *fakeConn) PeerGoAway() (transport.GoAway, bool) {
	if c.goAway == nil {
		return transport.GoAway{}, false
	}
	return *c.goAway, true
}

func (c *fakeConn) Stats() transport.ConnStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *fakeConn) receive(n, bytes uint64) {
	c.mu.Lock()
	c.st.MessagesReceived += n
	c.st.BytesReceived += bytes
	c.mu.Unlock()
}

// scrape fetches /metrics from h and parses it with the Prometheus text
// parser.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return testenv.Scrape(t, client, srv.URL+"/metrics")
}

// value returns the value of the sample of family name whose labels are
// labels (name=value pairs).
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	_, ok := families[name]
	require.True(t, ok, "no metric %s", name)
	v, ok := testenv.MetricValue(families, name, labels...)
	require.True(t, ok, "no sample %s%v", name, labels)
	return v
}

func newMetrics(t *testing.T, src Sources) *Metrics {
	t.Helper()
	m, err := New(src)
	require.NoError(t, err)
	return m
}

func TestScrapeReportsServerRelayAndSessionCounters(t *testing.T) {
	m := newMetrics(t, Sources{
		Server: func() session.Stats {
			return session.Stats{ActiveSessions: 1, SessionsAccepted: 2, SessionsRefused: 3, MessagesHandled: 40, BackpressureEvents: 5, OverloadDisconnects: 6, PendingBytes: 14}
		},
		Listener: func() transport.ListenerStats {
			return transport.ListenerStats{HandshakeFailures: 7, Refused: 8, HelloTimeouts: 9, EvictedHellos: 11, PendingHellos: 12, RefusedHandshakes: 13, EarlyDataRefused: 15}
		},
		Relay: func() relay.Stats {
			return relay.Stats{Subscribers: 2, Subscriptions: 3, Channels: 1, Queued: 4, Published: 10, Routed: 20, Delivered: 15, Dropped: 1, SlowConsumerEvents: 1, SlowConsumerDisconnects: 1,
				SlowConsumerGaps: relay.GapStats{Notices: 2, Messages: 30}, DisconnectGaps: relay.GapStats{Notices: 1, Messages: 5},
				PublishTimeouts: 3, NoResponders: 4, Refused: 6, Policy: relay.Block}
		},
		Version: "v1.2.3",
	})
	a, b := &fakeConn{}, &fakeConn{}
	m.SessionStarted(a)
	m.SessionStarted(b)
	a.receive(10, 100)
	b.receive(1, 1)
	m.ChannelOpened()
	m.ChannelOpened()
	m.ChannelOpened()
	m.ChannelClosed()
	m.SessionEnded(a, true, &transport.ConnError{Code: transport.CodeSlowConsumer})
	b.receive(1, 1)

	f := scrape(t, m.Handler())
	for name, want := range map[string]float64{
		"quicmsg_sessions_active":                   1,
		"quicmsg_sessions_accepted_total":           2,
		"quicmsg_sessions_refused_total":            3,
		"quicmsg_messages_handled_total":            40,
		"quicmsg_backpressure_events_total":         5,
		"quicmsg_overload_disconnects_total":        6,
		"quicmsg_listener_handshake_failures_total": 7,
		"quicmsg_listener_refused_total":            8,
		"quicmsg_listener_hello_timeouts_total":     9,
		"quicmsg_listener_hello_evictions_total":    11,
		"quicmsg_listener_pending_hellos":           12,
		"quicmsg_listener_handshakes_refused_total": 13,
		"quicmsg_listener_early_data_refused_total": 15,
		"quicmsg_pending_bytes":                     14,
		"quicmsg_messages_received_total":           12,
		"quicmsg_received_bytes_total":              102,
		"quicmsg_channels_open":                     2,
		"quicmsg_channels_opened_total":             3,
		"quicmsg_relay_subscribers":                 2,
		"quicmsg_relay_queued_messages":             4,
		"quicmsg_relay_dropped_total":               1,
		"quicmsg_slow_consumer_events_total":        1,
		"quicmsg_slow_consumer_disconnects_total":   1,
		"quicmsg_relay_publish_timeouts_total":      3,
		"quicmsg_relay_no_responders_total":         4,
		"quicmsg_relay_publishes_refused_total":     6,
	} {
		require.Equal(t, want, value(t, f, name), name)
	}
	require.Equal(t, 1.0, value(t, f, "quicmsg_build_info", "version", "v1.2.3", "commit", "unknown", "goversion", runtime.Version()))
	require.Equal(t, 1.0, value(t, f, "quicmsg_relay_slow_consumer_policy", "policy", "block"))
	require.Equal(t, 2.0, value(t, f, "quicmsg_relay_gaps_total", "reason", "slow_consumer"))
	require.Equal(t, 30.0, value(t, f, "quicmsg_relay_gap_messages_total", "reason", "slow_consumer"))
	require.Equal(t, 1.0, value(t, f, "quicmsg_relay_gaps_total", "reason", "disconnect"))
	require.Equal(t, 5.0, value(t, f, "quicmsg_relay_gap_messages_total", "reason", "disconnect"))
	require.Equal(t, 1.0, value(t, f, "quicmsg_session_disconnects_total", "by", "server", "code", "slow_consumer"))
	require.Equal(t, 1.0, value(t, f, "quicmsg_handshakes_total", "zero_rtt", "true"))
	require.Equal(t, 0.0, value(t, f, "quicmsg_handshakes_total", "zero_rtt", "false"))
	require.Contains(t, f, "go_goroutines", "the Go collector is registered")
}

func TestEchoModeHasNoRelayMetrics(t *testing.T) {
	m := newMetrics(t, Sources{Server: func() session.Stats { return session.Stats{} }})
	f := scrape(t, m.Handler())
	require.Contains(t, f, "quicmsg_sessions_active")
	require.NotContains(t, f, "quicmsg_relay_published_total")
	require.NotContains(t, f, "quicmsg_listener_refused_total")
}

func TestTotalsStayMonotonicWhenSessionsEnd(t *testing.T) {
	m := newMetrics(t, Sources{Server: func() session.Stats { return session.Stats{} }})
	c := &fakeConn{}
	m.SessionStarted(c)
	c.receive(3, 30)
	before := m.connTotals()
	m.SessionEnded(c, false, nil)
	require.Equal(t, before, m.connTotals())
	m.SessionEnded(c, false, nil) // a second end does not count the bytes twice
	require.Equal(t, before, m.connTotals())
}

func TestHealthzReportsShutdown(t *testing.T) {
	var draining error
	var mu sync.Mutex
	m := newMetrics(t, Sources{
		Server: func() session.Stats { return session.Stats{} },
		Health: func() error { mu.Lock(); defer mu.Unlock(); return draining },
	})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() (int, string) {
		resp, err := client.Get(srv.URL + "/healthz")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	code, body := get()
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)

	mu.Lock()
	draining = errors.New("shutting down")
	mu.Unlock()
	code, body = get()
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "shutting down\n", body)
}

func TestDisconnectLabels(t *testing.T) {
	graceful := &fakeConn{goAway: &transport.GoAway{Code: transport.CodeNoError}}
	leaving := &fakeConn{goAway: &transport.GoAway{Code: transport.CodeGoingAway}}
	for _, tc := range []struct {
		conn     Conn
		cause    error
		code, by string
	}{
		{&fakeConn{}, &transport.ConnError{Code: transport.CodeNoError, Remote: true}, "no_error", "client"},
		{graceful, &transport.ConnError{Code: transport.CodeNoError}, "no_error", "client"},
		{&fakeConn{}, &transport.ConnError{Code: transport.CodeNoError}, "no_error", "server"},
		{leaving, &transport.ConnError{Code: transport.CodeNoError}, "no_error", "server"},
		{&fakeConn{}, &transport.ConnError{Code: transport.CodeGoingAway}, "going_away", "server"},
		{graceful, fmt.Errorf("wrapped: %w", &transport.ConnError{Code: transport.CodeSlowConsumer}), "slow_consumer", "server"},
		{&fakeConn{}, &transport.ConnError{Code: 0x1234, Remote: true}, "other", "client"},
		{&fakeConn{}, &quic.IdleTimeoutError{}, "idle_timeout", "network"},
		{&fakeConn{}, &quic.StatelessResetError{}, "stateless_reset", "network"},
		{&fakeConn{}, &quic.TransportError{Remote: true}, "transport_error", "client"},
		{&fakeConn{}, errors.New("something else"), "other", "server"},
		{&fakeConn{}, nil, "other", "server"},
	} {
		code, by := DisconnectLabels(tc.conn, tc.cause)
		require.Equal(t, tc.code, code, "%v", tc.cause)
		require.Equal(t, tc.by, by, "%v", tc.cause)
	}
}

func TestNewRequiresAServerSource(t *testing.T) {
	_, err := New(Sources{})
	require.ErrorContains(t, err, "Sources.Server")
}

// Detached sessions, resumes and refusals by reason are exported; a
// session's connection that ended while the session was detached counts
// once in the totals, and its next connection from the resume on.
func TestResumeMetricsAndDetachedConnectionTotals(t *testing.T) {
	m := newMetrics(t, Sources{Server: func() session.Stats {
		return session.Stats{DetachedSessions: 2, DetachedBytes: 300, SessionsDetached: 5, SessionsResumed: 3, SessionsExpired: 1,
			DetachedEvicted: 1, ResumesRefused: session.ResumeRefusals{Expired: 4, Replayed: 1, Attached: 2, Claim: 1}}
	}})
	old, next := &fakeConn{}, &fakeConn{}
	m.SessionStarted(old)
	old.receive(2, 20)
	m.ConnEnded(old)
	m.SessionStarted(next)
	next.receive(1, 10)
	m.SessionEnded(next, false, nil)
	require.Equal(t, uint64(3), m.connTotals().MessagesReceived)
	// A session that ended detached has no connection any more.
	m.SessionEnded(nil, false, &transport.ConnError{Code: transport.CodeNoError})
	require.Equal(t, uint64(3), m.connTotals().MessagesReceived)

	f := scrape(t, m.Handler())
	for name, want := range map[string]float64{
		"quicmsg_sessions_detached":               2,
		"quicmsg_detached_bytes":                  300,
		"quicmsg_sessions_detached_total":         5,
		"quicmsg_sessions_resumed_total":          3,
		"quicmsg_sessions_expired_total":          1,
		"quicmsg_sessions_detached_evicted_total": 1,
	} {
		require.Equal(t, want, value(t, f, name), name)
	}
	for reason, want := range map[string]float64{"expired": 4, "replayed": 1, "attached": 2, "claim": 1} {
		require.Equal(t, want, value(t, f, "quicmsg_resumes_refused_total", "reason", reason), reason)
	}
	require.Equal(t, 1.0, value(t, f, "quicmsg_session_disconnects_total", "by", "server", "code", "no_error"))
}

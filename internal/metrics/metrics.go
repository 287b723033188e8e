package metrics

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quicmsg/quicmsg/internal/relay"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// Namespace prefixes every metric name.
const Namespace = "quicmsg"

// Sources are read at every scrape. Server is required; the others may be
// nil, and their metrics are then left out.
type Sources struct {
	Server   func() session.Stats
	Listener func() transport.ListenerStats
	Relay    func() relay.Stats
	// Health returns nil while the server admits new sessions; /healthz
	// answers 503 with its text otherwise (for example during shutdown).
	Health func() error
	// Degraded returns why the server works in a degraded way (for
	// example cluster mode without NATS), or "": /healthz then answers
	// 200 with "degraded: " and the reason, as the server still serves.
	Degraded func() string
	// Version and Commit are reported in quicmsg_build_info, with the Go
	// version; an empty Commit is reported as "unknown".
	Version, Commit string
}

// Conn is a session's connection as the metrics see it; *transport.Conn
// implements it. Conns are compared with ==.
type Conn interface {
	Stats() transport.ConnStats
	PeerGoAway() (transport.GoAway, bool)
}

// Metrics holds a registry with the server's metrics. Its methods are safe
// for concurrent use; the hook methods never block.
type Metrics struct {
	src Sources
	reg *prometheus.Registry

	mu    sync.Mutex
	live  map[Conn]struct{}
	ended transport.ConnStats // summed over connections that have ended

	channelsOpen   atomic.Int64
	channelsOpened atomic.Uint64
	disconnects    *prometheus.CounterVec
	sessionsEnded  *prometheus.CounterVec

	handshakeSeconds, sessionSeconds, queueDelaySeconds prometheus.Histogram
}

// Buckets of the histograms, in seconds.
var (
	// HandshakeBuckets go from 0.5 ms to 4 s, the handshake timeout's order.
	HandshakeBuckets = prometheus.ExponentialBuckets(0.0005, 2, 14)
	// SessionBuckets go from 0.1 s to about 5 days.
	SessionBuckets = prometheus.ExponentialBuckets(0.1, 4, 12)
	// QueueDelayBuckets go from 10 µs to about 40 s.
	QueueDelayBuckets = prometheus.ExponentialBuckets(0.00001, 4, 12)
)

// New returns metrics reading src, in a new registry that also holds the Go
// runtime and process collectors.
func New(src Sources) (*Metrics, error) {
	if src.Server == nil {
		return nil, errors.New("metrics: Sources.Server is required")
	}
	m := &Metrics{
		src:  src,
		reg:  prometheus.NewRegistry(),
		live: make(map[Conn]struct{}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "session_disconnects_total",
			Help:      "Sessions ended, by quicmsg error code (or idle_timeout, stateless_reset, transport_error, other) and by who ended them (client, server, network).",
		}, []string{"code", "by"}),
		sessionsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "handshakes_total",
			Help:      "Handshakes of sessions that have ended, by whether the client resumed with 0-RTT data the server accepted (zero_rtt=\"true\") or not.",
		}, []string{"zero_rtt"}),
	}
	m.handshakeSeconds = histogram("handshake_duration_seconds", "Time from a connection's first packet to its session's start (QUIC handshake and HELLO exchange), for sessions started or resumed.", HandshakeBuckets)
	m.sessionSeconds = histogram("session_duration_seconds", "Lifetime of sessions that have ended, from their start to their end (detached time included).", SessionBuckets)
	m.queueDelaySeconds = histogram("relay_queue_delay_seconds", "Relay mode: time a message waited in a subscriber's queue before it was handed to the subscriber's session, sampled (see the metric's documentation).", QueueDelayBuckets)
	// Both label values exist from the start, so that rates work at once.
	m.sessionsEnded.WithLabelValues("true")
	m.sessionsEnded.WithLabelValues("false")
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.disconnects,
		m.sessionsEnded,
		m.handshakeSeconds,
		m.sessionSeconds,
		m.queueDelaySeconds,
		&collector{m: m},
	} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return m, nil
}

// Registry returns the registry holding the metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SessionStarted starts counting c's messages and bytes.
func (m *Metrics) SessionStarted(c Conn) {
	m.mu.Lock()
	m.live[c] = struct{}{}
	m.mu.Unlock()
}

// ConnEnded moves the final counters of c, a session's connection that
// ended while the session goes on (detached, waiting for a resume), into
// the totals; SessionStarted counts the session's next connection.
func (m *Metrics) ConnEnded(c Conn) {
	st := c.Stats()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.live[c]; ok {
		delete(m.live, c)
		addConnStats(&m.ended, st)
	}
}

// SessionEnded moves c's final counters into the totals and counts the end
// of its session: by cause (see [DisconnectLabels]) and by whether it used
// 0-RTT. c is nil for a session that ended detached, without a connection
// (see [Metrics.ConnEnded]).
func (m *Metrics) SessionEnded(c Conn, used0RTT bool, cause error) {
	if c != nil {
		m.ConnEnded(c)
	}
	m.disconnects.WithLabelValues(DisconnectLabels(c, cause)).Inc()
	m.sessionsEnded.WithLabelValues(fmt.Sprint(used0RTT)).Inc()
}

// ObserveHandshake records a handshake that took d, from the connection's
// first packet to its session's start.
func (m *Metrics) ObserveHandshake(d time.Duration) { m.handshakeSeconds.Observe(d.Seconds()) }

// ObserveSession records a session that lasted d.
func (m *Metrics) ObserveSession(d time.Duration) { m.sessionSeconds.Observe(d.Seconds()) }

// ObserveQueueDelay records a message that waited d in a subscriber's
// queue. It is relay.Config.OnQueueDelay.
func (m *Metrics) ObserveQueueDelay(d time.Duration) { m.queueDelaySeconds.Observe(d.Seconds()) }

// histogram returns a histogram in Namespace.
func histogram(name, help string, buckets []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets})
}

// ChannelOpened counts a channel opened by either side.
func (m *Metrics) ChannelOpened() {
	m.channelsOpen.Add(1)
	m.channelsOpened.Add(1)
}

// ChannelClosed counts a channel that ended.
func (m *Metrics) ChannelClosed() { m.channelsOpen.Add(-1) }

// connTotals sums the counters of live and ended connections. Holding mu
// across the sum keeps the totals monotonic when a connection ends meanwhile.
func (m *Metrics) connTotals() transport.ConnStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.ended
	for c := range m.live {
		addConnStats(&t, c.Stats())
	}
	return t
}

func addConnStats(dst *transport.ConnStats, s transport.ConnStats) {
	dst.MessagesSent += s.MessagesSent
	dst.MessagesWritten += s.MessagesWritten
	dst.MessagesReceived += s.MessagesReceived
	dst.BytesSent += s.BytesSent
	dst.BytesReceived += s.BytesReceived
	dst.RejectedChannels += s.RejectedChannels
}

// Handler serves the metrics at /metrics in the Prometheus exposition
// formats and the server's health at /healthz ("ok", or 503 with the reason).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if m.src.Health != nil {
			if err := m.src.Health(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, err.Error()+"\n")
				return
			}
		}
		if m.src.Degraded != nil {
			if why := m.src.Degraded(); why != "" {
				_, _ = io.WriteString(w, "degraded: "+why+"\n")
				return
			}
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

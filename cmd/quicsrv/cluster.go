package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quicmsg/quicmsg/internal/cluster"
	"github.com/quicmsg/quicmsg/internal/metrics"
)

// clusterOptions are the flags of cluster mode (relay mode with -cluster).
type clusterOptions struct {
	urls     string
	required bool
	buffer   int
	creds    string
	tlsCA    string
}

// clusterFlags defines the flags of the NATS backplane.
func (o *options) clusterFlags(fs *flag.FlagSet) {
	c := &o.cluster
	fs.StringVar(&c.urls, "cluster", "", "relay mode: join a cluster through the NATS servers at these comma-separated `URLs` (nats://host:4222,...): messages published here reach the other nodes' subscribers and the other way; see CLUSTER.md")
	fs.BoolVar(&c.required, "cluster-required", true, "with -cluster: exit when NATS cannot be reached at start; false: start local-only, report degraded on /healthz and keep trying")
	fs.IntVar(&c.buffer, "cluster-buffer", cluster.DefaultReconnectBufSize, "with -cluster: `bytes` of published messages kept while NATS is unreachable; beyond them messages are dropped and counted in quicmsg_cluster_dropped_total{reason=\"nats_down\"}")
	fs.StringVar(&c.creds, "cluster-creds", "", "with -cluster: NATS credentials `file` (JWT and NKey seed)")
	fs.StringVar(&c.tlsCA, "cluster-ca", "", "with -cluster: PEM `file` of the CAs that sign the NATS servers' certificates (TLS to NATS)")
}

func (c *clusterOptions) check(mode string) error {
	switch {
	case c.urls == "":
		return nil
	case mode != modeRelay:
		return errors.New("-cluster needs -mode relay")
	case c.buffer <= 0:
		return fmt.Errorf("-cluster-buffer %d must be positive", c.buffer)
	}
	for u := range strings.SplitSeq(c.urls, ",") {
		if !strings.Contains(u, "://") {
			return fmt.Errorf("-cluster %q: want nats://host:port URLs separated by commas", u)
		}
	}
	return nil
}

// startCluster connects the NATS backplane when -cluster is set; the
// relay takes it in h.handler. The caller closes it after the relay.
func (h *hooks) startCluster(o *clusterOptions) error {
	if o.urls == "" {
		return nil
	}
	var opts []nats.Option
	if !o.required {
		opts = append(opts, nats.RetryOnFailedConnect(true))
	}
	if o.creds != "" {
		opts = append(opts, nats.UserCredentials(o.creds))
	}
	if o.tlsCA != "" {
		opts = append(opts, nats.RootCAs(o.tlsCA))
	}
	bp, err := cluster.New(&cluster.Config{URLs: o.urls, ReconnectBufSize: o.buffer, Options: opts, Logger: h.log})
	if err != nil {
		return fmt.Errorf("-cluster: %w (start with -cluster-required=false to run local-only until NATS is back)", err)
	}
	if !bp.Connected() {
		h.log.Warn("NATS unreachable: running local-only until it is back", "urls", o.urls)
	}
	h.backplane = bp
	return nil
}

// clusterDegraded is the /healthz degraded reason while NATS is down.
func (h *hooks) clusterDegraded() string {
	if err := h.backplane.Lost(); err != nil {
		return fmt.Sprintf("NATS connection closed for good (%v): messages do not cross nodes until quicsrv restarts", err)
	}
	if h.backplane.Connected() {
		return ""
	}
	return "NATS unreachable: messages do not cross nodes"
}

// clusterCollector exposes the backplane's counters as quicmsg_cluster_*.
type clusterCollector struct{ bp *cluster.Backplane }

var (
	clusterPublished = clusterDesc("cluster_published_total", "Messages published here and handed to NATS (sent or buffered while NATS is unreachable).")
	clusterReceived  = clusterDesc("cluster_received_total", "Messages from other nodes handed to the relay.")
	clusterDropped   = clusterDesc("cluster_dropped_total", "Messages that did not cross the backplane, by reason: nats_down (reconnect buffer full), too_large (over NATS max_payload), invalid (subject or header NATS cannot carry), closed, error, slow_consumer (NATS dropped for this node), refused (a subject quicmsg does not take), no_member (a queue group's message for this node after its last member left).", "reason")
	clusterConnected = clusterDesc("cluster_connected", "1 while the NATS connection is up, else 0.")
	clusterSubs      = clusterDesc("cluster_subscriptions", "NATS subscriptions held for local interest.")
	clusterRTT       = clusterDesc("cluster_rtt_seconds", "The last round trip to NATS measured (every 5 s); 0 while NATS is down.")
)

func clusterDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, "", name), help, labels, nil)
}

// Describe sends the descriptions of the cluster metrics.
func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{clusterPublished, clusterReceived, clusterDropped, clusterConnected, clusterSubs, clusterRTT} {
		ch <- d
	}
}

// Collect reads the backplane's counters.
func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.bp.Stats()
	ch <- prometheus.MustNewConstMetric(clusterPublished, prometheus.CounterValue, float64(st.Published))
	ch <- prometheus.MustNewConstMetric(clusterReceived, prometheus.CounterValue, float64(st.Received))
	for reason, n := range st.Dropped {
		ch <- prometheus.MustNewConstMetric(clusterDropped, prometheus.CounterValue, float64(n), string(reason))
	}
	connected := 0.0
	if st.Connected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(clusterConnected, prometheus.GaugeValue, connected)
	ch <- prometheus.MustNewConstMetric(clusterSubs, prometheus.GaugeValue, float64(st.Subscriptions))
	ch <- prometheus.MustNewConstMetric(clusterRTT, prometheus.GaugeValue, st.RTT.Seconds())
}

// logCluster is the "quicsrv started" line's cluster fields.
func (h *hooks) logCluster(log *slog.Logger) {
	if h.backplane != nil {
		log.Info("cluster mode: relay linked to the other nodes through NATS", "node", h.backplane.NodeID(), "connected", h.backplane.Connected())
	}
}

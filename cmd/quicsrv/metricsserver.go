package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/quicmsg/quicmsg/internal/metrics"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// metricsServer serves -metrics: Prometheus metrics and the health check.
type metricsServer struct {
	srv *http.Server
	ln  net.Listener
}

// newMetricsServer sets h.metrics up and listens on addr; it returns nil
// when addr is empty (no -metrics). /healthz fails once draining is set.
func newMetricsServer(addr string, srv *session.Server, ln *transport.Listener, h *hooks, draining *atomic.Bool) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	src := metrics.Sources{
		Server:   srv.Stats,
		Listener: ln.Stats,
		Version:  version(),
		Health: func() error {
			if draining.Load() {
				return errShuttingDown
			}
			return nil
		},
	}
	if h.relay != nil {
		src.Relay = h.relay.Stats
	}
	if h.backplane != nil {
		src.Degraded = h.clusterDegraded
	}
	var err error
	if h.metrics, err = metrics.New(src); err != nil {
		return nil, err
	}
	if h.backplane != nil {
		h.metrics.Registry().MustRegister(clusterCollector{h.backplane})
	}
	mln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &metricsServer{
		srv: &http.Server{Handler: h.metrics.Handler(), ReadHeaderTimeout: 5 * time.Second},
		ln:  mln,
	}, nil
}

// serve serves HTTP until shutdown.
func (ms *metricsServer) serve(log *slog.Logger) {
	if err := ms.srv.Serve(ms.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("metrics server failed", "err", err)
	}
}

// shutdown stops the HTTP server, waiting up to a second for requests under
// way.
func (ms *metricsServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = ms.srv.Shutdown(ctx)
}

package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/quicmsg/quicmsg/internal/metrics"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// metricsServer serves -metrics: Prometheus metrics, the health check, the
// JSON status endpoints and, with -pprof, the Go profiler.
type metricsServer struct {
	srv *http.Server
	ln  net.Listener
}

// newMetricsServer sets h.metrics up and listens on o.metricsAddr; it
// returns nil when that is empty (no -metrics). /healthz fails once
// draining is set.
func newMetricsServer(o *options, srv *session.Server, ln *transport.Listener, h *hooks, draining *atomic.Bool) (*metricsServer, error) {
	if o.metricsAddr == "" {
		return nil, nil
	}
	src := metrics.Sources{
		Server:   srv.Stats,
		Listener: ln.Stats,
		Version:  version(),
		Commit:   commit(),
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
	mln, err := net.Listen("tcp", o.metricsAddr)
	if err != nil {
		return nil, inUse(err, "-metrics", o.metricsAddr)
	}
	mux := http.NewServeMux()
	mux.Handle("/", h.metrics.Handler())
	status := &statusPage{srv: srv, h: h, mode: o.mode, addr: ln.Addr().String(), started: time.Now()}
	status.register(mux)
	if o.pprof {
		registerPprof(mux)
	}
	return &metricsServer{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		ln:  mln,
	}, nil
}

// registerPprof serves the Go profiler at /debug/pprof/ (-pprof). The
// handlers are added to mux rather than taken from http.DefaultServeMux,
// which importing net/http/pprof fills for any server that uses it.
func registerPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
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

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/internal/wire"
	"github.com/quicmsg/quicmsg/transport"
)

// serveRaw is serve-raw mode: a raw quic-go server with quicsrv's TLS and
// QUIC settings (transport.Config's quic.Config, with -keep-alive and
// -idle-timeout as quicsrv's flags of those names) that accepts
// connections and holds each one with one goroutine: it waits in
// AcceptStream for the connection's first stream, then echoes what arrives
// on it, waiting in the stream's Read between messages, until the peer
// closes it or ctx ends. With -metrics it serves the Go runtime's and the
// process's figures in Prometheus' text format, the same names quicsrv's
// -metrics gives (go_memstats_heap_inuse_bytes, go_goroutines, ...), so
// that hold mode measures it as it measures quicsrv.
func serveRaw(ctx context.Context, o *options, stdout io.Writer) error {
	tlsConf, err := certs.ServerConfig(certs.ServerOptions{CertFile: o.certFile, KeyFile: o.keyFile, NextProtos: []string{wire.ALPN}})
	if err != nil {
		return err
	}
	qconf, err := (&transport.Config{Allow0RTT: true, KeepAlivePeriod: o.keepAlive, IdleTimeout: o.idleTimeout}).QUICConfig()
	if err != nil {
		return err
	}
	ua, err := net.ResolveUDPAddr("udp", o.addr)
	if err != nil {
		return err
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return err
	}
	tr := &quic.Transport{Conn: udp}
	// Closing the transport ends the connections still held, and with
	// them their goroutines, which are then joined.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer udp.Close()
	defer tr.Close()
	ln, err := tr.ListenEarly(tlsConf, qconf)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "raw quic-go listening on %s\n", udp.LocalAddr())
	if o.metricsURL != "" {
		stopMetrics, err := serveMetrics(o.metricsURL, stdout)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept(context.Background())
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, quic.ErrServerClosed) {
				return nil
			}
			return err
		}
		wg.Go(func() { echoConn(c) })
	}
}

// echoConn echoes everything that arrives on c's first stream, echoSize
// bytes at a time, and closes c when the stream or c ends.
func echoConn(c *quic.Conn) {
	defer c.CloseWithError(0, "")
	s, err := c.AcceptStream(c.Context())
	if err != nil {
		return
	}
	buf := make([]byte, echoSize)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// serveMetrics serves the default Prometheus registry (the Go runtime's
// and the process's collectors) at http://addr/metrics, prints
// "metrics: URL" and returns a function that stops it and waits for it.
func serveMetrics(addr string, stdout io.Writer) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	fmt.Fprintf(stdout, "metrics: http://%s/metrics\n", ln.Addr())
	return func() {
		_ = srv.Close()
		wg.Wait()
	}, nil
}

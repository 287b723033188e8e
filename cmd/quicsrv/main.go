// Command quicsrv runs a quicmsg server.
//
// With no flags it listens on 127.0.0.1:4433 in relay mode, with development
// certificates that it creates in .quicmsg/dev-certs (certs.DefaultDevDir,
// relative to the working directory) on first start and reuses afterwards.
// Its first lines on stdout give the address it listens on, the CA file
// clients need and the server key's pin (with -log-format json, the
// "quicsrv started" log line gives them instead):
//
//	quicsrv
//	quicsrv -addr 0.0.0.0:4433 -cert server.pem -key server-key.pem -metrics 127.0.0.1:9464
//	quicsrv -mode echo -log-format json
//
// In relay mode (-mode relay, the default) quicsrv is publish/subscribe by
// subject: a channel's name is a subject or a pattern with NATS's wildcards
// ("*", ">"), optionally in a queue group, and a message a client publishes
// goes to every other client with a matching subscription. Each subscriber
// has a bounded queue (-subscriber-queue, -subscriber-queue-bytes); when it
// is full, -slow-consumer says what happens: drop (the default: the
// subscriber alone misses messages and is told how many in a gap notice),
// disconnect (gap notices, then close it with slow_consumer) or block (the
// publishers wait up to -publish-timeout, then that subscriber is
// disconnected). A request that matches no subscription gets a "no
// responders" reply. In echo mode (-mode echo) every message goes back on
// its channel, and a request gets its own data as the reply.
//
// -metrics ADDR serves Prometheus metrics at /metrics, a health check at
// /healthz, which answers 503 while the server shuts down, and JSON status
// at /status, /status/sessions and /status/subscriptions; -pprof adds the
// Go profiler at /debug/pprof/.
//
// Signals: SIGINT or SIGTERM sends GOAWAY to every session and lets them
// drain for up to -shutdown-timeout, then exits 0; a second one closes every
// session at once and exits 1. SIGHUP reloads -cert and -key (so does a
// change of the files, checked every -reload-interval): new connections get
// the new certificate, live sessions keep theirs. With -config FILE the
// settings are read from a TOML file as well (the command line wins);
// SIGHUP reloads it, applies the settings that can change live (log-level,
// max-sessions, shutdown-timeout, the relay's queue limits and
// publish-timeout) and logs the others as needing a restart.
// -log-format json makes every line on stderr a JSON object.
//
// cmd/quicsrv/README.md documents every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		var reported reportedError
		if !errors.As(err, &reported) {
			fmt.Fprintln(os.Stderr, "quicsrv:", err)
		}
		stop()
		os.Exit(1)
	}
}

// errForced is returned when a second signal cut the drain short.
var errForced = errors.New("second signal: sessions closed without draining")

// errShuttingDown is what /healthz reports during shutdown.
var errShuttingDown = errors.New("shutting down")

// run runs the server until ctx ends, then shuts it down gracefully. Its
// first line on stdout is "quicsrv listening on ADDR (...)"; with JSON
// logs it prints nothing on stdout, and the "quicsrv started" log line
// says the same. With JSON logs, the error it returns has been logged as
// JSON (reportedError).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	json := jsonRequested(args) || (o != nil && o.logFormat == logJSON)
	if err == nil {
		err = runServer(ctx, o, stdout, stderr)
	}
	return reportJSON(err, json, stderr)
}

// runServer is run once the options are parsed.
func runServer(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	if o.version {
		fmt.Fprintln(stdout, versionLine())
		return nil
	}
	level := new(slog.LevelVar)
	level.Set(o.logLevel)
	log := newLogger(o.logFormat, level, stderr)
	defer captureStdLog(log)()
	if o.devClientCert != "" {
		return issueDevClientCert(o, stdout)
	}
	applyMemoryLimit(o.memoryLimit)
	refused := newHandshakeLog(log)
	defer refused.close()
	tc, err := transportConfig(o, log)
	if err != nil {
		return err
	}
	tc.Tracer = refused.tracer(tc.Tracer)
	st, err := setupTLS(o, &tc, log)
	if err != nil {
		return err
	}
	defer st.close()
	h := &hooks{log: log}
	defer h.close()
	handler, err := h.handler(o)
	if err != nil {
		return err
	}
	rk, err := resumeKey(o.resumeKeyFile, log)
	if err != nil {
		return err
	}
	srv, ln, err := listen(o, st, &tc, rk, h, handler)
	if err != nil {
		return err
	}
	var draining atomic.Bool
	ms, err := newMetricsServer(o, srv, ln, h, &draining)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("-metrics: %w", err)
	}

	// SIGHUP is caught before the first line is printed, so that whoever
	// waits for that line may send it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	announce(stdout, log, o, st, ln.Addr(), ms)
	h.logCluster(log)

	live := newLiveConfig(o, level, srv, h.relay, log)
	defer startBackground(st, hup, live, ms, log)()
	return serve(ctx, srv, ln, &draining, live.shutdownTimeoutNow, log)
}

// announce prints the first lines on stdout (not with JSON logs, which
// print no text) and logs "quicsrv started" with what they say, so that a
// reader of the log alone has it too: with JSON logs, this line is where a
// script finds the address.
func announce(stdout io.Writer, log *slog.Logger, o *options, st *serverTLS, addr net.Addr, ms *metricsServer) {
	if o.logFormat != logJSON {
		printBanner(stdout, o, st, addr, ms)
	}
	attrs := []any{"version", version(), "addr", addr.String(), "mode", o.mode,
		"mutual_tls", o.clientCA != "", "zero_rtt", true, "ticket_keys", o.ticketKeys, "pin", st.pin()}
	if st.caFile != "" {
		attrs = append(attrs, "ca_file", st.caFile)
	}
	if o.clientCA != "" {
		attrs = append(attrs, "client_ca", o.clientCA)
	}
	if ms != nil {
		attrs = append(attrs, "metrics", "http://"+ms.ln.Addr().String()+"/metrics")
	}
	if o.configFile != "" {
		attrs = append(attrs, "config", o.configFile)
	}
	log.Info("quicsrv started", attrs...)
}

// startBackground starts the goroutines that run beside the session
// server: the certificate watcher, which also reloads the config file on
// SIGHUP, and, with -metrics, the HTTP server. The
// function it returns stops them and waits for them; run calls it on return.
func startBackground(st *serverTLS, hup <-chan os.Signal, live *liveConfig, ms *metricsServer, log *slog.Logger) (stop func()) {
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	wg.Go(func() { st.watchCertificate(ctx, hup, live.o.reloadInterval, live.reload, log) })
	if ms != nil {
		wg.Go(func() { ms.serve(log) })
	}
	return func() {
		if ms != nil {
			ms.shutdown()
		}
		cancel()
		wg.Wait()
	}
}

// transportConfig returns the transport settings the flags ask for. With
// -qlog it creates the trace directory; with -server-id the listener's
// connection IDs carry the server ID.
func transportConfig(o *options, log *slog.Logger) (transport.Config, error) {
	tc := transport.Config{
		MaxMessageSize:  o.maxMessageSize,
		IdleTimeout:     o.idleTimeout,
		KeepAlivePeriod: o.keepAlive,
		Allow0RTT:       true,
		Mode:            o.mode, // in HELLO: a client that needs another mode fails at once
	}
	if o.qlogDir != "" {
		if err := os.MkdirAll(o.qlogDir, 0o700); err != nil {
			return tc, fmt.Errorf("-qlog: %w", err)
		}
		tc.Tracer = qlogTracer(o.qlogDir, log)
		log.Warn("writing a qlog trace of every connection: for debugging only", "dir", o.qlogDir)
	}
	err := setServerID(o, &tc, log)
	return tc, err
}

// listen creates the session server and the QUIC listener it will serve.
func listen(o *options, st *serverTLS, tc *transport.Config, rk *transport.ResumeKey, h *hooks, handler session.Handler) (*session.Server, *transport.Listener, error) {
	srv, err := session.NewServer(&session.Config{
		MaxSessions:         o.maxSessions,
		PendingCap:          o.pendingCap,
		PendingBytes:        o.pendingBytes,
		Overflow:            o.overflow,
		Transport:           *tc,
		Logger:              h.log,
		OnSessionStart:      h.sessionStart,
		OnSessionEnd:        h.sessionEnd,
		OnChannelOpen:       h.channelOpen,
		OnChannelClose:      h.channelClose,
		ResumeWindow:        o.resumeWindow,
		MaxDetachedSessions: o.maxDetached,
		ResumeKey:           rk,
		OnSessionDetached:   h.sessionDetached,
		OnSessionResumed:    h.sessionResumed,
	}, handler)
	if err != nil {
		return nil, nil, err
	}
	// The server's listener advertises the pending limits it enforces.
	ln, err := srv.Listen(o.addr, st.conf)
	if err != nil {
		return nil, nil, inUse(err, "-addr", o.addr)
	}
	return srv, ln, nil
}

// inUse adds to a listen error for an address already in use which flag
// chooses another.
func inUse(err error, flag, addr string) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w: another process listens on %s; choose another address with %s", err, addr, flag)
	}
	return err
}

// printBanner prints the first lines: where the server listens and what
// clients need to reach it.
func printBanner(stdout io.Writer, o *options, st *serverTLS, addr net.Addr, ms *metricsServer) {
	fmt.Fprintf(stdout, "quicsrv listening on %s (quicmsg/1, %s mode)\n", addr, o.mode)
	if st.caFile != "" {
		fmt.Fprintf(stdout, "CA file for clients: %s\n", st.caFile)
	} else {
		fmt.Fprintf(stdout, "certificate: %s\n", st.certFile)
	}
	fmt.Fprintf(stdout, "server key pin: %s\n", st.pin())
	if o.clientCA != "" {
		fmt.Fprintf(stdout, "mutual TLS: clients need a certificate signed by %s\n", o.clientCA)
	}
	if ms != nil {
		fmt.Fprintf(stdout, "metrics: http://%s/metrics\n", ms.ln.Addr())
	}
}

// serve serves ln until it fails or ctx ends; then it marks the server
// draining and shuts it down.
func serve(ctx context.Context, srv *session.Server, ln *transport.Listener, draining *atomic.Bool, timeout func() time.Duration, log *slog.Logger) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		_ = srv.Close()
		return err
	case <-ctx.Done():
	}
	draining.Store(true)
	return shutdown(srv, serveErr, timeout(), log)
}

// shutdown sends GOAWAY to every session and waits up to timeout for them
// to leave; a second SIGINT or SIGTERM closes them at once.
func shutdown(srv *session.Server, serveErr <-chan error, timeout time.Duration, log *slog.Logger) error {
	log.Info("shutting down: GOAWAY sent to every session", "sessions", srv.ActiveSessions(), "timeout", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	second := make(chan os.Signal, 1)
	signal.Notify(second, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(second)
	var forced atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-second:
			forced.Store(true)
			log.Warn("second signal: closing every session now")
			cancel()
		case <-ctx.Done():
		}
	})
	left := srv.ActiveSessions()
	err := srv.Shutdown(ctx)
	cancel()
	wg.Wait()
	<-serveErr
	switch {
	case forced.Load():
		return errForced
	case errors.Is(err, context.DeadlineExceeded):
		log.Warn("drain timed out; remaining sessions closed", "timeout", timeout, "sessions_at_start", left)
	case err != nil:
		return err
	}
	log.Info("stopped")
	return nil
}

// issueDevClientCert implements -dev-client-cert.
func issueDevClientCert(o *options, stdout io.Writer) error {
	dev, err := certs.EnsureDev(o.devDir, devHosts(o.addr))
	if err != nil {
		return err
	}
	certFile, keyFile, err := certs.NewDevClientCert(o.devDir, o.devClientCert)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "client certificate: %s\nclient key: %s\nsigned by (use with -client-ca): %s\n", certFile, keyFile, dev.CAFile)
	return nil
}

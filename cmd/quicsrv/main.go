// Command quicsrv runs a quicmsg server.
//
// With no arguments it listens on 127.0.0.1:4433, creates development
// certificates in .quicmsg/dev-certs on first start (and reuses them after),
// and echoes every message back on its channel:
//
//	quicsrv
//	quicsrv -addr 0.0.0.0:4433 -cert server.pem -key server-key.pem
//
// SIGINT or SIGTERM sends GOAWAY to every session and drains for up to
// -shutdown-timeout; a second signal exits at once.
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
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "quicsrv:", err)
		os.Exit(1)
	}
}

type options struct {
	addr            string
	certFile        string
	keyFile         string
	devDir          string
	ticketKeys      string
	maxSessions     int
	maxMessageSize  int
	pendingCap      int
	idleTimeout     time.Duration
	shutdownTimeout time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("quicsrv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:4433", "UDP address to listen on")
	fs.StringVar(&o.certFile, "cert", "", "server certificate (PEM); default: development certificate")
	fs.StringVar(&o.keyFile, "key", "", "server private key (PEM)")
	fs.StringVar(&o.devDir, "dev-certs", certs.DefaultDevDir, "directory for development certificates, used when -cert is not given")
	fs.StringVar(&o.ticketKeys, "ticket-keys", "", "file keeping the TLS session ticket and stateless reset keys, so that clients resume with 0-RTT after a restart (created if missing; default: session-keys.pem in -dev-certs when using development certificates)")
	fs.IntVar(&o.maxSessions, "max-sessions", session.DefaultMaxSessions, "maximum concurrent sessions")
	fs.IntVar(&o.maxMessageSize, "max-message-size", transport.DefaultMaxMessageSize, "largest message accepted, bytes (at most 16 MiB)")
	fs.IntVar(&o.pendingCap, "pending-cap", session.DefaultPendingCap, "messages received but not yet handled per session before backpressure")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", transport.DefaultIdleTimeout, "close sessions that receive nothing for this long")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long to drain sessions on SIGINT/SIGTERM")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: quicsrv [flags]\n\nRuns a quicmsg echo server.\n\nExample:\n  quicsrv -addr 127.0.0.1:4433\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, errors.New("-cert and -key go together")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	sopts := certs.ServerOptions{CertFile: o.certFile, KeyFile: o.keyFile}
	var caFile, pin string
	if o.certFile == "" {
		host, _, err := net.SplitHostPort(o.addr)
		if err != nil {
			return fmt.Errorf("-addr %q: %w", o.addr, err)
		}
		hosts := certs.DefaultDevHosts()
		if host != "" && !slices.Contains(hosts, host) && host != "0.0.0.0" && host != "::" {
			hosts = append(hosts, host)
		}
		dev, err := certs.EnsureDev(o.devDir, hosts)
		if err != nil {
			return err
		}
		sopts = dev.ServerOptions()
		caFile, pin = dev.CAFile, dev.Pin
		if o.ticketKeys == "" {
			o.ticketKeys = filepath.Join(o.devDir, "session-keys.pem")
		}
		if dev.Generated {
			log.Info("generated development certificates", "dir", o.devDir)
		}
	} else if pin, err = certs.PinFile(o.certFile); err != nil {
		return err
	}
	tlsConf, err := certs.ServerConfig(sopts)
	if err != nil {
		return err
	}
	cfg := &session.Config{
		MaxSessions: o.maxSessions,
		PendingCap:  o.pendingCap,
		Logger:      log,
		Transport:   transport.Config{MaxMessageSize: o.maxMessageSize, IdleTimeout: o.idleTimeout, Allow0RTT: true},
	}
	if o.ticketKeys != "" {
		keys, err := certs.LoadOrCreateSessionKeys(o.ticketKeys)
		if err != nil {
			return err
		}
		tlsConf.SetSessionTicketKeys([][32]byte{keys.Ticket})
		resetKey := quic.StatelessResetKey(keys.StatelessReset)
		cfg.Transport.StatelessResetKey = &resetKey
	}
	srv, err := session.NewServer(cfg, session.HandlerFunc(func(ctx context.Context, s *session.Session, m session.Message) {
		if err := s.Send(ctx, m.Channel, m.Data); err != nil {
			log.Debug("echo failed", "session", s.ID().String(), "channel", m.Channel, "err", err)
		}
	}))
	if err != nil {
		return err
	}
	ln, err := transport.Listen(o.addr, tlsConf, &cfg.Transport)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "quicsrv listening on %s (quicmsg/1, echo mode)\n", ln.Addr())
	if caFile != "" {
		fmt.Fprintf(stdout, "CA file for clients: %s\n", caFile)
	}
	fmt.Fprintf(stdout, "server key pin: %s\n", pin)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", o.shutdownTimeout, "sessions", srv.ActiveSessions())
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	// A second signal ends the drain at once.
	second := make(chan os.Signal, 1)
	signal.Notify(second, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(second)
	go func() {
		select {
		case <-second:
			cancel()
		case <-sctx.Done():
		}
	}()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	<-serveErr
	log.Info("stopped")
	return nil
}

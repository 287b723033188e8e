package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/internal/keylog"
	"github.com/quicmsg/quicmsg/transport"
)

// serverTLS is the server's TLS set-up: the config, the reloader behind its
// certificate, and what the first lines tell clients.
type serverTLS struct {
	conf     *tls.Config
	reloader *certs.Reloader
	certFile string
	keyFile  string
	caFile   string // the development CA, when the development certificate is used
	keyLog   io.Closer
}

// setupTLS loads or creates the certificate, and applies -client-ca,
// -ticket-keys and -keylog. The stateless reset key from -ticket-keys goes
// into tc.
func setupTLS(o *options, tc *transport.Config, log *slog.Logger) (*serverTLS, error) {
	st := &serverTLS{certFile: o.certFile, keyFile: o.keyFile}
	if o.certFile == "" {
		dev, err := certs.EnsureDev(o.devDir, devHosts(o.addr))
		if err != nil {
			return nil, err
		}
		if dev.Generated {
			log.Info("development certificates written", "dir", o.devDir)
		}
		st.certFile, st.keyFile, st.caFile = dev.CertFile, dev.KeyFile, dev.CAFile
		if o.ticketKeys == "" {
			o.ticketKeys = filepath.Join(o.devDir, "session-keys.pem")
		}
	}
	r, err := certs.NewReloader(st.certFile, st.keyFile)
	if err != nil {
		return nil, err
	}
	st.reloader = r
	st.conf, err = certs.ServerConfig(certs.ServerOptions{Reloader: r, ClientCAFile: o.clientCA})
	if err != nil {
		return nil, err
	}
	if o.ticketKeys != "" {
		keys, err := certs.LoadOrCreateSessionKeys(o.ticketKeys)
		if err != nil {
			return nil, err
		}
		st.conf.SetSessionTicketKeys([][32]byte{keys.Ticket})
		resetKey := quic.StatelessResetKey(keys.StatelessReset)
		tc.StatelessResetKey = &resetKey
	}
	if o.keyLogFile != "" {
		f, err := keylog.Open(o.keyLogFile)
		if err != nil {
			return nil, fmt.Errorf("-keylog: %w", err)
		}
		st.conf.KeyLogWriter, st.keyLog = f, f
		// A log line, not a plain-text banner: a JSON log stays JSON.
		log.Warn("WARNING: -keylog: TLS secrets of every connection are appended to this file: anyone who has it can decrypt the traffic; use it for debugging only, and delete it afterwards", "file", o.keyLogFile)
	}
	return st, nil
}

// devHosts are the names the development certificate must cover: the
// defaults plus the host of -addr, unless it is a wildcard.
func devHosts(addr string) []string {
	hosts := certs.DefaultDevHosts()
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return hosts
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return hosts
	}
	if !slices.Contains(hosts, host) {
		hosts = append(hosts, host)
	}
	return hosts
}

// pin returns the public key pin of the certificate now served.
func (st *serverTLS) pin() string {
	if c := st.reloader.Certificate(); c != nil && c.Leaf != nil {
		return certs.PublicKeyPin(c.Leaf)
	}
	return ""
}

func (st *serverTLS) close() {
	if st.keyLog != nil {
		_ = st.keyLog.Close()
	}
}

// reload loads the certificate files again; new connections get the new
// certificate, live ones keep theirs.
func (st *serverTLS) reload(log *slog.Logger, why string) {
	if err := st.reloader.Reload(); err != nil {
		log.Error("certificate reload failed; still serving the previous certificate", "reason", why, "err", err)
		return
	}
	attrs := []any{"reason", why, "cert", st.certFile, "pin", st.pin()}
	if c := st.reloader.Certificate(); c != nil && c.Leaf != nil {
		attrs = append(attrs, "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	log.Info("certificate reloaded", attrs...)
}

// watchCertificate calls onHUP and reloads the certificate on every value
// from hup and,
// with a non-zero interval, when the files' size or modification time has
// changed and then stayed put for one interval, so that a certificate and
// key written one after the other are loaded together. It returns when ctx
// ends.
func (st *serverTLS) watchCertificate(ctx context.Context, hup <-chan os.Signal, interval time.Duration, onHUP func(), log *slog.Logger) {
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	loaded := st.fileStamp()
	seen := loaded
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			onHUP()
			loaded = st.fileStamp()
			seen = loaded
			st.reload(log, "SIGHUP")
		case <-tick:
			now := st.fileStamp()
			if now.equal(seen) && !now.equal(loaded) {
				loaded = now
				st.reload(log, "files changed")
			}
			seen = now
		}
	}
}

// fileStamp tells whether the certificate files changed.
type fileStamp struct {
	certSize, keySize int64
	certMod, keyMod   time.Time
}

func (a fileStamp) equal(b fileStamp) bool {
	return a.certSize == b.certSize && a.keySize == b.keySize && a.certMod.Equal(b.certMod) && a.keyMod.Equal(b.keyMod)
}

// fileStamp describes the certificate files; a file that cannot be read
// leaves its part zero, so that its return is noticed.
func (st *serverTLS) fileStamp() fileStamp {
	var s fileStamp
	if fi, err := os.Stat(st.certFile); err == nil {
		s.certSize, s.certMod = fi.Size(), fi.ModTime()
	}
	if fi, err := os.Stat(st.keyFile); err == nil {
		s.keySize, s.keyMod = fi.Size(), fi.ModTime()
	}
	return s
}

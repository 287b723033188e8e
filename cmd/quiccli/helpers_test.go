package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"

	"github.com/quicmsg/quicmsg/internal/relay"
	"github.com/quicmsg/quicmsg/internal/testenv"
)

var (
	pkiOnce sync.Once
	pkiCA   *certs.KeyPair
	pkiLeaf *certs.KeyPair
	pkiErr  error
)

// testPKI returns a CA and a server certificate for 127.0.0.1 and
// localhost signed by it, made once per test binary.
func testPKI(t *testing.T) (ca, leaf *certs.KeyPair) {
	t.Helper()
	pkiOnce.Do(func() {
		if pkiCA, pkiErr = certs.GenerateCA("quiccli test CA", time.Hour); pkiErr != nil {
			return
		}
		pkiLeaf, pkiErr = certs.GenerateLeaf(pkiCA, certs.LeafOptions{Hosts: []string{"127.0.0.1", "localhost"}, ValidFor: time.Hour})
	})
	require.NoError(t, pkiErr)
	return pkiCA, pkiLeaf
}

// writeCA writes ca's certificate to a file in a temporary directory and
// returns its path.
func writeCA(t *testing.T, ca *certs.KeyPair) string {
	t.Helper()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	require.NoError(t, ca.WriteFiles(cert, key))
	return cert
}

// serverOptions shape a test server.
type serverOptions struct {
	addr           string // default 127.0.0.1:0
	relay          bool   // relay (publish/subscribe by channel) instead of echo
	maxMessageSize int    // 0: the default
	clientCAFile   string // require client certificates signed by this CA
	// mode is announced in HELLO; "" announces "echo" or "relay" as
	// quicsrv does, modeNone none (a server that predates MODE).
	mode string
}

// modeNone in serverOptions.mode: the server announces no mode.
const modeNone = "-"

// testServer is a quicmsg server on an ephemeral port of 127.0.0.1.
type testServer struct {
	srv    *session.Server
	addr   string
	caFile string // trusts the server's certificate
	pin    string // the server key's pin
}

// startServer runs a session server that echoes every message (and
// answers requests), or relays it as quicsrv's relay mode does (package
// relay: subjects, wildcards, queue groups, no responders), and closes it
// at cleanup.
func startServer(t *testing.T, o serverOptions) *testServer {
	t.Helper()
	ca, leaf := testPKI(t)
	cert := leaf.TLSCertificate()
	tlsConf, err := certs.ServerConfig(certs.ServerOptions{Certificate: &cert, ClientCAFile: o.clientCAFile})
	require.NoError(t, err)
	cfg := &session.Config{Transport: transport.Config{MaxMessageSize: o.maxMessageSize, Mode: transport.ModeEcho}}
	switch {
	case o.mode == modeNone:
		cfg.Transport.Mode = ""
	case o.mode != "":
		cfg.Transport.Mode = o.mode
	case o.relay:
		cfg.Transport.Mode = transport.ModeRelay
	}
	handler := session.Handler(session.HandlerFunc(echo))
	if o.relay {
		r, err := relay.New(nil)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, r.Close()) })
		handler = relayHooks(r, cfg)
	}
	srv, err := session.NewServer(cfg, handler)
	require.NoError(t, err)
	addr := o.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := transport.Listen(addr, tlsConf, &cfg.Transport)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		require.ErrorIs(t, <-served, session.ErrServerClosed)
	})
	return &testServer{srv: srv, addr: ln.Addr().String(), caFile: writeCA(t, ca), pin: leaf.Pin()}
}

// echo sends m back on its channel, as quicsrv's echo mode does; it
// answers a request (a message with a reply-to) with its data instead.
func echo(ctx context.Context, s *session.Session, m session.Message) {
	if m.Header.Get(transport.HeaderReplyTo) != "" {
		_ = s.Reply(ctx, m, &transport.Message{Data: m.Data})
		return
	}
	_ = s.Send(ctx, m.Channel, m.Data)
}

// relayHooks wires r into cfg's hooks as quicsrv's relay mode does (each
// open channel a subscription in its queue group) and returns the handler
// that publishes every message.
func relayHooks(r *relay.Relay, cfg *session.Config) session.Handler {
	cfg.OnChannelOpen = func(s *session.Session, channel string) {
		var group string
		if ch, ok := s.Channel(channel); ok {
			group = ch.Options().Group
		}
		_ = r.Subscribe(s, channel, group)
	}
	cfg.OnChannelClose = func(s *session.Session, channel string) { r.Unsubscribe(s, channel) }
	cfg.OnSessionEnd = func(s *session.Session, _ error) { r.Remove(s) }
	return session.HandlerFunc(func(ctx context.Context, s *session.Session, m session.Message) {
		_, _ = r.Publish(ctx, s, &transport.Message{Subject: m.Subject, Header: m.Header, Data: m.Data})
	})
}

// session returns the server's one session that has channel open.
func (ts *testServer) session(t *testing.T, channel string) *session.Session {
	t.Helper()
	ts.waitSubscribers(t, channel, 1)
	for _, s := range ts.srv.Sessions() {
		if slices.Contains(s.Channels(), channel) {
			return s
		}
	}
	t.Fatalf("no session has channel %q open", channel)
	return nil
}

// args returns the global flags that reach ts, then more.
func (ts *testServer) args(more ...string) []string {
	return append([]string{"-addr", ts.addr, "-ca", ts.caFile, "-timeout", "5s"}, more...)
}

// waitSubscribers waits until n sessions have channel open.
func (ts *testServer) waitSubscribers(t *testing.T, channel string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		got := 0
		for _, s := range ts.srv.Sessions() {
			if slices.Contains(s.Channels(), channel) {
				got++
			}
		}
		return got >= n
	}, 5*time.Second, 5*time.Millisecond, "%d sessions with channel %q open", n, channel)
}

// outcome is what a run of quiccli produced.
type outcome struct {
	stdout, stderr string
	err            error
	code           int
}

func (o outcome) lines() []string {
	return strings.Split(strings.TrimRight(o.stdout, "\n"), "\n")
}

// runCLI runs quiccli with args and stdin, bounded by 20 s.
func runCLI(t *testing.T, stdin io.Reader, args ...string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return runCLIContext(ctx, stdin, args...)
}

func runCLIContext(ctx context.Context, stdin io.Reader, args ...string) outcome {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var stdout, stderr testenv.Buffer
	err := run(ctx, args, stdin, &stdout, &stderr)
	return outcome{stdout: stdout.String(), stderr: stderr.String(), err: err, code: exitCode(err)}
}

// startCLI runs quiccli in the background; wait returns its outcome.
func startCLI(t *testing.T, stdin io.Reader, args ...string) (stdout *testenv.Buffer, wait func() outcome) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	stdout = &testenv.Buffer{}
	var stderr testenv.Buffer
	done := make(chan outcome, 1)
	go func() {
		if stdin == nil {
			stdin = strings.NewReader("")
		}
		err := run(ctx, args, stdin, stdout, &stderr)
		done <- outcome{stdout: stdout.String(), stderr: stderr.String(), err: err, code: exitCode(err)}
	}()
	var once sync.Once
	var out outcome
	wait = func() outcome {
		once.Do(func() { out = <-done; cancel() })
		return out
	}
	t.Cleanup(func() { cancel(); wait() })
	return stdout, wait
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// openTemp creates a regular file, closed at cleanup.
func openTemp(t *testing.T) (*os.File, error) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err == nil {
		t.Cleanup(func() { _ = f.Close() })
	}
	return f, err
}

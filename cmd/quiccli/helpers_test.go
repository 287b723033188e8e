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
}

// testServer is a quicmsg server on an ephemeral port of 127.0.0.1.
type testServer struct {
	srv    *session.Server
	addr   string
	caFile string // trusts the server's certificate
	pin    string // the server key's pin
}

// startServer runs a session server that echoes every message, or relays
// it to every other session that has its channel open, and closes it at
// cleanup.
func startServer(t *testing.T, o serverOptions) *testServer {
	t.Helper()
	ca, leaf := testPKI(t)
	cert := leaf.TLSCertificate()
	tlsConf, err := certs.ServerConfig(certs.ServerOptions{Certificate: &cert, ClientCAFile: o.clientCAFile})
	require.NoError(t, err)
	var srv *session.Server
	handler := session.HandlerFunc(func(ctx context.Context, s *session.Session, m session.Message) {
		if !o.relay {
			echo(ctx, s, m)
			return
		}
		relay(ctx, srv, s, m)
	})
	cfg := &session.Config{Transport: transport.Config{MaxMessageSize: o.maxMessageSize}}
	srv, err = session.NewServer(cfg, handler)
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

// relay publishes m to its subject: every other session's channels that
// match it get it, with its headers. A request nobody receives is answered
// with status 503 (no responders), as quicsrv's relay does.
func relay(ctx context.Context, srv *session.Server, from *session.Session, m session.Message) {
	out := &transport.Message{Subject: m.Subject, Header: m.Header, Data: m.Data}
	if publish(ctx, srv, from, out) > 0 {
		return
	}
	if to := m.Header.Get(transport.HeaderReplyTo); to != "" {
		publish(ctx, srv, nil, &transport.Message{Subject: to, Header: transport.Header{
			{Key: transport.HeaderStatus, Value: transport.StatusNoResponders},
			{Key: transport.HeaderInReplyTo, Value: m.Header.Get(transport.HeaderMsgID)},
		}})
	}
}

// publish delivers m to every session but from whose channels match its
// subject, and returns to how many channels.
func publish(ctx context.Context, srv *session.Server, from *session.Session, m *transport.Message) int {
	n := 0
	for _, other := range srv.Sessions() {
		if other == from {
			continue
		}
		for _, ch := range other.Channels() {
			if transport.MatchSubject(ch, m.Subject) {
				_ = other.SendMsg(ctx, ch, m)
				n++
			}
		}
	}
	return n
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

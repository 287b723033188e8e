package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

var (
	testPKIOnce               sync.Once
	testServerTLS, testCliTLS *tls.Config
	testPKIErr                error
)

// testTLS returns a server config holding a certificate for localhost and
// 127.0.0.1 and a client config that trusts it, made once per test binary.
// Callers that change a config must Clone it first.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	testPKIOnce.Do(func() {
		ca, err := certs.GenerateCA("client test CA", time.Hour)
		if err != nil {
			testPKIErr = err
			return
		}
		leaf, err := certs.GenerateLeaf(ca, certs.LeafOptions{Hosts: []string{"localhost", "127.0.0.1"}, ValidFor: time.Hour})
		if err != nil {
			testPKIErr = err
			return
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca.Cert)
		testServerTLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}}
		testCliTLS = &tls.Config{RootCAs: roots, ServerName: "localhost"}
	})
	require.NoError(t, testPKIErr)
	return testServerTLS, testCliTLS
}

// echoHandler sends every message back on the channel it came on.
var echoHandler = session.HandlerFunc(func(ctx context.Context, s *session.Session, m session.Message) {
	_ = s.Send(ctx, m.Channel, m.Data)
})

// startEchoServer runs a session server that echoes every message, on an
// ephemeral port of 127.0.0.1, and closes it at cleanup. cfg may be nil.
func startEchoServer(t testing.TB, cfg *session.Config) (srv *session.Server, addr string) {
	t.Helper()
	return startTestServer(t, cfg, echoHandler)
}

// startTestServer is startEchoServer with another handler.
func startTestServer(t testing.TB, cfg *session.Config, h session.Handler) (srv *session.Server, addr string) {
	t.Helper()
	srv, err := session.NewServer(cfg, h)
	require.NoError(t, err)
	var tc *transport.Config
	if cfg != nil {
		// As ListenAndServe does: the listener advertises the server's cap.
		c := cfg.Transport
		c.PendingCap = cfg.PendingCap
		tc = &c
	}
	serverTLS, _ := testTLS(t)
	ln, err := transport.Listen("127.0.0.1:0", serverTLS, tc)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		require.ErrorIs(t, <-served, session.ErrServerClosed)
	})
	return srv, ln.Addr().String()
}

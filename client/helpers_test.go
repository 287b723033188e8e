package client

import (
	"context"
	"crypto/tls"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// testTLS returns a server config and a client config that trusts it.
// Callers that change a config must Clone it first.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	return testenv.TLS(t)
}

// testClientTLS returns the client config of testTLS.
func testClientTLS(t testing.TB) *tls.Config {
	t.Helper()
	_, c := testTLS(t)
	return c
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
	return srv, serveListener(t, srv, tc).Addr().String()
}

// serveListener serves srv on a listener of 127.0.0.1 made with tc (nil
// for the defaults) until cleanup, and returns the listener.
func serveListener(t testing.TB, srv *session.Server, tc *transport.Config) *transport.Listener {
	t.Helper()
	serverTLS, _ := testTLS(t)
	ln, err := transport.Listen("127.0.0.1:0", serverTLS, tc)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		require.ErrorIs(t, <-served, session.ErrServerClosed)
	})
	return ln
}

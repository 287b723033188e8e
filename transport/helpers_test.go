package transport

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

type testPKI struct {
	server *tls.Config
	client *tls.Config
}

// testTLS returns a server config and a client config that trusts it.
func testTLS(t testing.TB) testPKI {
	t.Helper()
	server, client := testenv.TLS(t)
	return testPKI{server: server, client: client}
}

func listen(t testing.TB, cfg *Config) *Listener {
	t.Helper()
	ln, err := Listen("127.0.0.1:0", testTLS(t).server, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, ln.Close()) })
	return ln
}

func dialTest(t testing.TB, ln *Listener, cfg *Config) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, ln.Addr().String(), testTLS(t).client, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseWithError(CodeNoError, "") })
	return c
}

// pair returns a connected client and server.
func pair(t testing.TB, srvCfg, cliCfg *Config) (client, server *Conn, ln *Listener) {
	t.Helper()
	ln = listen(t, srvCfg)
	client = dialTest(t, ln, cliCfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, err := ln.Accept(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.CloseWithError(CodeNoError, "") })
	return client, server, ln
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

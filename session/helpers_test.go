package session

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/internal/wire"
	"github.com/quicmsg/quicmsg/transport"
)

type testPKI struct {
	server *tls.Config
	client *tls.Config
}

func testTLS(t testing.TB) testPKI {
	t.Helper()
	server, client := testenv.TLS(t)
	return testPKI{server: server, client: client}
}

// Why most tests here poll the wall clock: a session exists only over a
// real QUIC connection on 127.0.0.1 (no mocks of QUIC), and quic-go's UDP
// reads and timers are not durably blocking, so a testing/synctest bubble
// cannot hold them. What the server does without a connection (the budget's
// wake-ups, the waits of Shutdown and Close) runs on synctest in
// synctest_test.go.

// startServer runs a session server on 127.0.0.1:0 and closes it at cleanup.
func startServer(t testing.TB, cfg *Config, h Handler) (*Server, string) {
	t.Helper()
	srv, addr, done := serve(t, cfg, h)
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		require.ErrorIs(t, <-done, ErrServerClosed)
	})
	return srv, addr
}

// serve runs a session server on 127.0.0.1:0; done receives what Serve
// returned. The caller shuts the server down.
func serve(t testing.TB, cfg *Config, h Handler) (srv *Server, addr string, done <-chan error) {
	t.Helper()
	srv, err := NewServer(cfg, h)
	require.NoError(t, err)
	ln, err := srv.Listen("127.0.0.1:0", testTLS(t).server)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return srv, ln.Addr().String(), served
}

func dial(t testing.TB, addr string, cfg *transport.Config) *transport.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := transport.Dial(ctx, addr, testTLS(t).client, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseWithError(transport.CodeNoError, "") })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo is a handler that sends every message back on its channel.
var echo = HandlerFunc(func(ctx context.Context, s *Session, m Message) {
	_ = s.Send(ctx, m.Channel, m.Data)
})

// rawClient speaks quicmsg/1 by hand over quic-go, so that tests can send
// what a well-behaved transport.Conn never would.
type rawClient struct {
	qc   *quic.Conn
	ctrl *quic.Stream
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	return dialRawHello(t, addr, wire.Hello{Version: wire.Version, MaxMessageSize: 1 << 20, PendingCap: 1000})
}

// dialRawHello is dialRaw with the client's HELLO given.
func dialRawHello(t testing.TB, addr string, h wire.Hello) *rawClient {
	t.Helper()
	ctx := testCtx(t)
	tc := testTLS(t).client.Clone()
	tc.NextProtos = []string{wire.ALPN}
	qc, err := quic.DialAddr(ctx, addr, tc, &quic.Config{MaxIdleTimeout: 30 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = qc.CloseWithError(0, "") })
	ctrl, err := qc.OpenStreamSync(ctx)
	require.NoError(t, err)
	hello := wire.Control{Type: wire.ControlHello, Hello: h}
	_, err = ctrl.Write(wire.AppendControl([]byte{wire.StreamControl}, hello))
	require.NoError(t, err)
	buf := make([]byte, 256) // the server's HELLO, with a resume token when h offers ACKS
	_ = ctrl.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := ctrl.Read(buf)
	require.NoError(t, err)
	f, _, err := wire.ParseControl(buf[:n])
	require.NoError(t, err)
	require.Equal(t, wire.ControlHello, f.Type)
	return &rawClient{qc: qc, ctrl: ctrl}
}

// openRaw opens a stream and writes b on it as is.
func (r *rawClient) openRaw(t testing.TB, b []byte) *quic.Stream {
	t.Helper()
	s, err := r.qc.OpenStreamSync(testCtx(t))
	require.NoError(t, err)
	_, err = s.Write(b)
	require.NoError(t, err)
	return s
}

// streamResetCode waits until the peer resets s and returns the code.
func streamResetCode(t testing.TB, s *quic.Stream) transport.ErrorCode {
	t.Helper()
	_ = s.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 1024)
	for {
		_, err := s.Read(buf)
		if err == nil {
			continue
		}
		var se *quic.StreamError
		require.True(t, errors.As(err, &se), "want a stream reset, got %v", err)
		require.True(t, se.Remote)
		return transport.ErrorCode(se.ErrorCode)
	}
}

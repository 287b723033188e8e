package session

import (
	"context"
	"crypto/tls"
	"io"
	"sync/atomic"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/idlemem"
	"github.com/quicmsg/quicmsg/internal/wire"
	"github.com/quicmsg/quicmsg/transport"
)

// BenchmarkIdleEchoedSessionMemory measures a session server's memory per
// idle session in the state users leave it in: one channel that exchanged
// one 64-byte echo, then nothing. It compares acknowledgements on (a
// resumable session) and off, against a raw quic-go server whose
// connections each echoed 64 bytes on one stream and keep it open, in the
// same run.
func BenchmarkIdleEchoedSessionMemory(b *testing.B) {
	qconf, err := (&transport.Config{}).QUICConfig()
	require.NoError(b, err)
	clientTLS := testTLS(b).client
	rawTLS := clientTLS.Clone()
	rawTLS.NextProtos = []string{wire.ALPN}
	msg := make([]byte, 64)
	session := func(cfg *transport.Config) idlemem.Dial {
		return func(ctx context.Context, addr string) (func(), error) {
			c, err := transport.Dial(ctx, addr, clientTLS, cfg)
			if err != nil {
				return nil, err
			}
			if err := echoOnce(ctx, c, msg); err != nil {
				_ = c.CloseWithError(transport.CodeNoError, "")
				return nil, err
			}
			return func() { _ = c.CloseWithError(transport.CodeNoError, "") }, nil
		}
	}
	dials := map[string]idlemem.Dial{
		"acks":   session(nil),
		"noacks": session(&transport.Config{DisableAcks: true}),
		"rawquic": func(ctx context.Context, addr string) (func(), error) {
			c, err := quic.DialAddr(ctx, addr, rawTLS, qconf)
			if err != nil {
				return nil, err
			}
			s, err := c.OpenStreamSync(ctx)
			if err == nil {
				_, err = s.Write(msg)
			}
			if err == nil {
				_, err = io.ReadFull(s, make([]byte, len(msg)))
			}
			if err != nil {
				_ = c.CloseWithError(0, "")
				return nil, err
			}
			return func() { _ = c.CloseWithError(0, "") }, nil
		},
	}
	for _, impl := range []string{"acks", "noacks", "rawquic"} {
		b.Run(impl, func(b *testing.B) {
			var per idlemem.PerConn
			measured := false
			for b.Loop() {
				if !measured {
					per = idlemem.MeasureAll(b, "TestBenchIdleEchoedChild", impl, testTLS(b).server, dials[impl])
					measured = true
				}
			}
			per.Report(b)
		})
	}
}

// echoOnce sends msg on a new channel of c and waits for its echo.
func echoOnce(ctx context.Context, c *transport.Conn, msg []byte) error {
	ch, err := c.OpenChannel(ctx, "idle")
	if err != nil {
		return err
	}
	if err := ch.Send(ctx, msg); err != nil {
		return err
	}
	_, err = ch.Receive(ctx)
	return err
}

// TestBenchIdleEchoedChild is the server process of
// BenchmarkIdleEchoedSessionMemory; it skips unless started by it.
func TestBenchIdleEchoedChild(t *testing.T) {
	qconf, err := (&transport.Config{}).QUICConfig()
	require.NoError(t, err)
	sessionServer := func(ctx context.Context, tlsConf *tls.Config, accepted *atomic.Int64) (string, func(), error) {
		srv, err := NewServer(&Config{OnSessionStart: func(*Session) { accepted.Add(1) }}, echo)
		if err != nil {
			return "", nil, err
		}
		ln, err := srv.Listen("127.0.0.1:0", tlsConf)
		if err != nil {
			return "", nil, err
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.Serve(ln)
		}()
		return ln.Addr().String(), func() {
			_ = srv.Close()
			<-done
		}, nil
	}
	idlemem.ServeChild(t, map[string]idlemem.Server{
		"acks":    sessionServer,
		"noacks":  sessionServer,
		"rawquic": rawEchoOnce(qconf),
	})
}

// rawEchoOnce is a raw quic-go server that echoes 64 bytes on the first
// stream of each connection and then keeps the stream and connection open,
// waiting for more, as an idle server would.
func rawEchoOnce(qconf *quic.Config) idlemem.Server {
	return func(ctx context.Context, tlsConf *tls.Config, accepted *atomic.Int64) (string, func(), error) {
		tlsConf = tlsConf.Clone()
		tlsConf.NextProtos = []string{wire.ALPN}
		ln, err := quic.ListenAddr("127.0.0.1:0", tlsConf, qconf)
		if err != nil {
			return "", nil, err
		}
		park := func(ctx context.Context, c *quic.Conn) {
			s, err := c.AcceptStream(ctx)
			if err != nil {
				return
			}
			buf := make([]byte, 64)
			if _, err := io.ReadFull(s, buf); err != nil {
				return
			}
			if _, err := s.Write(buf); err != nil {
				return
			}
			_, _ = s.Read(buf) // waits for more, as a server loop would
		}
		return ln.Addr().String(), idlemem.Park(ctx, accepted, ln.Accept, park, ln.Close), nil
	}
}

package session

import (
	"context"
	"crypto/tls"
	"io"
	"sync"
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
// connections each echoed 64 bytes on one stream and keep it open
// (rawquic), and against a raw quic-go server shaped as quicmsg's protocol
// needs (rawproto: a goroutine accepting streams, a control stream that
// exchanged a request and a reply with a goroutine reading it, one stream
// that echoed 64 bytes with a goroutine reading it), in the same run.
func BenchmarkIdleEchoedSessionMemory(b *testing.B) {
	dials := idleEchoedDials(b)
	for _, impl := range []string{"acks", "noacks", "rawquic", "rawproto"} {
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

// idleEchoedDials returns the client side of each server of
// BenchmarkIdleEchoedSessionMemory: a session (acks or noacks) or a raw
// quic-go connection (rawquic, rawproto) that exchanged one 64-byte echo.
func idleEchoedDials(tb testing.TB) map[string]idlemem.Dial {
	qconf, err := (&transport.Config{}).QUICConfig()
	require.NoError(tb, err)
	clientTLS := testTLS(tb).client
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
	return map[string]idlemem.Dial{
		"acks":     session(nil),
		"noacks":   session(&transport.Config{DisableAcks: true}),
		"rawquic":  rawDial(rawTLS, qconf, 1),
		"rawproto": rawDial(rawTLS, qconf, 2),
	}
}

// rawDial dials a raw quic-go connection and opens streams streams on it,
// each of which exchanges one 64-byte message and its echo and stays open.
func rawDial(tlsConf *tls.Config, qconf *quic.Config, streams int) idlemem.Dial {
	return func(ctx context.Context, addr string) (func(), error) {
		c, err := quic.DialAddr(ctx, addr, tlsConf, qconf)
		if err != nil {
			return nil, err
		}
		for range streams {
			if err = rawEcho(ctx, c); err != nil {
				_ = c.CloseWithError(0, "")
				return nil, err
			}
		}
		return func() { _ = c.CloseWithError(0, "") }, nil
	}
}

// rawEcho opens a stream on c, writes 64 bytes and reads their echo.
func rawEcho(ctx context.Context, c *quic.Conn) error {
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	msg := make([]byte, 64)
	if _, err := s.Write(msg); err != nil {
		return err
	}
	_, err = io.ReadFull(s, msg)
	return err
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
		"acks":     sessionServer,
		"noacks":   sessionServer,
		"rawquic":  rawEchoOnce(qconf),
		"rawproto": rawProto(qconf),
	})
}

// rawProto is a raw quic-go server with the goroutines quicmsg's protocol
// needs on quic-go's blocking API, and nothing else: per connection, one
// goroutine waiting in AcceptStream for the next stream (quicmsg's session
// goroutine taking channels), one reading the first stream (the control
// stream, which answered one request as HELLO does) and one reading each
// further stream (a channel's reader), echoing what arrives. Its idle
// connection is the floor of a quicmsg session's shape on quic-go.
func rawProto(qconf *quic.Config) idlemem.Server { return rawServer(qconf, acceptAndEcho) }

// rawServer is a raw quic-go listener with qconf, negotiating quicmsg's
// ALPN, that holds each accepted connection on a goroutine running park.
func rawServer(qconf *quic.Config, park func(context.Context, *quic.Conn)) idlemem.Server {
	return func(ctx context.Context, tlsConf *tls.Config, accepted *atomic.Int64) (string, func(), error) {
		tlsConf = tlsConf.Clone()
		tlsConf.NextProtos = []string{wire.ALPN}
		ln, err := quic.ListenAddr("127.0.0.1:0", tlsConf, qconf)
		if err != nil {
			return "", nil, err
		}
		return ln.Addr().String(), idlemem.Park(ctx, accepted, ln.Accept, park, ln.Close), nil
	}
}

// acceptAndEcho takes c's streams until ctx or c ends, each read by a
// goroutine of its own that echoes what arrives; then it closes c and
// waits for the readers.
func acceptAndEcho(ctx context.Context, c *quic.Conn) {
	var wg sync.WaitGroup
	defer wg.Wait()
	defer c.CloseWithError(0, "")
	for {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Go(func() { echoStream(s) })
	}
}

// echoStream writes back what arrives on s, 64 bytes at a time, until s
// fails.
func echoStream(s *quic.Stream) {
	buf := make([]byte, 64)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if _, err := s.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// rawEchoOnce is a raw quic-go server that echoes 64 bytes on the first
// stream of each connection and then keeps the stream and connection open,
// waiting for more, as an idle server would.
func rawEchoOnce(qconf *quic.Config) idlemem.Server {
	return rawServer(qconf, func(ctx context.Context, c *quic.Conn) {
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
	})
}

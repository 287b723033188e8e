package session

import (
	"context"
	"crypto/tls"
	"sync/atomic"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/idlemem"
	"github.com/quicmsg/quicmsg/internal/wire"
	"github.com/quicmsg/quicmsg/transport"
)

// BenchmarkIdleSessionMemory measures a session server's memory per idle
// session (see package idlemem) against a raw quic-go server whose accepted
// connections each wait in AcceptStream, in the same run.
func BenchmarkIdleSessionMemory(b *testing.B) {
	qconf, err := (&transport.Config{}).QUICConfig()
	require.NoError(b, err)
	_, clientTLS := testTLS(b).server, testTLS(b).client
	rawTLS := clientTLS.Clone()
	rawTLS.NextProtos = []string{wire.ALPN}
	dials := map[string]idlemem.Dial{
		"session": func(ctx context.Context, addr string) (func(), error) {
			c, err := transport.Dial(ctx, addr, clientTLS, nil)
			if err != nil {
				return nil, err
			}
			return func() { _ = c.CloseWithError(transport.CodeNoError, "") }, nil
		},
		"rawquic": func(ctx context.Context, addr string) (func(), error) {
			c, err := quic.DialAddr(ctx, addr, rawTLS, qconf)
			if err != nil {
				return nil, err
			}
			return func() { _ = c.CloseWithError(0, "") }, nil
		},
	}
	for _, impl := range []string{"session", "rawquic"} {
		b.Run(impl, func(b *testing.B) {
			var rss, heap float64
			measured := false
			for b.Loop() {
				if !measured {
					rss, heap = idlemem.Measure(b, "TestBenchIdleSessionChild", impl, testTLS(b).server, dials[impl])
					measured = true
				}
			}
			b.ReportMetric(rss, "KiB/conn")
			b.ReportMetric(heap, "heap-KiB/conn")
		})
	}
}

// TestBenchIdleSessionChild is the server process of
// BenchmarkIdleSessionMemory; it skips unless started by it.
func TestBenchIdleSessionChild(t *testing.T) {
	qconf, err := (&transport.Config{}).QUICConfig()
	require.NoError(t, err)
	idlemem.ServeChild(t, map[string]idlemem.Server{
		"session": func(ctx context.Context, tlsConf *tls.Config, accepted *atomic.Int64) (string, func(), error) {
			srv, err := NewServer(&Config{OnSessionStart: func(*Session) { accepted.Add(1) }}, echo)
			if err != nil {
				return "", nil, err
			}
			ln, err := transport.Listen("127.0.0.1:0", tlsConf, nil)
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
		},
		"rawquic": idlemem.RawQUIC(qconf, wire.ALPN),
	})
}

package transport

import (
	"context"
	"crypto/tls"
	"sync/atomic"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/idlemem"
)

// BenchmarkIdleConnMemory measures the server's memory per idle connection
// (see package idlemem): a transport listener whose accepted connections each
// wait in AcceptChannel, against raw quic-go waiting in AcceptStream. The
// session server's figure is in package session.
func BenchmarkIdleConnMemory(b *testing.B) {
	_, ctls, qconf := rawConfigs(b)
	dials := map[string]idlemem.Dial{
		"quicmsg": func(ctx context.Context, addr string) (func(), error) {
			c, err := Dial(ctx, addr, testTLS(b).client, nil)
			if err != nil {
				return nil, err
			}
			return func() { _ = c.CloseWithError(CodeNoError, "") }, nil
		},
		"rawquic": func(ctx context.Context, addr string) (func(), error) {
			c, err := quic.DialAddr(ctx, addr, ctls, qconf)
			if err != nil {
				return nil, err
			}
			return func() { _ = c.CloseWithError(0, "") }, nil
		},
	}
	for _, impl := range impls {
		b.Run(impl, func(b *testing.B) {
			var per idlemem.PerConn
			measured := false
			// Measured once per run, whatever b.N is.
			for b.Loop() {
				if !measured {
					per = idlemem.MeasureAll(b, "TestBenchIdleServerChild", impl, testTLS(b).server, dials[impl])
					measured = true
				}
			}
			per.Report(b)
		})
	}
}

// TestBenchIdleServerChild is the server process of BenchmarkIdleConnMemory;
// it skips unless started by it.
func TestBenchIdleServerChild(t *testing.T) {
	_, _, qconf := rawConfigs(t)
	idlemem.ServeChild(t, map[string]idlemem.Server{
		"quicmsg": func(ctx context.Context, tlsConf *tls.Config, accepted *atomic.Int64) (string, func(), error) {
			ln, err := Listen("127.0.0.1:0", tlsConf, nil)
			require.NoError(t, err)
			// A real server waits for the client's channels.
			park := func(ctx context.Context, c *Conn) { _, _ = c.AcceptChannel(ctx) }
			return ln.Addr().String(), idlemem.Park(ctx, accepted, ln.Accept, park, ln.Close), nil
		},
		"rawquic": idlemem.RawQUIC(qconf, alpn),
	})
}

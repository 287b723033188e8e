package client

import (
	"context"
	"crypto/tls"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/udpproxy"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// BenchmarkReconnectFirstEcho measures, through a relay that delays every
// datagram by 25 ms each way, the time from starting a connection to the
// first echo: with a session ticket (0-RTT: the request rides the first
// flight) and without one (a full handshake first). Run it with a fixed
// count, for example -benchtime 20x; it reports the median in ms.
func BenchmarkReconnectFirstEcho(b *testing.B) {
	_, addr := startEchoServer(b, &session.Config{Transport: transport.Config{Allow0RTT: true}})
	proxy, err := udpproxy.New(addr)
	require.NoError(b, err)
	defer proxy.Close()
	proxy.SetDelay(udpproxy.Both, 25*time.Millisecond)
	_, clientTLS := testTLS(b)

	run := func(b *testing.B, resume bool) {
		tc := clientTLS.Clone()
		tc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		if resume {
			firstEcho(b, proxy.Addr().String(), tc, nil) // take a ticket
		}
		var samples []time.Duration
		for b.Loop() {
			if !resume {
				tc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			}
			var used0RTT bool
			samples = append(samples, firstEcho(b, proxy.Addr().String(), tc, &used0RTT))
			require.Equal(b, resume, used0RTT)
		}
		slices.Sort(samples)
		b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "ms-p50")
		b.ReportMetric(0, "ns/op")
	}
	b.Run("0rtt", func(b *testing.B) { run(b, true) })
	b.Run("full", func(b *testing.B) { run(b, false) })
}

// firstEcho connects with the client package, sends one replay-safe message
// and waits for its echo; it returns how long that took.
func firstEcho(b *testing.B, addr string, tc *tls.Config, used0RTT *bool) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	c, err := Dial(ctx, addr, &Config{TLS: tc})
	require.NoError(b, err)
	ch, err := c.Channel(ctx, "echo")
	require.NoError(b, err)
	require.NoError(b, ch.SendReplaySafe(ctx, []byte("ping")))
	_, err = ch.Receive(ctx)
	require.NoError(b, err)
	d := time.Since(start)
	if used0RTT != nil {
		conn := c.Conn()
		<-conn.HandshakeComplete()
		*used0RTT = conn.Used0RTT()
	}
	require.NoError(b, c.Close())
	return d
}

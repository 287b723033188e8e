package client

import (
	"context"
	"crypto/tls"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/udpproxy"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// BenchmarkReconnectFirstEcho measures, through a relay that delays every
// datagram by 25 ms each way (50 ms round trip), how long a reconnect takes
// to its first echo: from the moment the client's connection is dropped to
// the moment the echo of a replay-safe message, sent right after the drop,
// comes back on the new connection. Sub-benchmarks:
//   - 0rtt: the client holds a session ticket; the reconnect resumes with
//     0-RTT and the message rides the first flight (one round trip);
//   - full: the ticket is withheld; a full handshake comes first (two
//     round trips);
//   - full-disable0rtt: Config.Disable0RTT; the reconnect also waits for the
//     server's HELLO before sending (three round trips);
//   - session-resume: against a server that resumes sessions
//     (session.Server.Listen), the connection dropped as by a failure: the
//     reconnect resumes the session, which is never decided on 0-RTT
//     data: a full handshake, the HELLO exchange with the resume state,
//     then the message (three round trips).
//
// The first three run against a server that resumes no sessions, so that
// every reconnect begins a new session. Run it with a fixed count, for
// example -benchtime 20x; it reports the median in ms.
func BenchmarkReconnectFirstEcho(b *testing.B) {
	_, addr := startEchoServer(b, &session.Config{Transport: transport.Config{Allow0RTT: true}})
	proxy := delayingProxy(b, addr)
	resuming := delayingProxy(b, startResumingServer(b, "127.0.0.1:0", &session.Config{Transport: transport.Config{Allow0RTT: true}}, echoHandler).addr)
	_, clientTLS := testTLS(b)

	run := func(b *testing.B, proxy *udpproxy.Proxy, resume, disable0RTT bool) {
		cache := &withholdingCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
		tc := clientTLS.Clone()
		tc.ClientSessionCache = cache
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := Dial(ctx, proxy.Addr().String(), tc, &Config{
			Disable0RTT: disable0RTT,
			// The reconnect starts as soon as the loss is seen.
			Backoff: Backoff{Delay: func(int) time.Duration { return 0 }},
		})
		require.NoError(b, err)
		defer c.Close()
		ch, err := c.Channel(ctx, "echo")
		require.NoError(b, err)
		require.NoError(b, ch.Send(ctx, []byte("warm-up")))
		_, err = ch.Receive(ctx)
		require.NoError(b, err)
		cache.withhold.Store(!resume)

		// A server ends the session of a client that closed with
		// NO_ERROR; one that failed may resume it.
		dropCode := transport.CodeNoError
		if proxy == resuming {
			dropCode = transport.CodeInternalError
		}
		var samples []time.Duration
		for b.Loop() {
			conn := c.Conn()
			<-conn.HandshakeComplete()
			puts := cache.puts.Load()
			start := time.Now()
			require.NoError(b, conn.CloseWithError(dropCode, "benchmark: reconnect"))
			require.NoError(b, ch.SendReplaySafe(ctx, []byte("ping")))
			msg, err := ch.Receive(ctx)
			require.NoError(b, err)
			samples = append(samples, time.Since(start))
			require.Equal(b, "ping", string(msg))

			next := c.Conn()
			require.NotNil(b, next)
			require.NotSame(b, conn, next)
			<-next.HandshakeComplete()
			if proxy == resuming {
				require.True(b, next.Resumed(), "the session resumed")
			} else {
				require.Equal(b, resume && !disable0RTT, next.Used0RTT())
			}
			// A ticket carries 0-RTT once: the next reconnect needs the
			// ticket this connection brings.
			require.Eventually(b, func() bool { return cache.puts.Load() > puts }, time.Minute, time.Millisecond)
		}
		slices.Sort(samples)
		b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "ms-p50")
		b.ReportMetric(0, "ns/op")
	}
	b.Run("0rtt", func(b *testing.B) { run(b, proxy, true, false) })
	b.Run("full", func(b *testing.B) { run(b, proxy, false, false) })
	b.Run("full-disable0rtt", func(b *testing.B) { run(b, proxy, true, true) })
	b.Run("session-resume", func(b *testing.B) { run(b, resuming, true, false) })
}

// delayingProxy relays to addr, delaying every datagram by 25 ms each way,
// until the benchmark ends.
func delayingProxy(b *testing.B, addr string) *udpproxy.Proxy {
	b.Helper()
	proxy, err := udpproxy.New(addr)
	require.NoError(b, err)
	b.Cleanup(func() { _ = proxy.Close() })
	proxy.SetDelay(udpproxy.Both, 25*time.Millisecond)
	return proxy
}

// withholdingCache is a session cache that hides its tickets while
// withhold is set, so that every connection makes a full handshake. It
// counts the tickets it is given.
type withholdingCache struct {
	tls.ClientSessionCache
	withhold atomic.Bool
	puts     atomic.Int64
}

func (c *withholdingCache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.puts.Add(1)
	}
	c.ClientSessionCache.Put(key, cs)
}

func (c *withholdingCache) Get(key string) (*tls.ClientSessionState, bool) {
	if c.withhold.Load() {
		return nil, false
	}
	return c.ClientSessionCache.Get(key)
}

package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/internal/udpproxy"
)

// A NAT rebinding (the client's source port changes mid-connection) is
// followed by quic-go's server without the application doing anything
// (path_manager.go in quic-go v0.65): the first packet from the new address
// opens a new path; the server probes it with PATH_CHALLENGE, and once the
// client's PATH_RESPONSE has validated it, the next packet with anything but
// path frames in it (and the highest packet number so far) makes it the
// active path. Until then the server keeps sending to the old address, where
// the packets are lost and later retransmitted on the new path. The server
// learns the new address only from a packet the client sends: a client that
// is only receiving sends nothing (it has nothing to acknowledge once the
// server's packets stop reaching it) until its keep-alive PING, which
// quic-go sends once it has received nothing for min(KeepAlivePeriod,
// IdleTimeout/2), but at least 1.5 PTO; with keep-alives off it reaches its
// idle timeout instead, and the connection ends.

// natPair returns a client Conn dialled through a proxy, the server's Conn,
// the listener and the proxy. cliCfg may be nil.
func natPair(t *testing.T, cliCfg *Config) (client, server *Conn, ln *Listener, proxy *udpproxy.Proxy) {
	t.Helper()
	ln = listen(t, nil)
	proxy, err := udpproxy.New(ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, proxy.Close()) })
	ctx := testCtx(t)
	client, err = Dial(ctx, proxy.Addr().String(), testTLS(t).client, cliCfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.CloseWithError(CodeNoError, "") })
	server, err = ln.Accept(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.CloseWithError(CodeNoError, "") })
	return client, server, ln, proxy
}

// channelPair opens a channel named name on from and accepts it on to.
func channelPair(ctx context.Context, t *testing.T, from, to *Conn, name string) (send, recv *Channel) {
	t.Helper()
	send, err := from.OpenChannel(ctx, name)
	require.NoError(t, err)
	recv, err = to.AcceptChannel(ctx)
	require.NoError(t, err)
	require.Equal(t, name, recv.Name())
	return send, recv
}

// flow sends n checksummed messages on one channel, one every pace, while
// a second goroutine receives them at the other end, checks that each
// arrives intact and in order, and records when it arrived. Both
// goroutines are owned by the flow and end by wait.
type flow struct {
	sent atomic.Int64 // messages handed to Send so far
	got  atomic.Int64 // messages received so far
	// arrived[i] is when message i arrived: written by the receiver only,
	// read after wait.
	arrived []time.Time
	errs    chan error
	wg      sync.WaitGroup
}

func startFlow(ctx context.Context, name string, send, recv *Channel, n int, pace time.Duration) *flow {
	f := &flow{arrived: make([]time.Time, n), errs: make(chan error, 2)}
	f.wg.Go(func() {
		for i := range n {
			f.sent.Store(int64(i))
			if err := send.Send(ctx, testenv.Checksummed(name, i)); err != nil {
				f.errs <- fmt.Errorf("%s: send %d: %w", name, i, err)
				return
			}
			time.Sleep(pace)
		}
		f.sent.Store(int64(n))
	})
	f.wg.Go(func() {
		for i := range n {
			msg, err := recv.Receive(ctx)
			if err != nil {
				f.errs <- fmt.Errorf("%s: receive %d: %w", name, i, err)
				return
			}
			f.arrived[i] = time.Now()
			if err := testenv.VerifyChecksummed(msg, i); err != nil {
				f.errs <- fmt.Errorf("%s: %w", name, err)
				return
			}
			f.got.Add(1)
		}
	})
	return f
}

// wait waits for both goroutines and returns the first error either met.
func (f *flow) wait() error {
	f.wg.Wait()
	close(f.errs)
	return errors.Join(<-f.errs, <-f.errs)
}

// waitGot waits until the flow has delivered n messages or failed.
func (f *flow) waitGot(t *testing.T, n int64) {
	t.Helper()
	// Wall clock: real sockets through the proxy, which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return f.got.Load() >= n || len(f.errs) > 0 }, 30*time.Second, time.Millisecond)
	require.Empty(t, f.errs)
}

// waitClientQuiet waits until the client has sent nothing through the proxy
// for 200 ms (longer than QUIC's 25 ms acknowledgement delay), so that the
// next packet it sends is one the test caused.
func waitClientQuiet(t *testing.T, proxy *udpproxy.Proxy) {
	t.Helper()
	last, quietSince := proxy.Stats().ToServer.Forwarded, time.Now()
	// Wall clock: real sockets through the proxy, which a synctest bubble cannot hold.
	require.Eventually(t, func() bool {
		if n := proxy.Stats().ToServer.Forwarded; n != last {
			last, quietSince = n, time.Now()
		}
		return time.Since(quietSince) >= 200*time.Millisecond
	}, 30*time.Second, 10*time.Millisecond)
}

// requireNoNewConn checks that the listener has no second connection: the
// client did not reconnect.
func requireNoNewConn(t *testing.T, ln *Listener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c, err := ln.Accept(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "unexpected connection %v", c)
}

func TestNATRebindingKeepsTheConnection(t *testing.T) {
	const n = 600
	client, server, ln, proxy := natPair(t, nil)
	ctx := testCtx(t)
	upSend, upRecv := channelPair(ctx, t, client, server, "up")
	downSend, downRecv := channelPair(ctx, t, server, client, "down")
	before := server.RemoteAddr().String()

	up := startFlow(ctx, "up", upSend, upRecv, n, time.Millisecond)
	down := startFlow(ctx, "down", downSend, downRecv, n, time.Millisecond)
	up.waitGot(t, n/3)
	down.waitGot(t, n/3)
	rebound, err := proxy.Rebind()
	require.NoError(t, err)
	require.Equal(t, 1, rebound)
	upAt, downAt := up.sent.Load(), down.sent.Load()

	require.NoError(t, up.wait(), "every message once, in order, client to server")
	require.NoError(t, down.wait(), "every message once, in order, server to client")
	require.Less(t, upAt, int64(n), "the rebinding happened mid-traffic")
	require.Less(t, downAt, int64(n), "the rebinding happened mid-traffic")

	require.NoError(t, client.Context().Err(), "the client's connection lives on")
	require.NoError(t, server.Context().Err(), "the server's connection lives on")
	after := server.RemoteAddr().(*net.UDPAddr)
	require.NotEqual(t, before, after.String(), "the server follows the client to its new address")
	require.Equal(t, proxy.UpstreamAddrs()[0].String(), after.String())
	requireNoNewConn(t, ln)

	// The same server Conn carries new channels too.
	upSend2, upRecv2 := channelPair(ctx, t, client, server, "after")
	require.NoError(t, upSend2.Send(ctx, []byte("hello")))
	msg, err := upRecv2.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "hello", string(msg))
	require.Same(t, server, upRecv2.Conn())
}

// A client that only receives gets the server's messages again after its
// keep-alive, the first packet it sends from the new address.
func TestNATRebindingWhileOnlyTheServerSends(t *testing.T) {
	client, server, ln, proxy := natPair(t, &Config{KeepAlivePeriod: 300 * time.Millisecond})
	ctx := testCtx(t)
	downSend, downRecv := channelPair(ctx, t, server, client, "down")
	for i := range 50 {
		require.NoError(t, downSend.Send(ctx, testenv.Checksummed("down", i)))
	}
	for i := range 50 {
		msg, err := downRecv.Receive(ctx)
		require.NoError(t, err)
		require.NoError(t, testenv.VerifyChecksummed(msg, i))
	}
	before := server.RemoteAddr().String()
	waitClientQuiet(t, proxy)
	_, err := proxy.Rebind()
	require.NoError(t, err)
	for i := 50; i < 100; i++ {
		require.NoError(t, downSend.Send(ctx, testenv.Checksummed("down", i)))
	}
	for i := 50; i < 100; i++ {
		msg, err := downRecv.Receive(ctx)
		require.NoError(t, err)
		require.NoError(t, testenv.VerifyChecksummed(msg, i))
	}
	require.NoError(t, client.Context().Err())
	require.NoError(t, server.Context().Err())
	require.NotEqual(t, before, server.RemoteAddr().String())
	requireNoNewConn(t, ln)
}

// The limit: a client that only receives, with keep-alives off, sends
// nothing from its new address, so the server never learns it, and the
// connection ends at the idle timeout.
func TestNATRebindingSilentClientWithoutKeepAlivesTimesOut(t *testing.T) {
	client, server, _, proxy := natPair(t, &Config{KeepAlivePeriod: -1, IdleTimeout: time.Second})
	ctx := testCtx(t)
	downSend, downRecv := channelPair(ctx, t, server, client, "down")
	waitClientQuiet(t, proxy)
	_, err := proxy.Rebind()
	require.NoError(t, err)
	require.NoError(t, downSend.Send(ctx, []byte("lost on the old path")))
	_, err = downRecv.Receive(ctx)
	require.Error(t, err)
	<-client.Context().Done()
	var idle *quic.IdleTimeoutError
	require.ErrorAs(t, context.Cause(client.Context()), &idle, "the client timed out")
}

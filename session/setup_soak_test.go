//go:build soak

package session

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/transport"
)

// countingConn counts the datagrams a client socket sends and receives.
// It hides the socket's batch and GSO paths from quic-go, so its figures
// are datagrams, not the CPU of a set-up.
type countingConn struct {
	net.PacketConn
	sent, received atomic.Int64
}

func (c *countingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(p)
	if err == nil {
		c.received.Add(1)
	}
	return n, a, err
}

func (c *countingConn) WriteTo(p []byte, a net.Addr) (int, error) {
	c.sent.Add(1)
	return c.PacketConn.WriteTo(p, a)
}

// TestSoakSetupDatagrams counts the UDP datagrams of a session set-up
// (DialTransport, then CloseWithError) and of raw quic-go's with one
// request and reply on a stream, the HELLO's shape, one connection at a
// time so that no datagram of one set-up is counted for another. Each
// set-up waits for the server to have ended the previous one.
func TestSoakSetupDatagrams(t *testing.T) {
	const n = 200
	pki := testTLS(t)
	measure := func(name string, setup func(context.Context, *quic.Transport) error, settle func()) {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		cc := &countingConn{PacketConn: udp}
		tr := &quic.Transport{Conn: cc}
		defer func() {
			_ = tr.Close()
			_ = udp.Close()
		}()
		for range n {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			require.NoError(t, setup(ctx, tr))
			cancel()
			settle()
		}
		testenv.Figure(t, name+" datagrams sent by the client per set-up", "%.2f", float64(cc.sent.Load())/n)
		testenv.Figure(t, name+" datagrams received by the client per set-up", "%.2f", float64(cc.received.Load())/n)
	}
	srv, addr := startServer(t, &Config{Transport: transport.Config{Allow0RTT: true}}, echo)
	measure("session", func(ctx context.Context, tr *quic.Transport) error {
		c, err := transport.DialTransport(ctx, tr, addr, pki.client, nil)
		if err != nil {
			return err
		}
		return c.CloseWithError(transport.CodeNoError, "")
	}, func() {
		deadline := time.Now().Add(10 * time.Second)
		for srv.Stats().ActiveSessions > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
		time.Sleep(2 * time.Millisecond)
	})
	rawAddr := rawEchoServer(t, pki.server)
	ua, err := net.ResolveUDPAddr("udp", rawAddr)
	require.NoError(t, err)
	settle := func() { time.Sleep(3 * time.Millisecond) }
	measure("raw quic-go + request", rawSetup(t, ua, pki.client, true), settle)
	measure("raw quic-go", rawSetup(t, ua, pki.client, false), settle)
}

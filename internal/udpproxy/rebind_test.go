package udpproxy

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// startAddrEcho runs a UDP server on 127.0.0.1:0 that answers every
// datagram with the source address it came from, until the test ends.
func startAddrEcho(t *testing.T) *net.UDPAddr {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			_, _ = conn.WriteToUDPAddrPort([]byte(from.String()), from)
		}
	})
	t.Cleanup(func() {
		_ = conn.Close()
		wg.Wait()
	})
	return conn.LocalAddr().(*net.UDPAddr)
}

// seenAs returns the source address the server reports for one datagram
// sent by c.
func seenAs(t *testing.T, c *net.UDPConn) string {
	t.Helper()
	got, err := roundTrip(c, []byte("who am I"), 2*time.Second)
	require.NoError(t, err)
	return string(got)
}

func TestRebindChangesTheSourcePortTheServerSees(t *testing.T) {
	p, err := New(startAddrEcho(t).String())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	a, b := dial(t, p), dial(t, p)

	beforeA, beforeB := seenAs(t, a), seenAs(t, b)
	require.Equal(t, beforeA, seenAs(t, a), "stable without a rebinding")
	n, err := p.Rebind()
	require.NoError(t, err)
	require.Equal(t, 2, n)
	afterA, afterB := seenAs(t, a), seenAs(t, b)
	require.NotEqual(t, beforeA, afterA)
	require.NotEqual(t, beforeB, afterB)
	require.Equal(t, afterA, seenAs(t, a), "stable after the rebinding")
	require.Equal(t, 2, p.NumClients(), "same mappings, new sockets")

	require.NoError(t, p.RebindClient(a.LocalAddr().(*net.UDPAddr)))
	require.NotEqual(t, afterA, seenAs(t, a))
	require.Equal(t, afterB, seenAs(t, b), "only the named client moved")

	require.ErrorIs(t, p.RebindClient(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}), ErrUnknownClient)
	addrs := p.UpstreamAddrs()
	require.Len(t, addrs, 2)
}

// Datagrams waiting in a delay queue when the mapping is rebound are not
// lost: those to the server leave through the new socket, those to the
// client are still delivered.
func TestRebindKeepsQueuedDatagrams(t *testing.T) {
	p, err := New(startAddrEcho(t).String())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	c := dial(t, p)
	before := seenAs(t, c)

	p.SetDelay(ToServer, 200*time.Millisecond)
	_, err = c.Write([]byte("queued"))
	require.NoError(t, err)
	_, err = p.Rebind()
	require.NoError(t, err)
	got, err := readOne(c, 5*time.Second)
	require.NoError(t, err)
	require.NotEqual(t, before, string(got), "the queued datagram left through the new socket")
	require.Zero(t, p.Stats().ToServer.Dropped)
}

func TestRebindAfterCloseFails(t *testing.T) {
	p, err := New(startAddrEcho(t).String())
	require.NoError(t, err)
	c := dial(t, p)
	seenAs(t, c)
	require.NoError(t, p.Close())
	_, err = p.Rebind()
	require.ErrorIs(t, err, net.ErrClosed)
	require.ErrorIs(t, p.RebindClient(c.LocalAddr().(*net.UDPAddr)), net.ErrClosed)
}

// Rebind racing Close and traffic leaks no goroutine (goleak in TestMain
// checks) and never panics.
func TestRebindConcurrentWithCloseAndTraffic(t *testing.T) {
	for range 20 {
		p, err := New(startAddrEcho(t).String())
		require.NoError(t, err)
		c := dial(t, p)
		seenAs(t, c)
		var wg sync.WaitGroup
		wg.Go(func() {
			for range 20 {
				_, _ = c.Write([]byte("x"))
			}
		})
		wg.Go(func() {
			for range 5 {
				_, _ = p.Rebind()
			}
		})
		require.NoError(t, p.Close())
		wg.Wait()
	}
}

package udpproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startEcho runs a UDP echo server on 127.0.0.1:0 until the test ends.
func startEcho(t *testing.T) *net.UDPAddr {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64*1024)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			_, _ = conn.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		wg.Wait()
	})
	return conn.LocalAddr().(*net.UDPAddr)
}

// newProxy starts a proxy in front of a fresh echo server.
func newProxy(t *testing.T, opts ...Option) *Proxy {
	t.Helper()
	p, err := New(startEcho(t).String(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

func dial(t *testing.T, p *Proxy) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, p.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip sends msg and waits up to wait for the echo.
func roundTrip(c *net.UDPConn, msg []byte, wait time.Duration) ([]byte, error) {
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	return readOne(c, wait)
}

// readOne waits up to wait for one datagram.
func readOne(c *net.UDPConn, wait time.Duration) ([]byte, error) {
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// expectSilence asserts nothing arrives on c within wait.
func expectSilence(t *testing.T, c *net.UDPConn, wait time.Duration) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(wait)))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	require.Error(t, err, "unexpected datagram %q", buf[:n])
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "want timeout, got %v", err)
}

func TestPassThrough(t *testing.T) {
	p := newProxy(t)
	c := dial(t, p)
	for i := range 50 {
		msg := []byte(fmt.Sprintf("hello %d %s", i, make([]byte, i*20)))
		got, err := roundTrip(c, msg, 2*time.Second)
		require.NoError(t, err)
		require.Equal(t, msg, got)
	}
	s := p.Stats()
	require.Equal(t, DirStats{Forwarded: 50}, s.ToServer)
	require.Equal(t, DirStats{Forwarded: 50}, s.ToClient)
	require.Equal(t, 1, p.NumClients())
}

func TestMultipleClients(t *testing.T) {
	p := newProxy(t)
	conns := []*net.UDPConn{dial(t, p), dial(t, p), dial(t, p)}
	for round := range 5 {
		for i, c := range conns {
			msg := []byte(fmt.Sprintf("client %d round %d", i, round))
			got, err := roundTrip(c, msg, 2*time.Second)
			require.NoError(t, err)
			require.Equal(t, msg, got)
		}
	}
	require.Equal(t, 3, p.NumClients())
}

func TestDropRate(t *testing.T) {
	p := newProxy(t)
	c := dial(t, p)

	p.SetDropRate(ToServer, 1)
	for i := range 20 {
		_, err := c.Write([]byte{byte(i)})
		require.NoError(t, err)
	}
	expectSilence(t, c, 200*time.Millisecond)
	require.Equal(t, DirStats{Dropped: 20}, p.Stats().ToServer)

	p.SetDropRate(ToServer, 0)
	p.SetDropRate(ToClient, 1)
	_, err := c.Write([]byte("x"))
	require.NoError(t, err)
	expectSilence(t, c, 200*time.Millisecond)
	require.Equal(t, uint64(1), p.Stats().ToClient.Dropped)

	p.SetDropRate(Both, 0)
	for i := range 100 {
		msg := []byte{byte(i)}
		got, err := roundTrip(c, msg, 2*time.Second)
		require.NoError(t, err)
		require.Equal(t, msg, got)
	}
	s := p.Stats()
	require.Equal(t, uint64(101), s.ToServer.Forwarded)
	require.Equal(t, uint64(100), s.ToClient.Forwarded)
}

func TestDropFunc(t *testing.T) {
	p := newProxy(t)
	c := dial(t, p)
	p.SetDropFunc(ToServer, func(pkt []byte) bool { return len(pkt) > 0 && pkt[0] == 'x' })

	_, err := c.Write([]byte("xdrop"))
	require.NoError(t, err)
	got, err := roundTrip(c, []byte("keep"), 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, "keep", string(got))
	expectSilence(t, c, 100*time.Millisecond)
	require.Equal(t, uint64(1), p.Stats().ToServer.Dropped)

	p.SetDropFunc(ToServer, nil)
	got, err = roundTrip(c, []byte("xpass"), 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, "xpass", string(got))
}

func TestDelay(t *testing.T) {
	p := newProxy(t)
	c := dial(t, p)
	const d = 50 * time.Millisecond
	p.SetDelay(ToServer, d)
	p.SetDelay(ToClient, 2*d)
	for range 3 {
		start := time.Now()
		got, err := roundTrip(c, []byte("ping"), 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, "ping", string(got))
		require.GreaterOrEqual(t, time.Since(start), 3*d)
	}
	s := p.Stats()
	require.Equal(t, uint64(3), s.ToServer.Delayed)
	require.Equal(t, uint64(3), s.ToClient.Delayed)

	p.SetDelay(Both, 0)
	_, err := roundTrip(c, []byte("fast"), 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, uint64(3), p.Stats().ToServer.Delayed)
}

// TestDelayKeepsOrder checks that a constant delay is FIFO.
func TestDelayKeepsOrder(t *testing.T) {
	p := newProxy(t)
	c := dial(t, p)
	p.SetDelay(Both, 10*time.Millisecond)
	seqs := sendSequence(t, c, 100)
	require.Len(t, seqs, 100)
	require.Zero(t, inversions(seqs))
}

func TestBlackHole(t *testing.T) {
	p := newProxy(t)
	c := dial(t, p)
	const window = 300 * time.Millisecond

	start := time.Now()
	p.BlackHole(window)
	require.True(t, p.BlackHoled())
	_, err := c.Write([]byte("lost"))
	require.NoError(t, err)
	if sent := time.Since(start); sent < window {
		expectSilence(t, c, window-sent)
		require.GreaterOrEqual(t, p.Stats().ToServer.Dropped, uint64(1))
	}

	time.Sleep(time.Until(start.Add(window + 20*time.Millisecond)))
	require.False(t, p.BlackHoled())
	got, err := roundTrip(c, []byte("healed"), 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, "healed", string(got))

	// Manual partition, also catching datagrams already in flight.
	p.SetDelay(ToClient, 100*time.Millisecond)
	_, err = c.Write([]byte("in flight"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.Stats().ToClient.Delayed == 1 }, 2*time.Second, time.Millisecond)
	p.SetBlackHole(true)
	expectSilence(t, c, 200*time.Millisecond)
	p.SetBlackHole(false)
	p.SetDelay(ToClient, 0)
	got, err = roundTrip(c, []byte("healed again"), 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, "healed again", string(got))
}

func TestDuplicate(t *testing.T) {
	p := newProxy(t)
	c := dial(t, p)
	p.SetDuplicateRate(ToServer, 1)
	got, err := roundTrip(c, []byte("twice"), 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, "twice", string(got))
	got, err = readOne(c, 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, "twice", string(got), "duplicate expected")
	expectSilence(t, c, 100*time.Millisecond)

	s := p.Stats()
	require.Equal(t, DirStats{Forwarded: 2, Duplicated: 1}, s.ToServer)
	require.Equal(t, DirStats{Forwarded: 2}, s.ToClient)
}

func TestReorder(t *testing.T) {
	p := newProxy(t, WithSeed(42))
	c := dial(t, p)
	p.SetReorder(ToServer, 0.5, 20*time.Millisecond)
	seqs := sendSequence(t, c, 200)
	require.GreaterOrEqual(t, len(seqs), 150, "too many datagrams lost on loopback")
	require.Positive(t, inversions(seqs), "expected some reordering")
	r := p.Stats().ToServer.Reordered
	require.Greater(t, r, uint64(50))
	require.Less(t, r, uint64(150))
}

// sendSequence sends n numbered datagrams through c (paced) and returns the
// sequence numbers echoed back, in arrival order.
func sendSequence(t *testing.T, c *net.UDPConn, n int) []uint32 {
	t.Helper()
	var (
		seqs []uint32
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for len(seqs) < n {
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			m, err := c.Read(buf)
			if err != nil {
				return
			}
			if m == 4 {
				seqs = append(seqs, binary.BigEndian.Uint32(buf))
			}
		}
	}()
	for i := range n {
		_, err := c.Write(binary.BigEndian.AppendUint32(nil, uint32(i)))
		require.NoError(t, err)
		time.Sleep(200 * time.Microsecond)
	}
	<-done
	return seqs
}

func inversions(seqs []uint32) int {
	n := 0
	for i := 1; i < len(seqs); i++ {
		if seqs[i] < seqs[i-1] {
			n++
		}
	}
	return n
}

func TestQueueOverflow(t *testing.T) {
	p := newProxy(t, WithQueueLimit(5))
	c := dial(t, p)
	p.SetDelay(ToServer, 500*time.Millisecond)
	for i := range 20 {
		_, err := c.Write([]byte{byte(i)})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		s := p.Stats().ToServer
		return s.Delayed+s.Overflowed == 20
	}, 2*time.Second, time.Millisecond)
	s := p.Stats().ToServer
	require.Positive(t, s.Overflowed)
	require.Equal(t, s.Dropped, s.Overflowed)
}

func TestIdleExpiry(t *testing.T) {
	p := newProxy(t, WithIdleTimeout(100*time.Millisecond))
	c := dial(t, p)
	_, err := roundTrip(c, []byte("a"), 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, 1, p.NumClients())
	require.Eventually(t, func() bool { return p.NumClients() == 0 }, 3*time.Second, 5*time.Millisecond)

	// The client comes back: a fresh mapping is created.
	got, err := roundTrip(c, []byte("b"), 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, "b", string(got))
}

func TestCloseIdempotentNoLeaks(t *testing.T) {
	before := goleak.IgnoreCurrent()
	func() {
		echo, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		defer echo.Close()
		p, err := New(echo.LocalAddr().String(), WithSeed(1))
		require.NoError(t, err)
		p.SetDelay(Both, time.Hour) // leave datagrams queued
		for range 3 {
			c, err := net.DialUDP("udp", nil, p.Addr())
			require.NoError(t, err)
			_, err = c.Write([]byte("queued"))
			require.NoError(t, err)
			require.NoError(t, c.Close())
		}
		require.Eventually(t, func() bool { return p.NumClients() == 3 }, 2*time.Second, time.Millisecond)
		require.NoError(t, p.Close())
		require.NoError(t, p.Close())
		require.Zero(t, p.NumClients())
		p.SetDropRate(Both, 0.5) // still safe after Close
		_ = p.Stats()
	}()
	goleak.VerifyNone(t, before)
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"192.0.2.1:443", "0.0.0.0:443", "[2001:db8::1]:443", "127.0.0.1:0"} {
		p, err := New(addr)
		require.Error(t, err, addr)
		require.Nil(t, p)
	}
	_, err := NewWithConfig(Config{})
	require.Error(t, err)
	_, err = NewWithConfig(Config{ServerAddr: &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}})
	require.Error(t, err)

	p, err := New("127.0.0.1:9")
	require.NoError(t, err)
	require.True(t, p.Addr().IP.IsLoopback())
	require.NoError(t, p.Close())
}

func TestIPv6Loopback(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	require.NoError(t, conn.Close())
	p, err := New("[::1]:9")
	require.NoError(t, err)
	require.True(t, p.Addr().IP.Equal(net.IPv6loopback))
	require.NoError(t, p.Close())
}

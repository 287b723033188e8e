package transport

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/net/ipv4"
)

// earlyGateMax bounds how long the gate holds the server's first packets when
// the dial does not return as expected (a ticket quic-go could not use for
// 0-RTT makes DialEarly wait for a full handshake, which needs them).
const earlyGateMax = 100 * time.Millisecond

// earlyGate works around quic-go issue 4303 for connections dialled with
// 0-RTT: quic-go installs the server's transport parameters, when it reads
// them from the server's first flight, without synchronising with streams
// being opened, which read them. The gate holds packets received from the
// server, once a 0-RTT attempt has begun, until the early streams are open:
// the parameters are then installed after the streams exist, never while
// they are being created.
//
// It is a net.PacketConn for a quic.Transport of its own. It keeps the
// *net.UDPConn fast paths (GSO, ECN, batched reads) by embedding the socket
// and providing ReadBatch.
type earlyGate struct {
	*net.UDPConn
	batch *ipv4.PacketConn

	attempt atomic.Bool // a ticket that allows early data was offered
	once    sync.Once
	open    chan struct{}
	opened  atomic.Bool
}

func newEarlyGate(udp *net.UDPConn) *earlyGate {
	return &earlyGate{UDPConn: udp, batch: ipv4.NewPacketConn(udp), open: make(chan struct{})}
}

// release lets packets through from now on. It is idempotent.
func (g *earlyGate) release() {
	g.once.Do(func() {
		g.opened.Store(true)
		close(g.open)
	})
}

// hold waits, after a read, while a 0-RTT attempt's streams are being opened.
func (g *earlyGate) hold() {
	if g.opened.Load() || !g.attempt.Load() {
		return
	}
	t := time.NewTimer(earlyGateMax)
	defer t.Stop()
	select {
	case <-g.open:
	case <-t.C:
	}
}

// ReadBatch is what quic-go reads with on Linux.
func (g *earlyGate) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	n, err := g.batch.ReadBatch(ms, flags)
	if n > 0 {
		g.hold()
	}
	return n, err
}

// ReadMsgUDP is what quic-go reads with where batches are not available.
func (g *earlyGate) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	n, oobn, flags, addr, err = g.UDPConn.ReadMsgUDP(b, oob)
	if err == nil {
		g.hold()
	}
	return n, oobn, flags, addr, err
}

// ReadFrom is net.PacketConn's read.
func (g *earlyGate) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := g.UDPConn.ReadFrom(b)
	if err == nil {
		g.hold()
	}
	return n, addr, err
}

// watchSessionCache makes the gate note when the TLS stack offers a ticket
// that allows early data. crypto/tls looks the ticket up while it builds the
// ClientHello, before the first packet goes out, so the note is in place
// before any answer can arrive.
func (g *earlyGate) watchSessionCache(tc *tls.Config) {
	if tc.ClientSessionCache == nil {
		return
	}
	tc.ClientSessionCache = &gatedSessionCache{ClientSessionCache: tc.ClientSessionCache, g: g}
}

type gatedSessionCache struct {
	tls.ClientSessionCache
	g *earlyGate
}

func (c *gatedSessionCache) Get(key string) (*tls.ClientSessionState, bool) {
	cs, ok := c.ClientSessionCache.Get(key)
	if ok && cs != nil {
		if _, st, err := cs.ResumptionState(); err == nil && st != nil && st.EarlyData {
			c.g.attempt.Store(true)
		}
	}
	return cs, ok
}

// dialEarlyGated dials with 0-RTT over a socket and quic.Transport of its
// own, like quic.DialAddrEarly, behind an earlyGate. The caller opens its
// early streams, then calls the gate's release; the transport closes with
// the connection.
func dialEarlyGated(ctx context.Context, addr string, tc *tls.Config, qconf *quic.Config) (*quic.Conn, *earlyGate, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, nil, err
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4zero, Port: 0})
	if err != nil {
		return nil, nil, err
	}
	g := newEarlyGate(udp)
	tr := &quic.Transport{Conn: g}
	closeAll := func() {
		g.release()
		_ = tr.Close()
		_ = udp.Close()
	}
	tc = tc.Clone()
	g.watchSessionCache(tc)
	qc, err := tr.DialEarly(ctx, ua, tc, qconf)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	context.AfterFunc(qc.Context(), closeAll)
	return qc, g, nil
}

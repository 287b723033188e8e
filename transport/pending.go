package transport

import (
	"container/list"
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// pendingConn is a connection that has completed the TLS handshake (or was
// accepted for 0-RTT) and has not yet sent HELLO.
type pendingConn struct {
	src    netip.Addr
	cancel context.CancelCauseFunc // ends the HELLO wait; the cause says why
	// hello is the HELLO timer (Listener.helloDeadline), set once the TLS
	// handshake completed; guarded by the Listener's pendMu.
	hello *time.Timer

	// Owned by the pendingSet, under the Listener's pendMu.
	all, own *list.Element
}

// pendingSet bounds the connections waiting for HELLO, in all and per
// source address. Overflow evicts the oldest: of the newcomer's address
// when that address is at its cap, else of all. Not safe for concurrent use.
type pendingSet struct {
	max, perIP int
	all        list.List // of *pendingConn, oldest first
	bySrc      map[netip.Addr]*list.List
}

func newPendingSet(max, perIP int) *pendingSet {
	return &pendingSet{max: max, perIP: perIP, bySrc: make(map[netip.Addr]*list.List)}
}

// add adds p and returns the connection it evicted, if any, and whether
// that was for the cap on all (true) or on p's address (false).
func (s *pendingSet) add(p *pendingConn) (evicted *pendingConn, global bool) {
	switch {
	case s.count(p.src) >= s.perIP:
		evicted = s.bySrc[p.src].Front().Value.(*pendingConn)
	case s.all.Len() >= s.max:
		evicted, global = s.all.Front().Value.(*pendingConn), true
	}
	if evicted != nil {
		s.remove(evicted)
	}
	own := s.bySrc[p.src]
	if own == nil {
		own = list.New()
		s.bySrc[p.src] = own
	}
	p.all = s.all.PushBack(p)
	p.own = own.PushBack(p)
	return evicted, global
}

// remove removes p; removing it again does nothing.
func (s *pendingSet) remove(p *pendingConn) {
	if p.all == nil {
		return
	}
	s.all.Remove(p.all)
	own := s.bySrc[p.src]
	own.Remove(p.own)
	if own.Len() == 0 {
		delete(s.bySrc, p.src)
	}
	p.all, p.own = nil, nil
}

func (s *pendingSet) len() int { return s.all.Len() }

func (s *pendingSet) count(src netip.Addr) int {
	if own := s.bySrc[src]; own != nil {
		return own.Len()
	}
	return 0
}

// sourceIP is the address the per-source cap counts by.
func sourceIP(a net.Addr) netip.Addr {
	if ua, ok := a.(*net.UDPAddr); ok {
		return ua.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// handshakeGate caps the QUIC handshakes in progress per source address,
// before any cryptography is done for a new one, so that one source's flood
// of Initials cannot take all the CPU the handshakes of others need. It is
// quic.Transport.ConnContext of the transports Listen makes. A connection
// counts from its first Initial until the listener takes it from quic-go or
// it ends, whichever is first.
type handshakeGate struct {
	max     int
	refused atomic.Uint64

	mu sync.Mutex
	n  map[netip.Addr]int
}

// handshakeToken is a connection's place in the gate, released once.
type handshakeToken struct {
	g        *handshakeGate
	src      netip.Addr
	start    time.Time // when the first Initial came: Conn.HandshakeStarted
	released atomic.Bool
	// stop unregisters release from the connection's context. releaseHandshake
	// calls it once the handshake completed and drops it (the function holds
	// the registration), so that an established connection holds nothing
	// for a place it gave back.
	stop func() bool
}

type handshakeTokenKey struct{}

// errHandshakeCap refuses an Initial over the gate's cap; quic-go answers
// it with CONNECTION_REFUSED.
var errHandshakeCap = errors.New("transport: too many handshakes in progress from this address (Config.MaxHandshakesPerIP)")

func newHandshakeGate(max int) *handshakeGate {
	return &handshakeGate{max: max, n: make(map[netip.Addr]int)}
}

func (g *handshakeGate) connContext(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	src := sourceIP(info.RemoteAddr)
	g.mu.Lock()
	if g.n[src] >= g.max {
		g.mu.Unlock()
		g.refused.Add(1)
		return nil, errHandshakeCap
	}
	g.n[src]++
	g.mu.Unlock()
	tok := &handshakeToken{g: g, src: src, start: time.Now()}
	tok.stop = context.AfterFunc(ctx, tok.release)
	return context.WithValue(ctx, handshakeTokenKey{}, tok), nil
}

// releaseHandshake releases qc's place in the gate, if it holds one, and
// unregisters the release from qc's context (connContext returned before
// quic-go hands qc out, so stop is set).
func releaseHandshake(qc *quic.Conn) {
	if tok, ok := qc.Context().Value(handshakeTokenKey{}).(*handshakeToken); ok {
		tok.release()
		tok.stop()
		tok.stop = nil
	}
}

func (t *handshakeToken) release() {
	if t.released.Swap(true) {
		return
	}
	t.g.mu.Lock()
	defer t.g.mu.Unlock()
	if t.g.n[t.src]--; t.g.n[t.src] <= 0 {
		delete(t.g.n, t.src)
	}
}

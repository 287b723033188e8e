package transport

import (
	"container/list"
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"
)

// pendingConn is a connection that has completed the TLS handshake (or was
// accepted for 0-RTT) and has not yet sent HELLO.
type pendingConn struct {
	src    netip.Addr
	cancel context.CancelCauseFunc // ends the HELLO wait; the cause says why

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
// of Initials cannot take all the CPU the handshakes of others need. Its
// verifySourceAddress and connContext are the quic.Transport hooks of the
// transports Listen makes.
//
// The address of an Initial is not validated and may be spoofed, so an
// unvalidated Initial is never refused: if its address has max handshakes
// in progress (validated or not), verifySourceAddress has quic-go answer it
// with a Retry, which a spoofer cannot answer and an honest client answers
// with a validated address. Only a validated address that has max validated
// handshakes in progress is refused, so spoofed Initials cost a victim at
// most one round trip. A connection counts from its first Initial until the
// listener takes it from quic-go or it ends, whichever is first.
type handshakeGate struct {
	max     int
	refused atomic.Uint64 // validated Initials refused with CONNECTION_REFUSED
	retries atomic.Uint64 // unvalidated Initials answered with a Retry

	mu       sync.Mutex
	n        map[netip.Addr]int // handshakes in progress, validated or not
	verified map[netip.Addr]int // the validated ones among them
}

// handshakeToken is a connection's place in the gate, released once.
type handshakeToken struct {
	g        *handshakeGate
	src      netip.Addr
	verified bool
	released atomic.Bool
}

type handshakeTokenKey struct{}

// errHandshakeCap refuses a validated Initial over the gate's cap; quic-go
// answers it with CONNECTION_REFUSED.
var errHandshakeCap = errors.New("transport: too many handshakes in progress from this address (Config.MaxHandshakesPerIP)")

func newHandshakeGate(max int) *handshakeGate {
	return &handshakeGate{max: max, n: make(map[netip.Addr]int), verified: make(map[netip.Addr]int)}
}

// verifySourceAddress is quic.Transport.VerifySourceAddress: it asks for a
// Retry when the address has max handshakes in progress.
func (g *handshakeGate) verifySourceAddress(addr net.Addr) bool {
	src := sourceIP(addr)
	g.mu.Lock()
	retry := g.n[src] >= g.max
	g.mu.Unlock()
	if retry {
		g.retries.Add(1)
	}
	return retry
}

func (g *handshakeGate) connContext(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	src := sourceIP(info.RemoteAddr)
	g.mu.Lock()
	if info.AddrVerified && g.verified[src] >= g.max {
		g.mu.Unlock()
		g.refused.Add(1)
		return nil, errHandshakeCap
	}
	g.n[src]++
	if info.AddrVerified {
		g.verified[src]++
	}
	g.mu.Unlock()
	tok := &handshakeToken{g: g, src: src, verified: info.AddrVerified}
	context.AfterFunc(ctx, tok.release)
	return context.WithValue(ctx, handshakeTokenKey{}, tok), nil
}

// releaseHandshake releases qc's place in the gate, if it holds one.
func releaseHandshake(qc *quic.Conn) {
	if tok, ok := qc.Context().Value(handshakeTokenKey{}).(*handshakeToken); ok {
		tok.release()
	}
}

func (t *handshakeToken) release() {
	if t.released.Swap(true) {
		return
	}
	t.g.mu.Lock()
	defer t.g.mu.Unlock()
	decr(t.g.n, t.src)
	if t.verified {
		decr(t.g.verified, t.src)
	}
}

func decr(m map[netip.Addr]int, k netip.Addr) {
	if m[k]--; m[k] <= 0 {
		delete(m, k)
	}
}

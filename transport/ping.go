package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// MaxOutstandingPings is how many of a connection's pings may await their
// PONG at once; a further [Conn.Ping] waits, with its context, until one of
// them ends.
const MaxOutstandingPings = 16

// pings are the PINGs this side sent that await their PONG. At most
// MaxOutstandingPings are in waiting: a Ping takes a slot first.
type pings struct {
	slots chan struct{} // one element per outstanding ping

	mu      sync.Mutex
	next    uint64                    // the opaque value of the next PING
	waiting map[uint64]chan time.Time // by opaque value; each gets the PONG's arrival
}

func newPings() pings {
	return pings{slots: make(chan struct{}, MaxOutstandingPings), waiting: make(map[uint64]chan time.Time)}
}

// add registers a new ping and returns its opaque value and the channel
// that receives the arrival of its PONG.
func (p *pings) add() (uint64, chan time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := p.next
	p.next++
	ch := make(chan time.Time, 1)
	p.waiting[v] = ch
	return v, ch
}

// remove forgets the ping v, answered or given up on.
func (p *pings) remove(v uint64) {
	p.mu.Lock()
	delete(p.waiting, v)
	p.mu.Unlock()
}

// answered hands the arrival of a PONG for v to its ping, if that still
// waits; a PONG for a ping given up on, or for none, is dropped.
func (p *pings) answered(v uint64, at time.Time) {
	p.mu.Lock()
	ch, ok := p.waiting[v]
	delete(p.waiting, v)
	p.mu.Unlock()
	if ok {
		ch <- at // buffered, and sent at most once: the entry is gone
	}
}

// Ping sends a PING on the control stream and returns the round-trip time
// until the peer's PONG arrived: the round trip of the connection, with
// the peer's control reader, independent of any channel and of what the
// peer does with messages (relay, echo or otherwise). After DialEarly it
// first waits for the server's HELLO.
//
// A peer whose HELLO did not announce [CapPing] is never sent a PING:
// Ping then returns a [*CapabilityError] at once. At most
// MaxOutstandingPings pings of a connection await their PONG at once; a
// further Ping waits for a slot. Ping returns ctx.Err() when ctx ends
// first (a PONG that arrives later is dropped), and the cause of the
// connection's end, or ErrClosed once this side began to close, when the
// connection ends first. It is safe for concurrent use: each PING carries
// its own opaque value, which its PONG echoes.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	if err := c.waitReadyFor(ctx); err != nil {
		return 0, err
	}
	if !c.peerCaps.Has(CapPing) {
		return 0, &CapabilityError{Op: "ping", Missing: CapPing}
	}
	p := &c.rareState().pings
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-c.ctx.Done():
		return 0, context.Cause(c.ctx)
	}
	defer func() { <-p.slots }()
	v, pong := p.add()
	defer p.remove(v)
	start := time.Now()
	c.ctrl.mu.Lock()
	err := c.writeControlLocked(wire.Control{Type: wire.ControlPing, Opaque: v})
	c.ctrl.mu.Unlock()
	if err != nil {
		return 0, err
	}
	select {
	case at := <-pong:
		return at.Sub(start), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-c.ctx.Done():
		return 0, context.Cause(c.ctx)
	}
}

// waitReadyFor waits for the HELLO exchange, for an operation that needs
// the peer's HELLO; it returns the connection's end or ctx's error first.
func (c *Conn) waitReadyFor(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	default:
	}
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return context.Cause(c.ctx)
	}
}

// handlePing answers the peer's PING with a PONG, on the control reader,
// in the order the PINGs came. A side that announced no PING support
// treats one as a protocol error, as a peer that predates PING does. The
// PONG is not sent once this side's closing GOAWAY ended its control
// stream; another write failure is the connection's end, which the
// reader sees next.
func (c *Conn) handlePing(v uint64) error {
	if c.cfg.noPing {
		return errors.New("unexpected PING frame: this side did not announce the PING extension")
	}
	c.ctrl.mu.Lock()
	err := c.writeControlLocked(wire.Control{Type: wire.ControlPong, Opaque: v})
	c.ctrl.mu.Unlock()
	if err != nil && !errors.Is(err, ErrClosed) && c.err() == nil {
		return fmt.Errorf("writing PONG: %w", err)
	}
	return nil
}

// handlePong hands a PONG's arrival to the Ping that waits for it.
func (c *Conn) handlePong(v uint64) {
	if r := c.rare.Load(); r != nil {
		r.pings.answered(v, time.Now())
	}
}

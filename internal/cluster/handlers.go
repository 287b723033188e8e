package cluster

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// handlers counts the NATS message handlers running, so that Close can
// wait for them: nats.go's Close only tells its subscription goroutines
// to stop, and a handler may still be in the relay when it returns.
//
// enter and leave are two atomic additions on the hot path; no lock.
type handlers struct {
	n       atomic.Int64
	closing atomic.Bool
	idle    chan struct{} // cap 1: the count fell to 0 while closing
}

// enter reports whether a handler may run; it must call leave when done.
// It returns false once Close waits for the handlers.
func (b *Backplane) enter() bool {
	b.hs.n.Add(1)
	if b.hs.closing.Load() {
		b.leave()
		return false
	}
	if h := handlerHook.Load(); h != nil {
		(*h)()
	}
	return true
}

func (b *Backplane) leave() {
	if b.hs.n.Add(-1) == 0 && b.hs.closing.Load() {
		select {
		case b.hs.idle <- struct{}{}:
		default:
		}
	}
}

// waitHandlers stops new handlers from running and waits up to timeout
// for those running to return; the relay's waits end with b.ctx, which
// Close ends first.
func (b *Backplane) waitHandlers(timeout time.Duration) {
	b.hs.closing.Store(true)
	t := time.NewTimer(timeout)
	defer t.Stop()
	for b.hs.n.Load() > 0 {
		select {
		case <-b.hs.idle:
		case <-t.C:
			b.log.Warn("closing: NATS message handlers still running", "handlers", b.hs.n.Load(), "timeout", timeout)
			return
		}
	}
}

// drain closes nc, one of the backplane's connections, whose
// ClosedHandler closes gone, through nats.go's Drain: the NATS server
// stops sending to the node's subscriptions, what it has sent goes
// through the handlers (to the relay, or counted once it is closed), then
// nats.go closes the connection, at the latest after Config.CloseTimeout
// (nats.DrainTimeout). While NATS is down Drain closes at once.
func (b *Backplane) drain(nc *nats.Conn, gone chan struct{}) {
	_ = nc.Drain() // on error the connection is closed or closing
	t := time.NewTimer(2 * b.cfg.CloseTimeout)
	defer t.Stop()
	select {
	case <-gone:
	case <-t.C:
		b.log.Warn("closing: NATS did not report the connection closed", "timeout", 2*b.cfg.CloseTimeout)
		nc.Close()
	}
}

// late counts a message that came in from NATS while the backplane was
// closing: a queue group's message was this node's alone to deliver.
func (b *Backplane) late(k key, msg *nats.Msg) {
	if k.group != "" {
		b.drop(DropClosed, msg.Subject, ErrClosed)
	}
}

// handlerHook, when set by a test, runs in every handler that enters.
var handlerHook atomic.Pointer[func()]

// noteBuffered counts a message nats.go has just taken while the
// connection is down: it waits in the reconnect buffer.
func (b *Backplane) noteBuffered() {
	if !b.nc.IsConnected() {
		b.buffered.Add(1)
	}
}

// dropBuffered counts the messages still in the reconnect buffer at Close,
// which nats.go discards, as DropClosed.
func (b *Backplane) dropBuffered() {
	n, err := b.nc.Buffered()
	if err != nil || n == 0 || b.nc.IsConnected() {
		return
	}
	msgs := b.buffered.Swap(0)
	b.dropped[slices.Index(dropReasons[:], DropClosed)].Add(msgs)
	b.log.Warn("closing with messages not sent to NATS: dropped", "messages", msgs, "bytes", n)
}

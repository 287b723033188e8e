package transport

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// Acknowledgements, receiver side: what Receive returns is counted per
// channel (recvSide.received) and acknowledged to the peer in ACK frames on
// the control stream, coalesced. The sender side (channel_acks.go) retains
// what it wrote until the peer's ACK covers it.

// DefaultAckWindow is Config.AckWindow's default: the bytes of encoded
// messages one channel holds that the peer has not acknowledged yet
// (written and unacknowledged, plus buffered) before Send waits.
const DefaultAckWindow = 1 << 20

// ErrAckWindowFull is returned by TrySend when the channel's
// acknowledgement window is full: the peer has not acknowledged enough of
// what was sent. It matches ErrWouldBlock.
var ErrAckWindowFull = fmt.Errorf("transport: acknowledgement window full: %w", ErrWouldBlock)

// Coalescing of ACK frames: a receiver sends one once ackMaxMessages
// messages, or Config.AckWindow/ackBytesDivisor bytes of message frames,
// were returned by Receive since the last one (over all channels), and
// otherwise ackDelay after the first message it has not acknowledged. The
// receiver does not know the sender's window; with both sides at the
// default it acknowledges every eighth of it, so a sender at its window
// waits for about one eighth to be read.
const (
	ackMaxMessages  = 256
	ackBytesDivisor = 8
	ackDelay        = 5 * time.Millisecond

	// A channel already in the next ACK adds to the counts above only
	// every ackBatchMessages messages or 1/ackBatchDivisor of the bytes
	// threshold (see countReceived).
	ackBatchMessages = 16
	ackBatchDivisor  = 8
)

// maxAckEntries is how many entries always fit in one ACK frame.
const maxAckEntries = wire.MaxControlPayload / wire.MaxAckEntryLen

// acker coalesces this side's acknowledgements. Receive calls
// (countReceived) only count under mu, a channel's messages in batches,
// and arm the timer, a time.AfterFunc armed only while something is
// unacknowledged: at once when a threshold is reached, else after
// ackDelay. Its callback (flushAcks) takes the
// counts and writes the ACK holding controlWriter.mu, so that frames leave
// in the order their counts were taken and a Receive never waits for the
// network. Lock order: controlWriter.mu, then acker.mu. No goroutine waits
// on it; the timer is stopped when the connection ends.
type acker struct {
	mu       sync.Mutex // guards everything below but entries
	on       bool       // both sides offered acknowledgements (set by setPeer)
	stopped  bool       // the connection ended: nothing more is sent
	maxBytes int        // Config.AckWindow / ackBytesDivisor
	dirty    []*Channel // channels with messages not acknowledged yet (Channel.ackDirty)
	msgs     int        // messages returned by Receive since the last ACK
	bytes    int        // and their frame bytes
	timer    *time.Timer
	armed    bool // the timer runs flushAcks: after ackDelay, or now if urgent
	urgent   bool
	flush    func() // Conn.flushAcks, bound once

	counted, taken int // calls of count and takeAcks (for tests)

	entries []wire.AckEntry // the ACK being written; guarded by controlWriter.mu
}

// AcksEnabled reports whether both sides announced acknowledgements in
// HELLO (Config.DisableAcks unset on both): the receiver then acknowledges
// each channel's messages cumulatively as Receive returns them, and the
// sender keeps what it wrote until acknowledged. Before Ready is closed,
// whether this side offered them.
func (c *Conn) AcksEnabled() bool { return c.acksOn.Load() }

// countReceived counts a message of size bytes that Receive returns and,
// with acknowledgements on, has it acknowledged: at once when enough has
// accumulated, else after ackDelay. rx.mu is held.
//
// A channel already in the list of the next ACK adds to the connection's
// counts, under its lock, only every ackBatchMessages messages or
// ackBatchDivisor-th of the ACK threshold's bytes: the ACK will carry the
// message anyway, since takeAcks clears ackDirty before it reads the
// channel's count and this adds to the count before it reads ackDirty.
// The counts only decide when an ACK is urgent; they may lag by that much.
func (ch *Channel) countReceived(size int) {
	ch.rx.received.Add(1)
	ch.rx.bytes += uint64(size)
	if !ch.c.acksOn.Load() {
		return
	}
	rx := &ch.rx
	rx.ackMsgs++
	rx.ackBytes += wire.MessageLen(size)
	a := &ch.c.acks
	if ch.ackDirty.Load() && rx.ackMsgs < ackBatchMessages && rx.ackBytes < a.maxBytes/ackBatchDivisor {
		return
	}
	a.count(ch, rx.ackMsgs, rx.ackBytes)
	rx.ackMsgs, rx.ackBytes = 0, 0
}

// count adds msgs messages of bytes frame bytes that ch returned from
// Receive, puts ch in the list of the next ACK and arms the timer.
func (a *acker) count(ch *Channel, msgs, bytes int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.counted++
	if !a.on || a.stopped {
		return
	}
	if !ch.ackDirty.Load() {
		ch.ackDirty.Store(true)
		a.dirty = append(a.dirty, ch)
	}
	a.msgs += msgs
	a.bytes += bytes
	switch {
	case a.urgent:
	case a.msgs >= ackMaxMessages || a.bytes >= a.maxBytes:
		a.urgent = true
		a.arm(0)
	case !a.armed:
		a.arm(ackDelay)
	}
}

// arm has the timer run flushAcks after d. a.mu is held.
func (a *acker) arm(d time.Duration) {
	a.armed = true
	if a.timer == nil {
		a.timer = time.AfterFunc(d, a.flush)
	} else {
		a.timer.Reset(d)
	}
}

// flushAcks sends what is not acknowledged yet: from the timer, before
// this side's closing GOAWAY and before it confirms the peer's graceful
// close. A failed write means the connection is ending, which ends
// acknowledgements too: the error is dropped.
func (c *Conn) flushAcks() {
	c.ctrl.mu.Lock()
	defer c.ctrl.mu.Unlock()
	entries := c.takeAcks()
	for len(entries) > 0 && !c.ctrl.closed {
		k := min(len(entries), maxAckEntries)
		c.ctrl.buf = wire.AppendAck(c.ctrl.buf[:0], entries[:k])
		if _, err := c.ctrl.s.Write(c.ctrl.buf); err != nil {
			return
		}
		entries = entries[k:]
	}
}

// takeAcks returns the counts of the channels with messages not
// acknowledged yet, and starts counting again. c.ctrl.mu is held.
func (c *Conn) takeAcks() []wire.AckEntry {
	a := &c.acks
	a.mu.Lock()
	defer a.mu.Unlock()
	a.taken++
	a.msgs, a.bytes, a.armed, a.urgent = 0, 0, false, false
	if a.timer != nil {
		a.timer.Stop()
	}
	a.entries = a.entries[:0]
	if a.stopped {
		return nil
	}
	for i, ch := range a.dirty {
		// Cleared before the count is read: see countReceived.
		ch.ackDirty.Store(false)
		a.entries = append(a.entries, wire.AckEntry{Stream: uint64(ch.s.StreamID()), Count: ch.rx.received.Load()})
		a.dirty[i] = nil
	}
	a.dirty = a.dirty[:0]
	return a.entries
}

// stopAcks stops the timer once the connection has ended; a callback
// already running sends nothing more.
func (c *Conn) stopAcks() {
	c.acks.mu.Lock()
	defer c.acks.mu.Unlock()
	c.acks.stopped = true
	c.acks.dirty = nil
	if c.acks.timer != nil {
		c.acks.timer.Stop()
	}
}

// handleAck takes the peer's ACK frame: each entry frees what it
// acknowledges on its channel. Entries for streams that are not (or no
// longer) channels of this connection are ignored; a count that goes back
// or exceeds what was written is a protocol error.
func (c *Conn) handleAck(entries []wire.AckEntry) error {
	if !c.acksOn.Load() {
		return errors.New("ACK frame, but acknowledgements were not negotiated in HELLO")
	}
	for _, e := range entries {
		c.mu.Lock()
		ch := c.byStream[quic.StreamID(e.Stream)]
		c.mu.Unlock()
		if ch == nil {
			continue
		}
		if err := ch.acked(e.Count); err != nil {
			return fmt.Errorf("ACK for channel %q (stream %d): %w", ch.name, e.Stream, err)
		}
		c.settledGone(ch)
	}
	return nil
}

// settledGone lets a channel that is gone (see channelDone) leave byStream
// once the peer has acknowledged everything it wrote.
func (c *Conn) settledGone(ch *Channel) {
	if ch.awaitsAck() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, open := c.channels[ch]; !open && c.byStream[ch.s.StreamID()] == ch {
		delete(c.byStream, ch.s.StreamID())
		c.awaiting--
	}
}

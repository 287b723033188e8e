package transport

import (
	"context"
	"fmt"

	"github.com/quicmsg/quicmsg/internal/ring"
)

// ackRetention keeps, with acknowledgements on, the batches a channel
// wrote until the peer's ACK covers them, so that after a failure
// [Channel.Unacked] says exactly which messages may not have been
// delivered. Batches are freed from the front; one the ACK covers in part
// stays, with the acknowledged messages skipped. Freed buffers go back to
// the send buffer (sendSide.recycle), so that the steady state allocates
// none. It is part of a channel's send side and guarded by its lock; the
// writer (or a Send writing directly) retains, the control reader frees.
type ackRetention struct {
	batches ring.Ring[retainedBatch]
	base    uint64 // messages before the first retained batch, all acknowledged
	held    uint64 // messages in batches
	bytes   int    // bytes in batches

	// The batch being written: counted from the moment it is taken, so
	// that an ACK that overtakes the writer's bookkeeping is not taken for
	// one of messages never written, and so that the window counts it.
	writing      uint64
	writingBytes int

	acked uint64 // the peer's cumulative count

	free    [][]byte // freed buffers for the send buffer, besides sendSide.spare
	freeCap int      // their capacity in bytes
}

type retainedBatch struct {
	b []byte
	n uint64 // messages in b
}

// inUse is the bytes the window counts besides the send buffer.
func (r *ackRetention) inUse() int { return r.bytes + r.writingBytes }

// taking records the batch of n messages in b that is about to be written.
func (r *ackRetention) taking(b []byte, n uint64) {
	r.writing, r.writingBytes = n, len(b)
}

// retain keeps the batch b of n messages, written, and frees it at once if
// an ACK covered it meanwhile; recycle takes the buffers freed.
func (r *ackRetention) retain(b []byte, n uint64, recycle func([]byte)) {
	r.writing, r.writingBytes = 0, 0
	r.batches.Push(retainedBatch{b: b, n: n})
	r.held += n
	r.bytes += len(b)
	r.release(recycle)
}

// ack takes the peer's cumulative count and frees what it covers. It
// reports whether the count moved, and fails for one that goes back or
// exceeds what was written.
func (r *ackRetention) ack(count uint64, recycle func([]byte)) (bool, error) {
	switch {
	case count < r.acked:
		return false, fmt.Errorf("count %d is below the %d acknowledged before", count, r.acked)
	case count > r.base+r.held+r.writing:
		return false, fmt.Errorf("count %d exceeds the %d messages written", count, r.base+r.held+r.writing)
	case count == r.acked:
		return false, nil
	}
	r.acked = count
	r.release(recycle)
	return true, nil
}

// release frees the batches the acknowledged count covers entirely.
func (r *ackRetention) release(recycle func([]byte)) {
	for r.batches.Len() > 0 {
		f := r.batches.Peek()
		if r.base+f.n > r.acked {
			return
		}
		r.batches.Pop()
		r.base += f.n
		r.held -= f.n
		r.bytes -= len(f.b)
		recycle(f.b)
	}
}

// dropFront forgets the first msgs retained messages, in whole batches:
// 0-RTT data the server rejected, handed back as Unsent instead.
func (r *ackRetention) dropFront(msgs uint64) {
	for r.batches.Len() > 0 && r.batches.Peek().n <= msgs {
		f := r.batches.Pop()
		msgs -= f.n
		r.base += f.n
		r.held -= f.n
		r.bytes -= len(f.b)
	}
}

// reset forgets everything retained: the peer does not acknowledge.
func (r *ackRetention) reset() {
	r.batches.Reset(0)
	r.base, r.held, r.bytes, r.writing, r.writingBytes = 0, 0, 0, 0, 0
}

// unacked decodes the retained messages the peer has not acknowledged, in
// order.
func (r *ackRetention) unacked() []UnsentMessage {
	var skip uint64
	if r.acked > r.base {
		skip = r.acked - r.base
	}
	var out []UnsentMessage
	for f := range r.batches.All() {
		start := len(out)
		out = appendUnsent(out, f.b)
		if skip > 0 {
			k := min(skip, uint64(len(out)-start))
			out = append(out[:start], out[start+int(k):]...)
			skip -= k
		}
	}
	return out
}

// unackedCount is len(unacked()) without decoding.
func (r *ackRetention) unackedCount() uint64 {
	if r.acked > r.base {
		return r.held - (r.acked - r.base)
	}
	return r.held
}

// popFree returns a freed buffer for the send buffer, or nil.
func (r *ackRetention) popFree() []byte {
	n := len(r.free)
	if n == 0 {
		return nil
	}
	b := r.free[n-1]
	r.free[n-1] = nil
	r.free = r.free[:n-1]
	r.freeCap -= cap(b)
	return b
}

// recycle keeps a buffer that an ACK freed, for the send buffer: as the
// spare, or on the free list while that holds at most the window's bytes
// (as many buffers as a full window retains, so that a busy channel
// reuses every one of them). Buffers 0-RTT retention may still hand back
// are not reused. tx.mu is held.
func (tx *sendSide) recycle(b []byte) {
	switch {
	case tx.early.holding() || cap(b) > 2*tx.bufSize:
	case tx.spare == nil:
		tx.spare = b[:0]
	case tx.ret.freeCap+cap(b) <= max(tx.window, 2*tx.bufSize):
		tx.ret.free = append(tx.ret.free, b[:0])
		tx.ret.freeCap += cap(b)
	}
}

// trimFree drops free buffers past twice the send buffer's size once
// everything written is acknowledged, so that an idle channel keeps no
// more than without acknowledgements. tx.mu is held.
func (tx *sendSide) trimFree() {
	r := &tx.ret
	if r.batches.Len() > 0 || r.writing > 0 {
		return
	}
	for r.freeCap > 2*tx.bufSize {
		putSendBuffer(r.popFree())
	}
	if len(r.free) == 0 {
		r.free = nil
	}
}

// awaitsAck reports whether the channel wrote messages that the peer has
// not acknowledged yet.
func (ch *Channel) awaitsAck() bool {
	tx := &ch.tx
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.retaining() && tx.err == nil && (tx.ret.batches.Len() > 0 || tx.ret.writing > 0)
}

// retaining reports whether what the channel writes is retained until
// acknowledged.
func (tx *sendSide) retaining() bool { return tx.acksOn.Load() }

// acked takes the peer's cumulative count for this channel, frees what it
// covers and wakes senders waiting for the window. After the channel
// failed, or once the connection has ended (the control reader may still
// parse ACKs it had read ahead), the count is ignored: Unacked is settled
// then, and the messages it returns refer to the retained buffers, which
// must not go back to the shared pool.
func (ch *Channel) acked(count uint64) error {
	tx := &ch.tx
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.err != nil || ch.c.ctx.Err() != nil {
		return nil
	}
	moved, err := tx.ret.ack(count, tx.recycleFn)
	if moved {
		tx.trimFree()
		if !tx.inFlight {
			tx.trimIdle()
		}
		tx.signalProgress()
	}
	return err
}

// idleSendKeep is the largest send buffer an idle channel keeps: enough for
// the lone messages of a request/response exchange, so that those reuse
// their buffers, while the buffers a burst grew are let go.
const idleSendKeep = 4 << 10

// trimIdle lets go of the send buffers larger than idleSendKeep and of the
// free list, those of sendPoolSize back to sendBuffers, once the channel is
// idle: nothing buffered, nobody writing (inFlight is not held, which the
// caller checked) and nothing awaiting acknowledgement. tx.mu is held.
func (tx *sendSide) trimIdle() {
	r := &tx.ret
	if len(tx.buf) > 0 || r.batches.Len() > 0 || r.writing > 0 {
		return
	}
	if cap(tx.buf) > idleSendKeep {
		putSendBuffer(tx.buf)
		tx.buf = nil
	}
	if cap(tx.spare) > idleSendKeep {
		putSendBuffer(tx.spare)
		tx.spare = nil
	}
	for _, b := range r.free {
		putSendBuffer(b)
	}
	r.free, r.freeCap = nil, 0
}

// dropRetention forgets what the channel retained: the server's HELLO,
// after DialEarly, had no ACKS extension.
func (ch *Channel) dropRetention() {
	ch.tx.mu.Lock()
	ch.tx.ret.reset()
	ch.tx.mu.Unlock()
}

// Acked returns how many of the messages this channel sent (counted from
// the first message written on this channel's stream) the peer has
// acknowledged, that is, returned from its Receive. With acknowledgements
// off it is 0. After a graceful close of this side that the peer confirmed
// (it read every channel to its end), it is every message written, though
// the last ACKs may not have arrived.
func (ch *Channel) Acked() uint64 {
	tx := &ch.tx
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.err == nil && tx.retaining() && ch.c.confirmed.Load() {
		return tx.written
	}
	return tx.ret.acked
}

// Unacked returns, after the channel failed (its connection ended, or it
// was reset), the messages that were written to the stream but not
// acknowledged, in the order sent: they may or may not have been
// delivered. Messages number Acked()+1 .. Acked()+len(Unacked()) in the
// channel's order, and Unsent() follows them. Before a failure, or with
// acknowledgements off, nil. With acknowledgements on, InDoubt() ==
// len(Unacked()). ACKs that arrive after the failure are not counted.
//
// A channel whose sending ended before its connection did (it was closed,
// or the peer stopped reading) has not failed: once the connection has
// ended, Unacked returns what the peer had not acknowledged by then, so
// that none of it goes unreported.
func (ch *Channel) Unacked() []UnsentMessage {
	ch.settle()
	tx := &ch.tx
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.closedUnfailed(ch.c) {
		return tx.ret.unacked()
	}
	return tx.unacked
}

// closedUnfailed reports whether the channel's sending ended before its
// connection c did, which has ended since, without a failure, and without
// a graceful close of this side that the peer confirmed (which proves
// everything was read): with acknowledgements on, what it retains is then
// what the peer had not acknowledged. tx.mu is held.
func (tx *sendSide) closedUnfailed(c *Conn) bool {
	return tx.err == nil && c.ctx.Err() != nil && tx.retaining() && !c.confirmed.Load()
}

// awaitDelivered waits until what the channel accepted so far was written
// and, with acknowledgements on, acknowledged by the peer, or until ctx
// ends or the channel fails. It returns how many of those messages remain
// unconfirmed.
func (ch *Channel) awaitDelivered(ctx context.Context) uint64 {
	tx := &ch.tx
	tx.mu.Lock()
	target := tx.sent
	for {
		done := tx.written
		if tx.retaining() {
			done = tx.ret.acked
		}
		if done >= target || tx.err != nil {
			tx.mu.Unlock()
			return target - min(done, target)
		}
		if tx.waitProgress(ctx) != nil {
			tx.mu.Lock()
			defer tx.mu.Unlock()
			return target - min(done, target)
		}
	}
}

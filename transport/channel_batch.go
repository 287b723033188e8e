package transport

import (
	"context"
	"slices"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// SendMsgs sends msgs on the channel, in order, as SendMsg sends each one,
// and returns how many it accepted. It takes the send buffer's lock once
// for as many messages as fit without waiting, instead of once per
// message, so that a sender with several messages ready (a relay's
// subscriber queue) hands them over in one step; it waits, as SendMsg
// does, only where SendMsg would. On an error, msgs[:n] were accepted and
// msgs[n] failed with the error SendMsg would have returned for it; the
// rest were not tried. It does not modify msgs nor keep them after
// returning. Safe for concurrent use; the messages of one call are not
// interleaved with those of other senders only while none of them waits.
func (ch *Channel) SendMsgs(ctx context.Context, msgs []Message) (int, error) {
	n := 0
	for n < len(msgs) {
		f, err := ch.msgFrame(&msgs[n])
		if err != nil {
			return n, err
		}
		size := f.payloadLen()
		if err := ch.admit(ctx, size, f.flags, true); err != nil {
			return n, err
		}
		tx := &ch.tx
		tx.mu.Lock()
		if err := ch.waitRoom(ctx, wire.MessageLen(size), true); err != nil {
			return n, err
		}
		ch.reserve(msgs[n:])
		ch.appendFrame(&f, size)
		n++
		n += ch.appendReady(msgs[n:])
		ch.handOver()
	}
	return n, nil
}

// appendReady appends the frames of msgs, in order, for as long as each
// one is admitted and fits without waiting, and returns how many it
// appended. A message it stops at is for SendMsgs to send or fail as
// SendMsg would. tx.mu is held.
func (ch *Channel) appendReady(msgs []Message) int {
	tx := &ch.tx
	for i := range msgs {
		f, err := ch.msgFrame(&msgs[i])
		if err != nil {
			return i
		}
		size := f.payloadLen()
		if ch.admit(context.Background(), size, f.flags, false) != nil ||
			tx.stateErr() != nil || ch.c.PeerSlowedDown() || ch.roomErr(wire.MessageLen(size)) != nil {
			return i
		}
		ch.appendFrame(&f, size)
	}
	return len(msgs)
}

// reserve grows the send buffer once for the frames of msgs, as far as the
// buffer has room for them, instead of doubling it again and again as they
// are appended: a buffer that an idle channel let go starts from nothing,
// and a batch of 64 small messages cost seven allocations. Headers and
// subjects are not counted: appending still grows the buffer if they need
// it. Like a lone Send, a batch that takes the buffer past idleSendKeep
// takes a buffer from sendBuffers. tx.mu is held.
func (ch *Channel) reserve(msgs []Message) {
	tx := &ch.tx
	room, need := tx.bufSize-len(tx.buf), 0
	if room <= 0 {
		return // a lone message larger than the buffer is in it
	}
	for i := range msgs {
		if need += wire.MessageLen(len(msgs[i].Data)); need >= room {
			need = room
			break
		}
	}
	tx.grow(need) // a pooled buffer when the batch takes it past idleSendKeep
	tx.buf = slices.Grow(tx.buf, need)
}

package transport

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/quic-go/quic-go"
)

// Channel is a named, ordered, reliable message channel: one QUIC stream.
// Messages sent on a channel arrive in order; channels do not block each other.
//
// Send and TrySend copy the message into the channel's send buffer (bounded by
// Config.SendBufferSize) and return; a writer goroutine owned by the channel,
// running only while there is something to write, coalesces buffered
// messages into few stream writes, so a lone message goes out at once while
// a burst travels in large writes. Flush waits until what was
// accepted has been written.
//
// Closing follows the package's convention: Shutdown(ctx) is the graceful
// close (it stops taking messages, writes what Send accepted, waits until
// that is done or ctx ends, then cuts the channel and reports what was not
// written), Close is Shutdown bounded by Config.CloseTimeout, and Reset is
// the immediate close. All three are idempotent and wait for the channel's
// writer goroutine to end.
//
// All methods are safe for concurrent use.
type Channel struct {
	// Immutable after newChannel.
	c        *Conn
	s        *quic.Stream
	name     string
	opts     ChannelOptions
	wildcard bool // name is a wildcard pattern: a subscription, not published to

	tx sendSide // the send direction: Send, Flush and the writer goroutine
	rx recvSide // the receive direction: Receive

	// recvDone is set once the receive side needs nothing more from the
	// stream: Receive read it to its end or failed (with rx.mu held), or
	// Shutdown or Reset cancelled it. Conn.channelsReadLocked reads it.
	recvDone atomic.Bool

	// ackDirty says the channel is in the connection's list of channels
	// with messages to acknowledge; changed under Conn.acks.mu, read
	// without it by countReceived's fast path.
	ackDirty atomic.Bool

	// end is the one close of the channel: the first of Shutdown, Close and
	// Reset runs it; later calls wait for it, and one whose own bound ends
	// first, or Reset, cuts a graceful close short (see closer).
	end closer
}

// newChannel makes the channel for stream s; sr holds what was read of the
// stream past the channel header, if the peer opened it (nil otherwise).
func newChannel(c *Conn, s *quic.Stream, name string, opts ChannelOptions, sr *streamReader) *Channel {
	ch := &Channel{c: c, s: s, name: name, opts: opts, wildcard: IsWildcard(name)}
	ch.tx.init(&c.acksOn, c.cfg.SendBufferSize, c.cfg.AckWindow)
	ch.tx.writeFn = ch.writeRun
	ch.rx.init(s, sr, c.cfg.MaxMessageSize)
	return ch
}

// start sets the send side going; header, if any, goes out first and at
// once, on a writer of its own. The caller has counted the channel's
// sending in c.wg, which endSending counts down.
func (ch *Channel) start(header []byte) {
	if header != nil {
		ch.tx.buf = header
		ch.tx.inFlight = true
	}
	// Once the connection ends, whoever holds inFlight records the failure;
	// if nobody does, connEnded does (at once if it has ended already).
	stop := context.AfterFunc(ch.c.ctx, ch.connEnded)
	ch.tx.mu.Lock()
	ch.tx.stopWatch = stop
	ch.tx.mu.Unlock()
	if header != nil {
		go ch.tx.writeFn()
	}
}

// Done returns a channel that is closed when this side can no longer send
// on the channel: it was closed or reset, or the peer stopped reading (for
// example because it closed the channel).
func (ch *Channel) Done() <-chan struct{} { return ch.s.Context().Done() }

// Ended returns why Done was closed, that is who ended the channel's send
// direction first: ErrClosed when this side closed the channel (Close,
// Shutdown) or reset it with CodeChannelClosed; a [*ChannelError] when
// this side reset it with another code, or the peer reset it or stopped
// reading it, with Remote set for the peer (a peer that closes the channel
// stops reading it); or the connection's error when the connection ended
// first. It returns nil while Done is open.
func (ch *Channel) Ended() error {
	cause := context.Cause(ch.s.Context())
	switch {
	case cause == nil:
		return nil
	case errors.Is(cause, quic.ErrStreamClosed):
		return ErrClosed
	}
	return ch.convertErr(cause)
}

// Stats returns the channel's own message and byte counters, in a
// [ConnStats] (RejectedChannels is 0). MessagesSent - MessagesAcked is
// what the peer has not acknowledged (so far) of what Send accepted.
// BytesReceived counts every message a Receive returned before Stats was
// called; for that, Stats may wait briefly for a Receive that is parsing
// what it has buffered or ending the channel (never for the network).
func (ch *Channel) Stats() ConnStats { return ch.stats() }

// Name returns the channel's name.
func (ch *Channel) Name() string { return ch.name }

// Conn returns the connection the channel belongs to.
func (ch *Channel) Conn() *Conn { return ch.c }

func (ch *Channel) convertErr(err error) error {
	var se *quic.StreamError
	if errors.As(err, &se) {
		if !se.Remote && ErrorCode(se.ErrorCode) == CodeChannelClosed {
			return ErrClosed
		}
		return &ChannelError{Channel: ch.name, Code: ErrorCode(se.ErrorCode), Remote: se.Remote}
	}
	return ch.c.wrapErr(err)
}

// Close is Shutdown bounded by Config.CloseTimeout: it closes the channel
// gracefully and returns an error wrapping ErrUnflushed when accepted
// messages could not be written in that time. Close is idempotent.
func (ch *Channel) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), ch.c.cfg.CloseTimeout)
	defer cancel()
	return ch.Shutdown(ctx)
}

// Shutdown closes the channel gracefully in both directions: Send accepts
// nothing more (it fails with ErrClosed), what Send accepted is written, the
// send side ends so that the peer's Receive returns io.EOF after the last
// message, and whatever the peer still sends is discarded. It waits until
// the writer is done or ctx ends; then it resets the send side with
// CodeChannelClosed and returns an error wrapping ErrUnflushed that counts
// the accepted messages that were not written. Shutdown is idempotent: a
// later call (or Close) waits for the first to finish and returns its
// result, and if its own ctx ends first it cuts the first one short, as
// Reset does.
func (ch *Channel) Shutdown(ctx context.Context) error {
	if !ch.end.started.CompareAndSwap(false, true) {
		return ch.end.wait(ctx)
	}
	ch.stopWriter()
	select {
	case <-ch.tx.writerDone:
	case <-ctx.Done():
	case <-ch.end.aborted().Done():
	}
	select {
	case <-ch.tx.writerDone:
	default:
		ch.s.CancelWrite(quic.StreamErrorCode(CodeChannelClosed))
		<-ch.tx.writerDone
	}
	if !ch.recvDone.Load() {
		ch.s.CancelRead(quic.StreamErrorCode(CodeChannelClosed))
		ch.recvDone.Store(true)
	}
	ch.tx.mu.Lock()
	unwritten := ch.tx.sent - ch.tx.written
	ch.tx.mu.Unlock()
	var err error
	if unwritten > 0 {
		err = fmt.Errorf("transport: channel %q: %d messages accepted by Send were not written: %w", ch.name, unwritten, ErrUnflushed)
	}
	ch.c.channelDone(ch)
	ch.end.finish(err)
	return err
}

// Reset aborts the channel in both directions with code: buffered messages
// are discarded and the peer's Send and Receive fail with a [*ChannelError]
// carrying code. Use it to refuse a channel; use Close to end one cleanly.
// During a Shutdown, Reset ends it at once (the stream is then reset with
// CodeChannelClosed) and waits for it.
func (ch *Channel) Reset(code ErrorCode) {
	if !ch.end.started.CompareAndSwap(false, true) {
		ch.end.abort(nil)
		<-ch.end.doneChan()
		return
	}
	// Send stops accepting before the stream is reset, so that nothing
	// is accepted only to be discarded.
	ch.tx.mu.Lock()
	ch.tx.closing = true
	ch.tx.signalProgress()
	ch.tx.mu.Unlock()
	ch.s.CancelWrite(quic.StreamErrorCode(code))
	ch.s.CancelRead(quic.StreamErrorCode(code))
	ch.recvDone.Store(true)
	ch.stopWriter()
	<-ch.tx.writerDone
	ch.c.channelDone(ch)
	ch.end.finish(nil)
}

// stopWriter has the writer finish: Send accepts nothing more, and the
// writer writes what is buffered, closes the stream's send direction and
// exits (or fails, if the stream was reset).
func (ch *Channel) stopWriter() {
	ch.tx.mu.Lock()
	ch.tx.closing = true
	// A Send waiting for the acknowledgement window fails with ErrClosed.
	ch.tx.signalProgress()
	kick := !ch.tx.inFlight
	ch.tx.inFlight = true
	ch.tx.mu.Unlock()
	if kick {
		go ch.tx.writeFn()
	}
}

func (ch *Channel) stats() ConnStats {
	ch.tx.mu.Lock()
	s := ConnStats{MessagesSent: ch.tx.sent, MessagesWritten: ch.tx.written, BytesSent: ch.tx.sentBytes, MessagesAcked: ch.tx.ret.acked}
	ch.tx.mu.Unlock()
	s.MessagesReceived = ch.rx.received.Load()
	s.BytesReceived = ch.rx.receivedBytes()
	return s
}

package transport

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// sendSide is a channel's send direction: the send buffer that Send fills
// and the writer goroutine empties into the stream.
//
// The writer goroutine (writeRun) runs only while there is something to
// write: whoever sets inFlight from false to true starts it, unless it
// writes the batch itself (writeDirect), and it exits when it finds the
// buffer empty, so that an idle channel has no goroutine. The channel's
// sending is counted once in the connection's WaitGroup, from
// Conn.register until endSending: after Shutdown or Reset stopped it and
// the stream's send direction is closed, after a failed write, or once the
// connection ended (connEnded, when no writer runs then); endSending
// closes writerDone.
type sendSide struct {
	writerDone chan struct{} // closed when the channel's sending has ended
	writes     atomic.Uint64 // stream writes made (for benchmarks)

	// Immutable after newChannel.
	acksOn    *atomic.Bool // the connection's Conn.acksOn
	bufSize   int          // Config.SendBufferSize
	window    int          // Config.AckWindow
	recycleFn func([]byte) // tx.recycle, bound once
	writeFn   func()       // Channel.writeRun, bound once: go writeFn() allocates nothing

	mu sync.Mutex // guards everything below

	// stopWatch stops the context.AfterFunc that runs connEnded; set by
	// Channel.start, which may be after connEnded ran.
	stopWatch func() bool

	// The buffer. inFlight is the right to write to the stream: it is
	// held by the writer from its start until it finds the buffer empty,
	// or by a Send that writes a lone batch itself (writeDirect).
	buf        []byte // encoded messages waiting to be written
	spare      []byte // an empty buffer to swap in for buf at the next write
	bufMsgs    uint64 // messages in buf
	inFlight   bool
	closing    bool      // Shutdown or Reset began: Send accepts nothing more
	lastDirect time.Time // when a Send last wrote to the stream itself
	progress   chan struct{}

	// Counters; written counts what the stream took.
	sent, sentBytes, written uint64

	// Batches written as 0-RTT data, until the handshake settles them;
	// only the writer adds to it.
	early earlyRetention

	// With acknowledgements on, batches written until the peer
	// acknowledges them (see channel_acks.go).
	ret ackRetention

	// The outcome once the send side failed: err is returned by every
	// later Send and Flush, unsent and inDoubt account for what Send had
	// accepted (see Unsent, Unacked and InDoubt).
	err     error
	unsent  []UnsentMessage
	unacked []UnsentMessage
	inDoubt uint64
}

func (tx *sendSide) init(acksOn *atomic.Bool, bufSize, window int) {
	tx.writerDone = make(chan struct{})
	tx.acksOn = acksOn
	tx.bufSize = bufSize
	tx.window = window
	tx.recycleFn = tx.recycle
}

// take takes the buffered batch for a write and the number of messages in
// it, leaving the spare buffer in its place. tx.mu is held.
func (tx *sendSide) take() ([]byte, uint64) {
	out, n := tx.buf, tx.bufMsgs
	tx.buf, tx.spare, tx.bufMsgs = tx.spare[:0], tx.ret.popFree(), 0
	tx.ret.taking(out, n)
	return out, n
}

// written records that the stream took the batch out of n messages:
// retained until acknowledged, or kept as the spare buffer. tx.mu is held.
func (tx *sendSide) wroteBatch(out []byte, n uint64) {
	tx.written += n
	if tx.retaining() {
		tx.ret.retain(out, n, tx.recycleFn)
	} else {
		tx.ret.taking(nil, 0)
		if cap(out) <= 2*tx.bufSize {
			tx.spare = out[:0]
		}
	}
}

// stateErr returns why Send cannot accept anything, or nil. tx.mu is held.
func (tx *sendSide) stateErr() error {
	if tx.err != nil {
		return tx.err
	}
	if tx.closing {
		return ErrClosed
	}
	return nil
}

// waitProgress waits, with tx.mu released, until the writer takes the
// buffer for a write, the next write returns (or the channel's sending
// ends), or until ctx ends; the caller checks again what it waits for. It
// is called with tx.mu held and returns with it held if it returns nil,
// released otherwise.
func (tx *sendSide) waitProgress(ctx context.Context) error {
	// The channel is made only when someone waits, so that a write nobody
	// waits for allocates nothing.
	if tx.progress == nil {
		tx.progress = make(chan struct{})
	}
	p := tx.progress
	tx.mu.Unlock()
	select {
	case <-p:
	case <-ctx.Done():
		return ctx.Err()
	}
	tx.mu.Lock()
	return nil
}

// signalProgress wakes whoever waits in waitProgress. tx.mu is held.
func (tx *sendSide) signalProgress() {
	if tx.progress != nil {
		close(tx.progress)
		tx.progress = nil
	}
}

// fail ends the send side with err, unless it has ended already, and wakes
// every waiter. inDoubt is how many written messages may or may not have
// arrived; lost are written batches that certainly did not, which become
// Unsent in order, before what is still buffered. tx.mu is held.
func (tx *sendSide) fail(err error, inDoubt uint64, lost ...[]byte) {
	if tx.err == nil {
		tx.err = err
	}
	tx.inDoubt = inDoubt
	if tx.retaining() {
		tx.unacked = tx.ret.unacked()
		tx.inDoubt = uint64(len(tx.unacked))
	}
	for _, b := range append(lost, tx.buf) {
		tx.unsent = appendUnsent(tx.unsent, b)
	}
	tx.buf, tx.spare = nil, nil
	tx.signalProgress()
}

// Send queues msg for sending. It returns once msg is copied into the send
// buffer, waiting while the buffer is full, the acknowledgement window
// (Config.AckWindow) is full, or the peer has asked to slow down, until ctx
// ends. It fails with a [*MessageTooLargeError] for a message over
// the peer's limit (the channel stays usable), with a [*SubjectError]
// matching ErrWildcardSubject on a channel whose name is a wildcard pattern
// (a subscription: publish with SendMsg and a concrete Subject), with a
// [*ChannelError] once the channel was reset, and with the connection's
// error once it has ended.
func (ch *Channel) Send(ctx context.Context, msg []byte) error {
	return ch.send(ctx, msg, 0, true)
}

// SendReplaySafe is Send for a message the caller declares safe to process
// twice (idempotent). Only such messages may travel in 0-RTT data.
func (ch *Channel) SendReplaySafe(ctx context.Context, msg []byte) error {
	return ch.send(ctx, msg, wire.FlagReplaySafe, true)
}

// TrySend is Send without waiting: it fails with ErrSlowDown while the peer
// has asked to slow down, with ErrWouldBlock while the send buffer is full,
// and with ErrAckWindowFull (which matches ErrWouldBlock) while the
// acknowledgement window is.
func (ch *Channel) TrySend(msg []byte) error {
	return ch.send(context.Background(), msg, 0, false)
}

// send queues msg; with block false it fails where it would wait. A
// channel whose name is a wildcard pattern is a subscription: publishing
// on it takes a concrete subject (SendMsg).
func (ch *Channel) send(ctx context.Context, msg []byte, flags byte, block bool) error {
	if ch.wildcard {
		return wildcardError(ch.name)
	}
	return ch.enqueue(ctx, &outFrame{flags: flags, data: msg}, block)
}

// enqueue queues the frame f; with block false it fails where it would
// wait. The sender that finds the writer idle takes the right to write
// (inFlight) and either writes a lone batch itself or starts the writer.
func (ch *Channel) enqueue(ctx context.Context, f *outFrame, block bool) error {
	size := f.payloadLen()
	if err := ch.admit(ctx, size, f.flags, block); err != nil {
		return err
	}
	tx := &ch.tx
	tx.mu.Lock()
	if err := ch.waitRoom(ctx, wire.MessageLen(size), block); err != nil {
		return err
	}
	ch.appendFrame(f, size)
	ch.handOver()
	return nil
}

// appendFrame appends the frame f, whose payload is size bytes, to the
// send buffer. tx.mu is held.
func (ch *Channel) appendFrame(f *outFrame, size int) {
	tx := &ch.tx
	tx.grow(wire.MessageLen(size))
	tx.buf = f.appendTo(tx.buf, size)
	tx.bufMsgs++
	tx.sent++
	tx.sentBytes += uint64(len(f.data))
}

// handOver releases tx.mu after frames were appended; the sender that
// finds the writer idle takes the right to write (inFlight) and either
// writes a lone batch itself or starts the writer. tx.mu is held.
func (ch *Channel) handOver() {
	tx := &ch.tx
	if tx.inFlight {
		tx.mu.Unlock()
		return
	}
	tx.inFlight = true
	out, n, direct := ch.takeDirect()
	tx.mu.Unlock()
	if direct && ch.writeDirect(out, n) {
		return
	}
	go tx.writeFn()
}

// admit checks what does not depend on the send buffer: for a frame that
// needs the HEADERS extension, that the peer offered it (waiting for its
// HELLO after DialEarly); the peer's size limit; and, for a message that
// must not travel in 0-RTT data, the handshake.
func (ch *Channel) admit(ctx context.Context, size int, flags byte, block bool) error {
	if flags&(wire.FlagHeaders|wire.FlagGap) != 0 {
		if err := ch.c.waitHeaders(ctx, block); err != nil {
			return err
		}
	}
	if limit := int(ch.c.peerMax.Load()); size > limit && flags&wire.FlagGap == 0 {
		return &MessageTooLargeError{Channel: ch.name, Size: size, Limit: limit}
	}
	if flags&wire.FlagReplaySafe == 0 && ch.c.earlyData {
		return ch.c.waitHandshake(ctx, block)
	}
	return nil
}

// waitRoom waits until the send buffer can take a frame of frameLen bytes
// (an empty buffer takes any) and the peer has not asked to slow down; with
// block false it fails where it would wait. It is called with tx.mu held and
// returns with it held if it returns nil, released otherwise.
func (ch *Channel) waitRoom(ctx context.Context, frameLen int, block bool) error {
	tx := &ch.tx
	for {
		if err := tx.stateErr(); err != nil {
			tx.mu.Unlock()
			return err
		}
		// Checked on every pass, also after waiting for room: a sender
		// that SLOW_DOWN reached accepts nothing new (PROTOCOL.md), so what
		// the peer may still receive is what was buffered before.
		if ch.c.PeerSlowedDown() {
			if err := ch.waitResume(ctx, block); err != nil {
				return err
			}
			continue
		}
		full := ch.roomErr(frameLen)
		if full == nil {
			return nil
		}
		if !block {
			tx.mu.Unlock()
			return full
		}
		if err := tx.waitProgress(ctx); err != nil {
			return err
		}
	}
}

// roomErr returns nil if the send buffer can take a frame of frameLen bytes
// (an empty buffer takes any) and so can the acknowledgement window (an
// empty one takes any), else the error TrySend returns. tx.mu is held.
func (ch *Channel) roomErr(frameLen int) error {
	tx := &ch.tx
	if len(tx.buf) > 0 && len(tx.buf)+frameLen > tx.bufSize {
		return ErrWouldBlock
	}
	if !tx.retaining() {
		return nil
	}
	if used := tx.ret.inUse() + len(tx.buf); used > 0 && used+frameLen > tx.window {
		return ErrAckWindowFull
	}
	return nil
}

// waitResume waits, with tx.mu released, while the peer has asked to slow
// down; with block false it fails with ErrSlowDown instead. It is called
// with tx.mu held and returns with it held if it returns nil, released
// otherwise.
func (ch *Channel) waitResume(ctx context.Context, block bool) error {
	ch.tx.mu.Unlock()
	if !block {
		return ErrSlowDown
	}
	if err := ch.c.waitResume(ctx); err != nil {
		return err
	}
	ch.tx.mu.Lock()
	return nil
}

const (
	// directWriteMax is the largest batch that Send hands to QUIC itself.
	directWriteMax = 1200
	// directWriteGap is how long after one direct write Send may make
	// another; meanwhile the writer takes the messages, in batches.
	directWriteGap = 10 * time.Microsecond
)

// takeDirect takes the buffered batch for writeDirect when it is a lone
// message: small, nothing written directly for a while, and no 0-RTT data
// in play. Messages that follow one another closely go through the writer,
// which batches them. It is called by the sender that just took inFlight,
// with tx.mu held, and reports whether it took the batch.
func (ch *Channel) takeDirect() ([]byte, uint64, bool) {
	tx := &ch.tx
	if len(tx.buf) > directWriteMax || ch.c.earlyData {
		return nil, 0, false
	}
	now := time.Now()
	if now.Sub(tx.lastDirect) < directWriteGap {
		return nil, 0, false
	}
	tx.lastDirect = now
	out, n := tx.take()
	return out, n, true
}

// writeDirect writes the batch out of n messages, taken by takeDirect, from
// the sending goroutine, sparing a lone message the hand-over to the writer.
// It is called without tx.mu, by the sender that holds inFlight, which keeps
// the writer and other senders off the stream meanwhile. The write never
// blocks: QUIC takes all of it at once or none of it. It reports whether it
// gave up inFlight; if not, the caller must start the writer, which writes
// whatever is left, or fails as it would have.
func (ch *Channel) writeDirect(out []byte, n uint64) bool {
	err := ch.s.TryWriteAll(out)
	tx := &ch.tx
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if err != nil {
		if tx.err != nil {
			// The connection ended meanwhile and the writer recorded what
			// was buffered as unsent; this batch, never taken by QUIC,
			// came before that.
			tx.ret.taking(nil, 0)
			tx.unsent = append(appendUnsent(nil, out), tx.unsent...)
			return false
		}
		// Put the batch back in front of what other senders added; the
		// writer writes it, or fails on it as it would have.
		tx.ret.taking(nil, 0)
		tx.buf = append(out, tx.buf...)
		tx.bufMsgs += n
		return false
	}
	tx.writes.Add(1)
	if tx.err != nil {
		// Written as the connection ended, after the account was settled.
		tx.inDoubt += n
		if tx.retaining() {
			tx.unacked = appendUnsent(tx.unacked, out)
		}
	}
	tx.wroteBatch(out, n)
	tx.signalProgress()
	if len(tx.buf) > 0 || tx.closing || tx.err != nil || ch.c.ctx.Err() != nil {
		return false
	}
	tx.inFlight = false
	return true
}

// Flush waits until every message accepted so far has been written to the
// QUIC stream, or until ctx ends. Written is not delivered: QUIC retransmits
// until the peer acknowledges, but the peer application may not have read it.
func (ch *Channel) Flush(ctx context.Context) error {
	tx := &ch.tx
	tx.mu.Lock()
	target := tx.sent
	for tx.written < target {
		if tx.err != nil {
			err := tx.err
			tx.mu.Unlock()
			return err
		}
		if err := tx.waitProgress(ctx); err != nil {
			return err
		}
	}
	tx.mu.Unlock()
	return nil
}

// writeRun is the channel's writer goroutine, started by whoever took
// inFlight. It swaps the send buffer with a spare one and writes the whole
// batch in one stream write, so that Send never waits for the network while
// the buffer has room; it exits when it finds the buffer empty.
func (ch *Channel) writeRun() {
	if !ch.drain() {
		ch.endSending()
	}
}

// connEnded runs once the connection has ended (context.AfterFunc). If no
// writer holds inFlight, it takes it for good and records the failure, as a
// writer would; a holder of inFlight sees the end itself (drain,
// writeDirect).
func (ch *Channel) connEnded() {
	tx := &ch.tx
	tx.mu.Lock()
	if tx.inFlight {
		tx.mu.Unlock()
		return
	}
	tx.inFlight = true
	tx.mu.Unlock()
	ch.failSend(context.Cause(ch.c.ctx), nil, 0)
	ch.endSending()
}

// endSending marks the end of the channel's sending, by whoever holds
// inFlight for good: writerDone closes and the connection stops waiting
// for the channel.
func (ch *Channel) endSending() {
	ch.tx.mu.Lock()
	stop := ch.tx.stopWatch
	ch.tx.mu.Unlock()
	if stop != nil {
		stop()
	}
	close(ch.tx.writerDone)
	ch.c.wg.Done()
}

// drain writes batches until it finds the send buffer empty, and then gives
// up inFlight. It reports false once the channel's sending has ended: it was
// closed (the stream's send direction is closed then), it failed, or the
// connection ended.
func (ch *Channel) drain() bool {
	tx := &ch.tx
	for {
		tx.mu.Lock()
		if len(tx.buf) == 0 {
			return ch.drained()
		}
		early, err := ch.settleEarly()
		if err != nil {
			tx.mu.Unlock()
			ch.failSend(err, nil, 0)
			return false
		}
		if early && tx.early.full(ch.c.cfg.SendBufferSize) {
			// Enough is riding on 0-RTT; wait for the handshake.
			tx.mu.Unlock()
			ch.awaitHandshake()
			continue
		}
		out, n := tx.take()
		// The buffer has room again: a Send waiting for it goes on filling
		// the next batch while this one is written, so that the writer
		// finds it when the write returns instead of exiting and being
		// started again.
		tx.signalProgress()
		tx.mu.Unlock()

		_, err = ch.s.Write(out)
		tx.writes.Add(1)
		if err != nil {
			ch.failSend(err, out, n)
			return false
		}
		ch.wrote(out, n, early)
	}
}

// drained is drain's end, called with tx.mu held and an empty buffer: it
// gives up inFlight and reports true, unless the channel is closing (it
// closes the stream's send direction) or the connection ended (it records
// the failure, since connEnded may have found inFlight held). It releases
// tx.mu.
func (ch *Channel) drained() bool {
	tx := &ch.tx
	closing, gone := tx.closing, ch.c.ctx.Err() != nil
	if !closing && !gone {
		tx.inFlight = false
		tx.trimIdle()
		tx.mu.Unlock()
		return true
	}
	tx.mu.Unlock()
	if !closing {
		ch.failSend(context.Cause(ch.c.ctx), nil, 0)
		return false
	}
	if err := ch.s.Close(); err != nil {
		ch.failSend(closeErr(ch.s, err), nil, 0)
	}
	return false
}

// closeErr is why closing the send direction of s failed with err: quic-go
// reports a stream that was already reset (the peer stopped reading, or
// CancelWrite) with an untyped error, while the stream's context carries
// the *quic.StreamError, which convertErr turns into a [*ChannelError].
func closeErr(s *quic.Stream, err error) error {
	var se *quic.StreamError
	if cause := context.Cause(s.Context()); errors.As(cause, &se) {
		return se
	}
	return err
}

// wrote records that the writer wrote the batch out of n messages; early
// says it travelled as 0-RTT data.
func (ch *Channel) wrote(out []byte, n uint64, early bool) {
	tx := &ch.tx
	tx.mu.Lock()
	if early {
		tx.early.retain(out, n)
	}
	if early && !tx.retaining() {
		// 0-RTT retention holds the buffer: it is not the spare.
		tx.ret.taking(nil, 0)
		tx.written += n
	} else {
		tx.wroteBatch(out, n)
	}
	tx.signalProgress()
	tx.mu.Unlock()
}

// failSend makes the send side fail for good and wakes every waiter. out is
// the batch whose write failed, holding n messages. Messages never handed to
// QUIC, and those sent in 0-RTT data the server rejected, become Unsent; the
// rest of what was written is in doubt.
func (ch *Channel) failSend(err error, out []byte, n uint64) {
	err = ch.convertErr(err)
	// Early data is replay-safe by contract, so whatever rode 0-RTT on a
	// connection whose handshake never completed, or whose 0-RTT data was
	// rejected, is handed back to be sent again.
	rejected := ch.c.earlyRejected() || errors.Is(err, ErrEarlyDataRejected) || ch.c.inEarlyData()
	tx := &ch.tx
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if !rejected {
		tx.early.release()
		if out != nil && tx.retaining() {
			// It may have been delivered in part: in doubt.
			tx.ret.retain(out, n, tx.recycleFn)
		}
		tx.fail(err, tx.written+n)
		return
	}
	lost, msgs := tx.early.handBack()
	tx.ret.taking(nil, 0)
	tx.ret.dropFront(msgs)
	tx.fail(err, tx.written-msgs, append(lost, out)...)
}

// markInDoubt records, after a graceful close of the connection that the
// peer did not confirm, that everything written is in doubt, and returns how
// many messages are. A channel that failed before keeps its own account.
func (ch *Channel) markInDoubt(err error) uint64 {
	<-ch.tx.writerDone
	tx := &ch.tx
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.err == nil {
		tx.fail(ch.convertErr(err), tx.written)
	}
	return tx.inDoubt
}

// settle waits, once the connection has ended, for the writer to record
// what it could not deliver.
func (ch *Channel) settle() {
	if ch.c.ctx.Err() != nil {
		<-ch.tx.writerDone
	}
}

// UnsentMessage is a message accepted by Send (or a gap notice accepted by
// SendGap) that never reached the peer, or, from Unacked, one the peer did
// not acknowledge. Sending it again reproduces the same frame: SendGap(*Gap)
// when Gap is set, else SendMsg with its Subject, Header, Data and
// ReplaySafe (see [UnsentMessage.Message]).
type UnsentMessage struct {
	Data       []byte
	ReplaySafe bool
	Subject    string // the message's Subject when it had one other than the channel's name
	Header     Header // the message's other headers, if any
	Gap        *Gap   // set for a gap notice, which has no Data
}

// appendUnsent decodes the messages of an encoded batch, skipping a channel
// header (which starts with the stream type, never a message type).
func appendUnsent(dst []UnsentMessage, b []byte) []UnsentMessage {
	if len(b) > 0 && (b[0] == wire.StreamChannel || b[0] == wire.StreamChannelOpts) {
		_, _, n, err := wire.ParseStreamHeader(b)
		if err != nil {
			return dst
		}
		b = b[n:]
	}
	for len(b) > 0 {
		flags, size, n, err := wire.ParseMessageHeader(b, MaxMessageSizeLimit)
		if err != nil || len(b) < n+size {
			break
		}
		dst = append(dst, unsentOf(flags, b[n:n+size:n+size]))
		b = b[n+size:]
	}
	return dst
}

// unsentOf decodes the payload p of a frame this side encoded.
func unsentOf(flags byte, p []byte) UnsentMessage {
	u := UnsentMessage{ReplaySafe: flags&wire.FlagReplaySafe != 0}
	switch {
	case flags&wire.FlagGap != 0:
		missed, reason, _ := wire.ParseGap(p)
		u.Gap = &Gap{Missed: missed, Reason: GapReason(reason)}
	case flags&wire.FlagHeaders != 0:
		var m msgMeta
		u.Data, _ = splitHeaders(p, &m)
		u.Subject, u.Header = m.subject, m.header
	default:
		u.Data = p
	}
	return u
}

// Unsent returns, after the channel failed, the messages that Send accepted
// but that certainly never reached the peer: those still buffered, and those
// sent in 0-RTT data that the server rejected, in the order they were sent.
// Before a failure it returns nil.
func (ch *Channel) Unsent() []UnsentMessage {
	ch.settle()
	ch.tx.mu.Lock()
	defer ch.tx.mu.Unlock()
	return ch.tx.unsent
}

// InDoubt returns, after the channel failed or its connection's graceful
// Close ended without the peer's confirmation, how many messages had been
// written to the connection without the peer confirming them: they may or
// may not have been delivered. With acknowledgements on, only those the
// peer had not acknowledged are: InDoubt is then len(Unacked()).
func (ch *Channel) InDoubt() uint64 {
	ch.settle()
	tx := &ch.tx
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.closedUnfailed(ch.c) {
		return tx.ret.unackedCount()
	}
	return tx.inDoubt
}

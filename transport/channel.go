package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// channelReadBuffer is the size of a channel's receive buffer; it grows for a
// message that does not fit and shrinks back afterwards.
const channelReadBuffer = 64 << 10

// Channel is a named, ordered, reliable message channel: one QUIC stream.
// Messages sent on a channel arrive in order; channels do not block each other.
//
// Send and TrySend copy the message into the channel's send buffer (bounded by
// Config.SendBufferSize) and return; a writer goroutine owned by the channel
// coalesces buffered messages into few stream writes, so a lone message goes
// out at once while a burst travels in large writes. Flush waits until what was
// accepted has been written.
//
// All methods are safe for concurrent use.
type Channel struct {
	c    *Conn
	s    *quic.Stream
	name string

	kick       chan struct{} // wakes the writer; capacity 1
	writerDone chan struct{}
	mu         sync.Mutex // guards the send side below
	buf        []byte     // encoded messages waiting for the writer
	spare      []byte
	bufMsgs    uint64
	inFlight   bool // the writer was kicked and has not gone idle yet
	closing    bool
	sendErr    error
	progress   chan struct{} // made by a waiter, closed and cleared by the next write (see waitProgress)
	sent       uint64
	sentBytes  uint64
	written    uint64
	writes     atomic.Uint64 // stream writes made by the writer (for benchmarks)
	lastDirect time.Time     // when Send last wrote to the stream itself
	// Batches written as 0-RTT data are kept until the handshake confirms
	// them, so that they can be handed back if the server rejects them.
	retained      [][]byte
	retainedMsgs  uint64
	retainedBytes int
	unsent        []UnsentMessage // after a failure: accepted, never delivered
	inDoubt       uint64          // after a failure: written, fate unknown

	rmu           sync.Mutex    // serialises Receive, and guards the fields up to recvErr
	interrupt     func()        // ch.interruptRead, made once
	interrupted   chan struct{} // capacity 1: interruptRead ran
	sr            *streamReader
	large         []byte // a large message being read straight into, see directReadMin
	largeN        int    // bytes of large already read
	recvErr       error
	recvDone      atomic.Bool
	received      atomic.Uint64
	receivedBytes atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

func newChannel(c *Conn, s *quic.Stream, name string, sr *streamReader) *Channel {
	if sr == nil {
		sr = &streamReader{src: s, base: channelReadBuffer}
	}
	return &Channel{
		c:          c,
		s:          s,
		name:       name,
		sr:         sr,
		kick:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
}

// start launches the writer; header, if any, goes out first and at once.
func (ch *Channel) start(header []byte) {
	if header != nil {
		ch.buf = header
		ch.inFlight = true
		ch.kick <- struct{}{}
	}
	go ch.writeLoop()
}

// Done returns a channel that is closed when this side can no longer send
// on the channel: it was closed or reset, or the peer stopped reading (for
// example because it closed the channel).
func (ch *Channel) Done() <-chan struct{} { return ch.s.Context().Done() }

// Name returns the channel's name.
func (ch *Channel) Name() string { return ch.name }

// Conn returns the connection the channel belongs to.
func (ch *Channel) Conn() *Conn { return ch.c }

// Send queues msg for sending. It returns once msg is copied into the send
// buffer, waiting while the buffer is full or the peer has asked to slow down,
// until ctx ends. It fails with a [*MessageTooLargeError] for a message over
// the peer's limit (the channel stays usable), with a [*ChannelError] once the
// channel was reset, and with the connection's error once it has ended.
func (ch *Channel) Send(ctx context.Context, msg []byte) error {
	return ch.send(ctx, msg, 0, true)
}

// SendReplaySafe is Send for a message the caller declares safe to process
// twice (idempotent). Only such messages may travel in 0-RTT data.
func (ch *Channel) SendReplaySafe(ctx context.Context, msg []byte) error {
	return ch.send(ctx, msg, wire.FlagReplaySafe, true)
}

// TrySend is Send without waiting: it fails with ErrSlowDown while the peer
// has asked to slow down and with ErrWouldBlock while the send buffer is full.
func (ch *Channel) TrySend(msg []byte) error {
	return ch.send(context.Background(), msg, 0, false)
}

// send queues msg; with block false it fails where it would wait.
func (ch *Channel) send(ctx context.Context, msg []byte, flags byte, block bool) error {
	if limit := int(ch.c.peerMax.Load()); len(msg) > limit {
		return &MessageTooLargeError{Channel: ch.name, Size: len(msg), Limit: limit}
	}
	if flags&wire.FlagReplaySafe == 0 && ch.c.earlyData {
		if err := ch.c.waitHandshake(ctx, block); err != nil {
			return err
		}
	}
	frameLen := wire.MessageLen(len(msg))
	ch.mu.Lock()
	for {
		if ch.sendErr != nil {
			err := ch.sendErr
			ch.mu.Unlock()
			return err
		}
		if ch.closing {
			ch.mu.Unlock()
			return ErrClosed
		}
		// Checked on every pass, also after waiting for room: a sender
		// that SLOW_DOWN reached accepts nothing new (PROTOCOL.md), so what
		// the peer may still receive is what was buffered before.
		if ch.c.PeerSlowedDown() {
			if err := ch.waitResumeLocked(ctx, block); err != nil {
				return err
			}
			continue
		}
		if len(ch.buf) == 0 || len(ch.buf)+frameLen <= ch.c.cfg.SendBufferSize {
			break
		}
		if !block {
			ch.mu.Unlock()
			return ErrWouldBlock
		}
		p := ch.waitProgress()
		ch.mu.Unlock()
		select {
		case <-p:
		case <-ctx.Done():
			return ctx.Err()
		}
		ch.mu.Lock()
	}
	ch.buf = wire.AppendMessage(ch.buf, flags, msg)
	ch.bufMsgs++
	ch.sent++
	ch.sentBytes += uint64(len(msg))
	if ch.inFlight {
		ch.mu.Unlock()
		return nil
	}
	ch.inFlight = true
	if len(ch.buf) <= directWriteMax && !ch.c.earlyData {
		// A lone message: nothing was sent for a while. Write it from here,
		// sparing it the hand-over to the writer. Messages that follow one
		// another closely go through the writer, which batches them.
		if now := time.Now(); now.Sub(ch.lastDirect) >= directWriteGap {
			ch.lastDirect = now
			if ch.writeDirect() {
				ch.mu.Unlock()
				return nil
			}
		}
	}
	ch.mu.Unlock()
	ch.kick <- struct{}{}
	return nil
}

// waitResumeLocked waits, with ch.mu released, while the peer has asked to
// slow down; with block false it fails with ErrSlowDown instead. It returns
// with ch.mu held if it returns nil, released otherwise.
func (ch *Channel) waitResumeLocked(ctx context.Context, block bool) error {
	ch.mu.Unlock()
	if !block {
		return ErrSlowDown
	}
	if err := ch.c.waitResume(ctx); err != nil {
		return err
	}
	ch.mu.Lock()
	return nil
}

const (
	// directWriteMax is the largest batch that Send hands to QUIC itself.
	directWriteMax = 1200
	// directWriteGap is how long after one direct write Send may make
	// another; meanwhile the writer takes the messages, in batches.
	directWriteGap = 10 * time.Microsecond
)

// writeDirect writes a small batch found while the writer is idle from the
// sending goroutine, sparing a lone message the hand-over to the writer. It
// is called, and returns, with ch.mu held and ch.inFlight set by the caller,
// which keeps the writer and other senders off the stream meanwhile. The
// write never blocks: QUIC takes all of it at once or none of it. It reports
// whether the writer can stay idle; if not, the caller must kick it, and it
// writes whatever is left, or fails as it would have.
func (ch *Channel) writeDirect() bool {
	out, n := ch.buf, ch.bufMsgs
	ch.buf, ch.spare, ch.bufMsgs = ch.spare[:0], nil, 0
	ch.mu.Unlock()
	err := ch.s.TryWriteAll(out)
	ch.mu.Lock()
	if err != nil {
		if ch.sendErr != nil {
			// The connection ended meanwhile and the writer recorded what
			// was buffered as unsent; this batch, never taken by QUIC,
			// came before that.
			ch.unsent = append(appendUnsent(nil, out), ch.unsent...)
			return false
		}
		// Put the batch back in front of what other senders added; the
		// writer writes it, or fails on it as it would have.
		ch.buf = append(out, ch.buf...)
		ch.bufMsgs += n
		return false
	}
	ch.writes.Add(1)
	if ch.sendErr != nil {
		ch.inDoubt += n // written as the connection ended
	}
	ch.spare = out[:0]
	ch.written += n
	ch.signalProgress()
	if len(ch.buf) > 0 || ch.closing || ch.sendErr != nil {
		return false
	}
	ch.inFlight = false
	return true
}

// waitProgress returns a channel that the next write (or the end of the
// channel's sending) closes. ch.mu is held. It is made only when someone
// waits, so that a write nobody waits for allocates nothing.
func (ch *Channel) waitProgress() <-chan struct{} {
	if ch.progress == nil {
		ch.progress = make(chan struct{})
	}
	return ch.progress
}

// signalProgress wakes whoever waits in waitProgress. ch.mu is held.
func (ch *Channel) signalProgress() {
	if ch.progress != nil {
		close(ch.progress)
		ch.progress = nil
	}
}

// Flush waits until every message accepted so far has been written to the
// QUIC stream, or until ctx ends. Written is not delivered: QUIC retransmits
// until the peer acknowledges, but the peer application may not have read it.
func (ch *Channel) Flush(ctx context.Context) error {
	ch.mu.Lock()
	target := ch.sent
	for ch.written < target {
		if ch.sendErr != nil {
			err := ch.sendErr
			ch.mu.Unlock()
			return err
		}
		p := ch.waitProgress()
		ch.mu.Unlock()
		select {
		case <-p:
		case <-ctx.Done():
			return ctx.Err()
		}
		ch.mu.Lock()
	}
	ch.mu.Unlock()
	return nil
}

// writeLoop is the channel's writer goroutine. It swaps the send buffer with
// a spare one and writes the whole batch in one stream write, so that Send
// never waits for the network while the buffer has room.
func (ch *Channel) writeLoop() {
	defer ch.c.wg.Done()
	defer close(ch.writerDone)
	for {
		select {
		case <-ch.kick:
		case <-ch.c.ctx.Done():
			ch.failSend(context.Cause(ch.c.ctx), nil, 0)
			return
		}
		for {
			ch.mu.Lock()
			if len(ch.buf) == 0 {
				ch.inFlight = false
				closing := ch.closing
				ch.mu.Unlock()
				if closing {
					if err := ch.s.Close(); err != nil {
						ch.failSend(err, nil, 0)
					}
					return
				}
				break
			}
			early := ch.c.inEarlyData()
			if !early && ch.retained != nil {
				if ch.c.earlyRejected() {
					ch.mu.Unlock()
					ch.failSend(ErrEarlyDataRejected, nil, 0)
					return
				}
				ch.retained, ch.retainedMsgs, ch.retainedBytes = nil, 0, 0
			}
			if early && ch.retainedBytes >= ch.c.cfg.SendBufferSize {
				// Enough is riding on 0-RTT; wait for the handshake.
				ch.mu.Unlock()
				select {
				case <-ch.c.qc.HandshakeComplete():
				case <-ch.c.ctx.Done():
				}
				continue
			}
			out, n := ch.buf, ch.bufMsgs
			ch.buf, ch.spare, ch.bufMsgs = ch.spare[:0], nil, 0
			ch.mu.Unlock()

			_, err := ch.s.Write(out)
			ch.writes.Add(1)
			if err != nil {
				ch.failSend(err, out, n)
				return
			}

			ch.mu.Lock()
			if early {
				ch.retained = append(ch.retained, out)
				ch.retainedMsgs += n
				ch.retainedBytes += len(out)
			} else if cap(out) <= 2*ch.c.cfg.SendBufferSize {
				ch.spare = out[:0]
			}
			ch.written += n
			ch.signalProgress()
			ch.mu.Unlock()
		}
	}
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
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.sendErr == nil {
		ch.sendErr = err
	}
	var lost [][]byte
	if rejected {
		lost = append(ch.retained, out)
		ch.inDoubt = ch.written - ch.retainedMsgs
	} else {
		ch.inDoubt = ch.written + n
	}
	lost = append(lost, ch.buf)
	for _, b := range lost {
		ch.unsent = appendUnsent(ch.unsent, b)
	}
	ch.buf, ch.spare, ch.retained = nil, nil, nil
	ch.signalProgress()
}

// markInDoubt records, after a graceful close of the connection that the
// peer did not confirm, that everything written is in doubt, and returns how
// many messages are. A channel that failed before keeps its own account.
func (ch *Channel) markInDoubt(err error) uint64 {
	<-ch.writerDone
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.sendErr == nil {
		ch.sendErr = ch.convertErr(err)
		ch.inDoubt = ch.written
		ch.unsent = appendUnsent(ch.unsent, ch.buf)
		ch.buf, ch.spare = nil, nil
		ch.signalProgress()
	}
	return ch.inDoubt
}

// settle waits, once the connection has ended, for the writer to record
// what it could not deliver.
func (ch *Channel) settle() {
	if ch.c.ctx.Err() != nil {
		<-ch.writerDone
	}
}

// UnsentMessage is a message accepted by Send that never reached the peer.
type UnsentMessage struct {
	Data       []byte
	ReplaySafe bool
}

// appendUnsent decodes the messages of an encoded batch, skipping a channel
// header (which starts with the stream type, never a message type).
func appendUnsent(dst []UnsentMessage, b []byte) []UnsentMessage {
	if len(b) > 1 && b[0] == wire.StreamChannel {
		b = b[min(len(b), 2+int(b[1])):]
	}
	for len(b) > 0 {
		flags, size, n, err := wire.ParseMessageHeader(b, MaxMessageSizeLimit)
		if err != nil || len(b) < n+size {
			break
		}
		dst = append(dst, UnsentMessage{Data: b[n : n+size : n+size], ReplaySafe: flags&wire.FlagReplaySafe != 0})
		b = b[n+size:]
	}
	return dst
}

// Unsent returns, after the channel failed, the messages that Send accepted
// but that certainly never reached the peer: those still buffered, and those
// sent in 0-RTT data that the server rejected, in the order they were sent.
// Before a failure it returns nil.
func (ch *Channel) Unsent() []UnsentMessage {
	ch.settle()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.unsent
}

// InDoubt returns, after the channel failed or its connection's graceful
// Close ended without the peer's confirmation, how many messages had been
// written to the connection without the peer confirming them: they may or
// may not have been delivered.
func (ch *Channel) InDoubt() uint64 {
	ch.settle()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.inDoubt
}

// Receive returns the next message, waiting for it until ctx ends. The
// returned slice belongs to the caller. After the peer closed its side,
// Receive returns io.EOF. A malformed or oversized frame, and a stream that
// ends (FIN) inside a frame, reset the channel (not the connection) with
// CodeProtocolError or CodeMessageTooLarge and are reported as a
// [*ChannelError]; the partial message is never returned.
func (ch *Channel) Receive(ctx context.Context) ([]byte, error) {
	return ch.receive(ctx, nil)
}

// ReceiveBuf is Receive that stores the message in buf when it fits
// (cap(buf) is at least its size) and returns buf[:size]; a larger message
// gets a new slice. A receive loop that passes back the slice it got, once
// done with it, receives without allocating.
func (ch *Channel) ReceiveBuf(ctx context.Context, buf []byte) ([]byte, error) {
	return ch.receive(ctx, buf)
}

// sized returns buf[:n] when it fits, a new slice otherwise.
func sized(buf []byte, n int) []byte {
	if buf != nil && cap(buf) >= n {
		return buf[:n]
	}
	return make([]byte, n)
}

func (ch *Channel) receive(ctx context.Context, buf []byte) ([]byte, error) {
	ch.rmu.Lock()
	defer ch.rmu.Unlock()
	limit := ch.c.cfg.MaxMessageSize
	for {
		if ch.recvErr != nil {
			return nil, ch.recvErr
		}
		if ch.large != nil {
			// The rest of a large message is read straight into it.
			if ch.largeN == len(ch.large) {
				msg := ch.large
				ch.large, ch.largeN = nil, 0
				ch.received.Add(1)
				ch.receivedBytes.Add(uint64(len(msg)))
				return msg, nil
			}
			if err := ch.readMore(ctx, 0); err != nil {
				if ch.large != nil && ctx.Err() != nil {
					// The caller may reuse its buffer once told of the
					// error: keep the partial message in one of ours.
					ch.large = append(make([]byte, 0, len(ch.large)), ch.large...)
				}
				return nil, ch.recvFailed(ctx, err)
			}
			continue
		}
		b := ch.sr.buffered()
		_, size, n, err := wire.ParseMessageHeader(b, limit)
		if err == nil && len(b) >= n+size {
			msg := sized(buf, size)
			copy(msg, b[n:n+size])
			ch.sr.consume(n + size)
			ch.received.Add(1)
			ch.receivedBytes.Add(uint64(size))
			return msg, nil
		}
		if err == nil && size >= directReadMin {
			// Take what is buffered and read the rest without staging
			// it in the stream reader's buffer: one copy instead of two.
			ch.large = sized(buf, size)
			ch.largeN = copy(ch.large, b[n:])
			ch.sr.consume(n + ch.largeN)
			continue
		}
		need := len(b) + 1
		switch {
		case err == nil:
			need = n + size
		case !errors.Is(err, wire.ErrShort):
			return nil, ch.rejectFrame(err)
		}
		if err := ch.readMore(ctx, need); err != nil {
			return nil, ch.recvFailed(ctx, err)
		}
	}
}

// directReadMin is the size from which a message that is not buffered yet in
// full is read straight into the slice Receive returns.
const directReadMin = channelReadBuffer / 4

// recvFailed handles an error from readMore: the context's error is returned
// as it is and leaves the channel usable; any other error ends the receive
// side.
func (ch *Channel) recvFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return err
	}
	if errors.Is(err, io.EOF) {
		if cut := ch.truncatedFrame(); cut != nil {
			return ch.rejectFrame(cut)
		}
		ch.recvErr = io.EOF
	} else {
		ch.recvErr = ch.convertErr(err)
	}
	ch.finishRecv()
	return ch.recvErr
}

// truncatedFrame returns, when the stream ended (FIN) inside a message
// frame, the [*wire.MalformedError] that says how much was missing; nil when
// it ended between frames, the only clean end of a channel.
func (ch *Channel) truncatedFrame() error {
	if ch.large != nil {
		return &wire.MalformedError{What: "message frame", Reason: fmt.Sprintf(
			"stream ended (FIN) after %d of the %d bytes its header announced", ch.largeN, len(ch.large))}
	}
	b := ch.sr.buffered()
	if len(b) == 0 {
		return nil
	}
	_, size, n, err := wire.ParseMessageHeader(b, MaxMessageSizeLimit)
	if errors.Is(err, wire.ErrShort) {
		return &wire.MalformedError{What: "message frame", Reason: fmt.Sprintf(
			"stream ended (FIN) inside a frame header, after %d bytes", len(b))}
	}
	if err != nil {
		return err
	}
	return &wire.MalformedError{What: "message frame", Reason: fmt.Sprintf(
		"stream ended (FIN) after %d of the %d bytes its header announced", len(b)-n, size)}
}

// rejectFrame resets the channel after a frame that breaks the protocol.
func (ch *Channel) rejectFrame(err error) error {
	code := CodeProtocolError
	var tl *wire.TooLargeError
	if errors.As(err, &tl) {
		code = CodeMessageTooLarge
	}
	ch.s.CancelRead(quic.StreamErrorCode(code))
	ch.s.CancelWrite(quic.StreamErrorCode(code))
	ch.recvErr = &ChannelError{Channel: ch.name, Code: code, Reason: err.Error()}
	ch.finishRecv()
	return ch.recvErr
}

var aLongTimeAgo = time.Unix(1, 0)

// readMore reads from the stream, interrupting the read when ctx ends: into
// the stream reader's buffer so that need bytes could be buffered, or, with
// need 0, into the rest of the large message being received.
func (ch *Channel) readMore(ctx context.Context, need int) error {
	if ctx.Done() == nil {
		return ch.read(need)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if ch.interrupt == nil {
		ch.interrupt = ch.interruptRead
		ch.interrupted = make(chan struct{}, 1)
	}
	stop := context.AfterFunc(ctx, ch.interrupt)
	err := ch.read(need)
	if !stop() {
		<-ch.interrupted
		_ = ch.s.SetReadDeadline(time.Time{})
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			return ctx.Err()
		}
	}
	return err
}

// interruptRead ends a read that ctx cut short; readMore registers it with
// context.AfterFunc and waits for it on ch.interrupted.
func (ch *Channel) interruptRead() {
	_ = ch.s.SetReadDeadline(aLongTimeAgo)
	ch.interrupted <- struct{}{}
}

func (ch *Channel) read(need int) error {
	if need > 0 {
		return ch.sr.fill(need)
	}
	n, err := ch.sr.readInto(ch.large[ch.largeN:])
	ch.largeN += n
	return err
}

func (ch *Channel) finishRecv() {
	ch.recvDone.Store(true)
	ch.c.channelRead()
}

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

// Close closes the channel in both directions: it writes what Send accepted
// (waiting up to Config.CloseTimeout), ends the send side so that the peer's
// Receive returns io.EOF after the last message, and discards whatever the
// peer still sends. It returns an error wrapping ErrUnflushed when accepted
// messages could not be written. Close is idempotent.
func (ch *Channel) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), ch.c.cfg.CloseTimeout)
	defer cancel()
	return ch.closeCtx(ctx)
}

func (ch *Channel) closeCtx(ctx context.Context) error {
	ch.closeOnce.Do(func() {
		ch.mu.Lock()
		ch.closing = true
		kick := !ch.inFlight
		ch.inFlight = true
		ch.mu.Unlock()
		if kick {
			ch.kick <- struct{}{}
		}
		select {
		case <-ch.writerDone:
		case <-ctx.Done():
			ch.s.CancelWrite(quic.StreamErrorCode(CodeChannelClosed))
			<-ch.writerDone
		}
		if !ch.recvDone.Load() {
			ch.s.CancelRead(quic.StreamErrorCode(CodeChannelClosed))
			ch.recvDone.Store(true)
		}
		ch.mu.Lock()
		unwritten := ch.sent - ch.written
		ch.mu.Unlock()
		if unwritten > 0 {
			ch.closeErr = fmt.Errorf("transport: channel %q: %d messages accepted by Send were not written: %w", ch.name, unwritten, ErrUnflushed)
		}
		ch.c.channelDone(ch)
	})
	return ch.closeErr
}

func (ch *Channel) stats() ConnStats {
	ch.mu.Lock()
	s := ConnStats{MessagesSent: ch.sent, MessagesWritten: ch.written, BytesSent: ch.sentBytes}
	ch.mu.Unlock()
	s.MessagesReceived = ch.received.Load()
	s.BytesReceived = ch.receivedBytes.Load()
	return s
}

// Reset aborts the channel in both directions with code: buffered messages
// are discarded and the peer's Send and Receive fail with a [*ChannelError]
// carrying code. Use it to refuse a channel; use Close to end one cleanly.
func (ch *Channel) Reset(code ErrorCode) {
	ch.closeOnce.Do(func() {
		ch.mu.Lock()
		ch.closing = true
		ch.mu.Unlock()
		ch.s.CancelWrite(quic.StreamErrorCode(code))
		ch.s.CancelRead(quic.StreamErrorCode(code))
		ch.recvDone.Store(true)
		ch.mu.Lock()
		kick := !ch.inFlight
		ch.inFlight = true
		ch.mu.Unlock()
		if kick {
			ch.kick <- struct{}{}
		}
		<-ch.writerDone
		ch.c.channelDone(ch)
	})
}

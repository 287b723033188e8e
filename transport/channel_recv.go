package transport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// channelReadBuffer is the size of a channel's receive buffer; it grows for a
// message that does not fit and shrinks back afterwards.
const channelReadBuffer = 64 << 10

// directReadMin is the size from which a message that is not buffered yet in
// full is read straight into the slice Receive returns.
const directReadMin = channelReadBuffer / 4

// recvSide is a channel's receive direction. It has no goroutine: the
// stream is read by the goroutine calling Receive, which holds mu for the
// whole call, so that one call at a time reads.
type recvSide struct {
	// received counts the messages (and gap notices) Receive returned:
	// atomic, because an ACK frame reads it without mu and must never
	// lag behind what was returned (see countReceived and takeAcks).
	received atomic.Uint64
	// Receive holds mu across blocking stream reads, so a reader of the
	// byte counter, which is guarded by mu, cannot always take it: before
	// each stream read, the receive side shows its count in shownBytes and
	// sets reading (see ctxReader.Read), and receivedBytes reads that while
	// a read is in progress. This keeps an atomic add off every message.
	shownBytes atomic.Uint64
	reading    atomic.Bool

	// Immutable after init.
	limit int                               // Config.MaxMessageSize
	parse func([]byte) ([]byte, int, error) // rx.parseMessage, bound once
	visit func(key, value []byte)           // rx.meta.visit, bound once

	mu sync.Mutex // held by Receive for its whole call; guards everything below

	bytes uint64 // payload bytes Receive returned; see receivedBytes

	// Messages and their frame bytes counted for acknowledgement but not
	// yet added to the connection's counts (see countReceived).
	ackMsgs, ackBytes int

	in  ctxReader     // the stream, read until the Receive call's ctx ends
	sr  *streamReader // buffers what is read from in
	dst []byte        // the caller's buffer, during a ReceiveBuf call
	// A large message being read straight into, see directReadMin, and how
	// many of its bytes were read.
	large  []byte
	largeN int
	err    error // the receive side ended: returned by every later Receive

	// The subject and headers of the message being received, and the gap
	// notice just parsed (gapped).
	meta   msgMeta
	gap    Gap
	gapped bool
}

// init sets the receive side up to read s through sr, which, for a channel
// the peer opened, holds what was read past the channel header.
func (rx *recvSide) init(s *quic.Stream, sr *streamReader, limit int) {
	rx.limit = limit
	rx.parse = rx.parseMessage
	rx.visit = rx.meta.visit
	rx.in.s = s
	rx.in.rx = rx
	if sr == nil {
		sr = newStreamReader(nil, channelReadBuffer)
	}
	sr.src = &rx.in
	rx.sr = sr
}

// Receive returns the next message, waiting for it until ctx ends. The
// returned slice belongs to the caller; of a message with headers it is
// the payload (ReceiveMsg returns the headers too). At a gap notice it
// returns a [*GapError] (matching ErrGap) and the channel stays usable: the
// next call returns the message after the gap. After the peer closed its side,
// Receive returns io.EOF. A malformed or oversized frame, and a stream that
// ends (FIN) inside a frame, reset the channel (not the connection) with
// CodeProtocolError or CodeMessageTooLarge and are reported as a
// [*ChannelError]; the partial message is never returned.
func (ch *Channel) Receive(ctx context.Context) ([]byte, error) {
	return ch.receive(ctx, nil, nil)
}

// ReceiveBuf is Receive that stores the message in buf when it fits
// (cap(buf) is at least its size) and returns buf[:size]; a larger message
// gets a new slice. A receive loop that passes back the slice it got, once
// done with it, receives without allocating.
func (ch *Channel) ReceiveBuf(ctx context.Context, buf []byte) ([]byte, error) {
	return ch.receive(ctx, buf, nil)
}

// receivedBytes returns the payload bytes Receive returned, counting
// every call that returned before this one began. Without a Receive in
// progress it reads the count under mu; with one blocked in a stream read,
// the count shown before that read, which is the latest (a Receive returns
// at most one message and counts it before it releases mu). A Receive
// that holds mu without reading is parsing what it has buffered: it is
// waited for.
func (rx *recvSide) receivedBytes() uint64 {
	for {
		if rx.mu.TryLock() {
			n := rx.bytes
			rx.mu.Unlock()
			return n
		}
		if rx.reading.Load() {
			return rx.shownBytes.Load()
		}
		runtime.Gosched()
	}
}

// sized returns buf[:n] when it fits, a new slice otherwise.
func sized(buf []byte, n int) []byte {
	if buf != nil && cap(buf) >= n {
		return buf[:n]
	}
	return make([]byte, n)
}

// receive returns the next message and, if m is not nil, sets m's Subject
// and Header. The stream is read until ctx ends (see ctxReader).
//
// With nothing buffered, it waits for the stream's next bytes itself, under
// few and small frames, and parses them in receiveNext, a call made after
// the wait: a goroutine that waits in Receive on an idle channel then
// keeps the 2 KiB stack it started with (the collector never shrinks a
// 4 KiB stack whose waiting frames take more than a quarter of it).
//
// ReceiveInto does the same, without this call, so that a receive loop
// around it (the session's channel reader) waits one frame less deep.
func (ch *Channel) receive(ctx context.Context, buf []byte, m *Message) ([]byte, error) {
	rx := &ch.rx
	rx.mu.Lock()
	if rx.err != nil {
		err := rx.err
		rx.mu.Unlock()
		return nil, err
	}
	rx.in.ctx, rx.dst = ctx, buf
	var werr error
	if rx.large == nil && len(rx.sr.buffered()) == 0 {
		werr = rx.sr.fill(1) // readNext's first read, on an empty buffer
	}
	msg, err := ch.receiveNext(m, werr)
	rx.mu.Unlock()
	return msg, err
}

// receiveNext is receive after its wait: werr is the error of the read
// into an empty buffer, if receive made one and it failed, which fails the
// call as readNext would have. The call's ctx and buffer are in rx.in.ctx
// and rx.dst (fewer arguments, a smaller frame in receive). It sets every
// field of m, if not nil, when it returns a message. rx.mu is held.
//
//go:noinline
func (ch *Channel) receiveNext(m *Message, werr error) ([]byte, error) {
	rx := &ch.rx
	ctx := rx.in.ctx
	var msg []byte
	err := werr
	if err != nil {
		err = ch.recvFailed(ctx, err)
	} else {
		msg, err = ch.receiveLocked(ctx)
	}
	rx.in.ctx, rx.dst = nil, nil
	// Counted here, not deeper: the first count arms the acknowledgement
	// timer and allocates, which takes stack.
	if _, gap := err.(*GapError); err == nil || gap {
		ch.countReceived(len(msg))
	}
	if err == nil && m != nil {
		// Field by field: a Message built whole takes room in this frame.
		m.Subject, m.Header, m.Data, m.ReplaySafe = cmp.Or(rx.meta.subject, ch.name), rx.meta.header, msg, false
	}
	return msg, err
}

// receiveLocked returns the next message: one buffered in full is parsed out
// of the stream reader (readNext); a large one is read straight into the
// slice returned (receiveLarge), also when an earlier call was cut short by
// its ctx in the middle of it; rx.dst is the caller's buffer. rx.mu is
// held. receive counts what it returns (countReceived).
func (ch *Channel) receiveLocked(ctx context.Context) ([]byte, error) {
	rx := &ch.rx
	if rx.large == nil {
		rx.meta = msgMeta{}
		msg, err := readNext(rx.sr, rx.parse)
		rx.dst = nil
		if err != nil {
			return nil, ch.recvFailed(ctx, err)
		}
		if rx.gapped {
			rx.gapped = false
			return nil, &GapError{Channel: ch.name, Gap: rx.gap}
		}
		if rx.large == nil {
			return msg, nil
		}
	}
	return ch.receiveLarge(ctx)
}

// parseMessage is the receive side's parser for readNext. A message buffered
// in full is copied into rx.dst, if it fits, or a new slice. Of a large one
// that is not, it takes what is buffered into rx.large and returns nil,
// leaving the rest to receiveLarge. rx.mu is held.
func (rx *recvSide) parseMessage(b []byte) ([]byte, int, error) {
	flags, size, n, err := wire.ParseMessageHeader(b, rx.limit)
	if err != nil {
		return nil, 0, err
	}
	if flags&(wire.FlagHeaders|wire.FlagGap) != 0 {
		return rx.parseFlagged(b, flags, size, n)
	}
	return rx.takeBody(b, n, size)
}

// takeBody takes the message body of size bytes at b[off:], as
// parseMessage describes. rx.mu is held.
func (rx *recvSide) takeBody(b []byte, off, size int) ([]byte, int, error) {
	switch {
	case len(b) >= off+size:
		msg := sized(rx.dst, size)
		copy(msg, b[off:off+size])
		return msg, off + size, nil
	case size >= directReadMin:
		// Take what is buffered and read the rest without staging it in
		// the stream reader's buffer: one copy instead of two.
		rx.large = sized(rx.dst, size)
		rx.largeN = copy(rx.large, b[off:])
		return nil, len(b), nil
	}
	return nil, 0, wire.ErrShort
}

// parseFlagged parses a gap notice, which it records in rx.gap, or a
// message with headers, whose header block (buffered in full first) it
// decodes into rx.meta before it takes the body as parseMessage does. The
// frame header, of n bytes, announced size bytes. rx.mu is held.
func (rx *recvSide) parseFlagged(b []byte, flags byte, size, n int) ([]byte, int, error) {
	if flags&wire.FlagGap != 0 {
		if len(b) < n+size {
			return nil, 0, wire.ErrShort
		}
		missed, reason, err := wire.ParseGap(b[n : n+size])
		if err != nil {
			return nil, 0, err
		}
		rx.gap, rx.gapped = Gap{Missed: missed, Reason: GapReason(reason)}, true
		return nil, n + size, nil
	}
	hn, err := wire.HeaderBlockSize(b[n:], size)
	if err != nil {
		return nil, 0, err
	}
	if len(b) < n+size && size-hn < directReadMin {
		return nil, 0, wire.ErrShort
	}
	if err := wire.ParseHeaderBlock(b[n+wire.VarintLen(b[n:]):n+hn], rx.visit); err != nil {
		return nil, 0, err
	}
	return rx.takeBody(b, n+hn, size-hn)
}

// receiveLarge reads the rest of the large message being received straight
// into it and returns it. rx.mu is held.
func (ch *Channel) receiveLarge(ctx context.Context) ([]byte, error) {
	rx := &ch.rx
	for rx.largeN < len(rx.large) {
		n, err := rx.sr.readInto(rx.large[rx.largeN:])
		rx.largeN += n
		if err != nil {
			if ctx.Err() != nil {
				// The caller may reuse its buffer once told of the
				// error: keep the partial message in one of ours.
				rx.large = slices.Clone(rx.large)
			}
			return nil, ch.recvFailed(ctx, err)
		}
	}
	msg := rx.large
	rx.large, rx.largeN = nil, 0
	return msg, nil
}

// recvFailed handles an error from reading or parsing: a read cut short by
// the caller's ctx returns the context's error and leaves the channel
// usable; a frame that breaks the protocol resets the channel; any other
// error ends the receive side. rx.mu is held.
func (ch *Channel) recvFailed(ctx context.Context, err error) error {
	var malformed *wire.MalformedError
	var tooLarge *wire.TooLargeError
	switch {
	case errors.Is(err, errInterrupted):
		return ctx.Err()
	case errors.As(err, &malformed) || errors.As(err, &tooLarge):
		return ch.rejectFrame(err)
	case errors.Is(err, io.EOF):
		if cut := ch.truncatedFrame(); cut != nil {
			return ch.rejectFrame(cut)
		}
		ch.rx.err = io.EOF
	default:
		ch.rx.err = ch.convertErr(err)
	}
	ch.finishRecv()
	return ch.rx.err
}

// truncatedFrame returns, when the stream ended (FIN) inside a message
// frame, the [*wire.MalformedError] that says how much was missing; nil when
// it ended between frames, the only clean end of a channel. rx.mu is held.
func (ch *Channel) truncatedFrame() error {
	rx := &ch.rx
	if rx.large != nil {
		return &wire.MalformedError{What: "message frame", Reason: fmt.Sprintf(
			"stream ended (FIN) after %d of the %d bytes its header announced", rx.largeN, len(rx.large))}
	}
	b := rx.sr.buffered()
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
// rx.mu is held.
func (ch *Channel) rejectFrame(err error) error {
	code := CodeProtocolError
	var tl *wire.TooLargeError
	if errors.As(err, &tl) {
		code = CodeMessageTooLarge
	}
	ch.s.CancelRead(quic.StreamErrorCode(code))
	ch.s.CancelWrite(quic.StreamErrorCode(code))
	ch.rx.err = &ChannelError{Channel: ch.name, Code: code, Reason: err.Error()}
	ch.finishRecv()
	return ch.rx.err
}

func (ch *Channel) finishRecv() {
	ch.recvDone.Store(true)
	ch.c.channelRead()
}

// errInterrupted is what ctxReader returns for a read that the Receive
// call's ctx cut short. It matches os.ErrDeadlineExceeded, so that the
// stream reader keeps the stream usable.
var errInterrupted = fmt.Errorf("transport: read interrupted by the caller's context: %w", os.ErrDeadlineExceeded)

var aLongTimeAgo = time.Unix(1, 0)

// ctxReader reads a channel's stream and cuts a read short, with a read
// deadline in the past, when the context of the Receive call in progress
// ends. It is part of the receive side and used with rx.mu held.
type ctxReader struct {
	s   *quic.Stream
	rx  *recvSide       // the receive side it is part of
	ctx context.Context // the Receive call's; nil between calls
	// interrupt is r.interruptRead, made at the first read that can be
	// interrupted; interrupted (capacity 1) says that it ran.
	interrupt   func()
	interrupted chan struct{}
}

// Read reads from the stream, showing the receive side's byte count while
// it may block (see recvSide.receivedBytes). It is one function, not a
// wrapper of another: an idle channel's reader waits under it, and a frame
// more would grow that goroutine's stack past 2 KiB.
func (r *ctxReader) Read(p []byte) (int, error) {
	var stop func() bool
	if r.ctx.Done() != nil {
		if r.ctx.Err() != nil {
			return 0, errInterrupted
		}
		if r.interrupt == nil {
			r.interrupt = r.interruptRead
			r.interrupted = make(chan struct{}, 1)
		}
		stop = context.AfterFunc(r.ctx, r.interrupt)
	}
	r.rx.shownBytes.Store(r.rx.bytes)
	r.rx.reading.Store(true)
	n, err := r.s.Read(p)
	r.rx.reading.Store(false)
	if stop != nil && !stop() {
		<-r.interrupted
		_ = r.s.SetReadDeadline(time.Time{})
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			return n, errInterrupted
		}
	}
	return n, err
}

// interruptRead ends a read that the context cut short; Read registers it
// with context.AfterFunc and waits for it on r.interrupted.
func (r *ctxReader) interruptRead() {
	_ = r.s.SetReadDeadline(aLongTimeAgo)
	r.interrupted <- struct{}{}
}

package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quicmsg/quicmsg/internal/ring"
	"github.com/quicmsg/quicmsg/internal/unsent"
	"github.com/quicmsg/quicmsg/transport"
)

// pending is a message in a channel's reconnect buffer, with its subject
// and headers: the form in which a connection that never wrote it gives
// it back (transport.Channel.Unsent), so that it is written again as it
// was sent. A client channel sends no gap notices.
type pending = transport.UnsentMessage

// Channel is a named channel of a [Client] that survives reconnects: it is
// reopened on every new connection, and messages sent while disconnected
// wait in the client's reconnect buffer, in order, until then.
// All methods are safe for concurrent use.
type Channel struct {
	cl   *Client                  // immutable
	name string                   // immutable
	opts transport.ChannelOptions // immutable: opened with them on every connection

	// sendMu is held by whoever moves messages between buf and a
	// connection (attach draining buf, recover putting messages back, fail
	// and Close dropping them), so that order holds: one mover at a time.
	sendMu sync.Mutex

	mu        sync.Mutex         // guards the fields below
	conn      *transport.Conn    // the connection the channel is (being) attached to
	cur       *transport.Channel // set once the buffer has drained into it
	attaching *transport.Channel // opened, buffer still draining
	// buf holds messages waiting for a connection, oldest first; their
	// room is reserved in cl.buf, which bounds them. Send pushes at the
	// back; recover pushes what a dead connection never wrote at the front.
	buf     ring.Ring[pending]
	changed chan struct{} // closed and replaced on every attach and detach
	closed  bool          // set by Close (under Client.handoff) or fail
	// closing ends when Close begins (or with closed, from fail): holders of
	// sendMu that wait on the network, and Sends waiting for room in the
	// reconnect buffer, give way to Close.
	closing     context.Context
	stopClosing context.CancelFunc

	closeOnce sync.Once
	closeErr  error // set by closeOnce

	// The receive side's count, for resuming the session. rx is the
	// transport channel whose messages count: the current one, and after
	// a GOAWAY the detached one until its connection has closed. rxMu is
	// held for reading by every Receive across its call into rx, and for
	// writing only by whoever replaces rx: the reconnect loop, once rx's
	// connection has ended (so that those calls return at once), and attach.
	// A message the transport returned, which it may have acknowledged, is
	// therefore always counted; one it still held when rx was retired is
	// never returned, so the server sends it again.
	rxMu  sync.RWMutex
	rx    *transport.Channel // guarded by rxMu
	recvd atomic.Uint64      // messages Receive returned in this session

	// The send side's count, guarded by Client.handoff: base is how many
	// messages of this channel the session numbered before held (before
	// the current transport channel's first while attached); held are the
	// messages a lost connection wrote without their acknowledgement,
	// kept until a resume says how many of them the server has.
	base uint64
	held []transport.UnsentMessage
}

func newChannel(c *Client, name string, opts transport.ChannelOptions) *Channel {
	ch := &Channel{cl: c, name: name, opts: opts, changed: make(chan struct{})}
	ch.closing, ch.stopClosing = context.WithCancel(context.Background())
	return ch
}

// Name returns the channel's name.
func (ch *Channel) Name() string { return ch.name }

// Options returns the options the channel is opened with on every
// connection ([Client.ChannelWith]).
func (ch *Channel) Options() transport.ChannelOptions { return ch.opts }

// open opens the channel on conn, with its options when it has any.
func (ch *Channel) open(ctx context.Context, conn *transport.Conn) (*transport.Channel, error) {
	if ch.opts != (transport.ChannelOptions{}) {
		return conn.OpenChannelWith(ctx, ch.name, ch.opts)
	}
	return conn.OpenChannel(ctx, ch.name)
}

func (ch *Channel) signalLocked() {
	close(ch.changed)
	ch.changed = make(chan struct{})
}

// attach opens the channel on conn, unless tch is already open there, and
// sends what waited in the buffer, before any new message.
func (ch *Channel) attach(ctx context.Context, conn *transport.Conn, tch *transport.Channel) error {
	ch.mu.Lock()
	if ch.closed || ch.conn == conn {
		ch.mu.Unlock()
		if tch != nil {
			tch.Reset(transport.CodeChannelClosed)
		}
		return nil
	}
	ch.conn = conn
	ch.mu.Unlock()
	if tch == nil {
		var err error
		if tch, err = ch.open(ctx, conn); err != nil {
			return err
		}
	}
	ctx, stop := ch.bound(ctx)
	defer stop()
	ch.sendMu.Lock()
	defer ch.sendMu.Unlock()
	ch.mu.Lock()
	if ch.closed || ch.conn != conn {
		ch.mu.Unlock()
		tch.Reset(transport.CodeChannelClosed)
		return ErrClosed
	}
	ch.attaching = tch
	ch.mu.Unlock()
	// Receive takes messages from tch only once it is current, below.
	ch.setRx(tch)
	return ch.drainBuf(ctx, conn, tch)
}

// drainBuf sends what waits in the buffer on tch, opened on conn, and
// then makes tch current. The caller holds sendMu.
func (ch *Channel) drainBuf(ctx context.Context, conn *transport.Conn, tch *transport.Channel) error {
	for {
		ch.mu.Lock()
		if ch.conn != conn {
			ch.mu.Unlock()
			return ErrClosed
		}
		if ch.buf.Len() == 0 {
			ch.cur, ch.attaching = tch, nil
			ch.signalLocked()
			ch.mu.Unlock()
			return nil
		}
		// Only this holder of sendMu takes from the front, so the
		// message is still there after the send.
		p := ch.buf.Peek()
		ch.mu.Unlock()
		err := unsent.Send(ctx, tch, p, true)
		if err != nil && !unsent.Refused(err) {
			return err
		}
		ch.mu.Lock()
		ch.buf.Pop()
		ch.mu.Unlock()
		if err != nil {
			// This connection will not take it (the server lowered its
			// size limit, or takes no headers): it fails alone.
			ch.cl.failed.Add(1)
		}
		ch.cl.buf.release(1, unsent.Size(p))
	}
}

// sendLocked sends msg on tch holding sendMu, so that it does not overtake
// messages an attach is still draining; Close ends its wait.
func (ch *Channel) sendLocked(ctx context.Context, tch *transport.Channel, msg []byte) error {
	ctx, stop := ch.bound(ctx)
	defer stop()
	ch.sendMu.Lock()
	defer ch.sendMu.Unlock()
	return tch.Send(ctx, msg)
}

// bound returns ctx, ended also when Close begins, for a holder of sendMu
// that waits on the network.
func (ch *Channel) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(ch.closing, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// openLocked returns the transport channels the channel has on its
// connection.
func (ch *Channel) openLocked() []*transport.Channel {
	var open []*transport.Channel
	for _, t := range []*transport.Channel{ch.attaching, ch.cur} {
		if t != nil {
			open = append(open, t)
		}
	}
	return open
}

// detach drops the channel's connection and returns the transport channels
// it had on it, whose undelivered messages recover puts back.
func (ch *Channel) detach() []*transport.Channel {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	old := ch.openLocked()
	ch.conn, ch.cur, ch.attaching = nil, nil, nil
	ch.signalLocked()
	return old
}

// recover puts back, at the front of the buffer, what the old transport
// channels accepted but never wrote. Their connection must have ended.
// What they wrote without its acknowledgement is kept in held
// when the session may be resumed (resume), and counted in doubt
// otherwise. If the channel was closed meanwhile, the messages put back
// are counted as failed instead. The caller holds Client.handoff.
func (ch *Channel) recover(old []*transport.Channel, resumable bool) {
	// An attach still sending on the old connection finishes first, so
	// that it takes from the buffer what it sent, not what comes back.
	ch.sendMu.Lock()
	defer ch.sendMu.Unlock()
	var back []transport.UnsentMessage
	for _, t := range old {
		if resumable {
			ch.base += t.Acked()
			ch.held = append(ch.held, t.Unacked()...)
		} else {
			ch.cl.inDoubt.Add(t.InDoubt())
		}
		back = append(back, t.Unsent()...)
	}
	ch.putBack(back)
}

// putBack pushes msgs, which a connection accepted and never wrote (or
// which the server never received), at the front of the buffer, to be sent
// before anything else; they count as resent. The caller holds sendMu.
func (ch *Channel) putBack(msgs []transport.UnsentMessage) {
	if len(msgs) == 0 {
		return
	}
	n := 0
	for _, u := range msgs {
		n += unsent.Size(u)
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		ch.cl.failed.Add(uint64(len(msgs)))
		return
	}
	ch.cl.resent.Add(uint64(len(msgs)))
	ch.cl.buf.putBack(len(msgs), n)
	for _, u := range slices.Backward(msgs) {
		ch.buf.PushFront(u)
	}
}

// setRx makes tch the transport channel whose messages Receive counts.
func (ch *Channel) setRx(tch *transport.Channel) {
	ch.rxMu.Lock()
	ch.rx = tch
	ch.rxMu.Unlock()
}

// checkClaim reports whether the server's resume state, that it received
// r of this channel's messages over the session, is possible: at least
// what it acknowledged, at most what was written. The caller holds
// Client.handoff.
func (ch *Channel) checkClaim(r uint64) error {
	if r < ch.base || r-ch.base > uint64(len(ch.held)) {
		return fmt.Errorf("channel %q: the server claims %d messages received; it acknowledged %d and %d more were written", ch.name, r, ch.base, len(ch.held))
	}
	return nil
}

// resume settles held once the server has said, in its resume state, that
// it received r of the channel's messages (checked by checkClaim): those
// it did not get go back to the front of the buffer, before what the
// connection never wrote, and the channel's next stream numbers its
// messages from r on. The caller holds Client.handoff.
func (ch *Channel) resume(r uint64) {
	ch.sendMu.Lock()
	defer ch.sendMu.Unlock()
	again := ch.held[min(r-ch.base, uint64(len(ch.held))):]
	ch.base, ch.held = r, nil
	ch.putBack(again)
}

// startOver resets the channel's counts for a new session, and returns
// the messages held for a resume that will not happen. The caller holds
// Client.handoff; no Receive counts meanwhile (rx is retired).
func (ch *Channel) startOver() []transport.UnsentMessage {
	held := ch.held
	ch.base, ch.held = 0, nil
	ch.recvd.Store(0)
	return held
}

// closeLocked marks the channel closed, takes it off its connection and
// empties its buffer; messages held for a resume are counted in doubt. It
// returns the transport channels it had open and how many messages, of how
// many bytes, it dropped from the buffer. The caller holds Client.handoff,
// sendMu and mu, and releases the room in the client's buffer.
func (ch *Channel) closeLocked() (open []*transport.Channel, msgs, bytes int) {
	if !ch.closed {
		ch.closed = true
		ch.stopClosing()
	}
	open = ch.openLocked()
	ch.conn, ch.cur, ch.attaching = nil, nil, nil
	ch.signalLocked()
	// Written before a connection was lost, they will not be resumed:
	// they may or may not have been delivered.
	ch.cl.inDoubt.Add(uint64(len(ch.held)))
	ch.held = nil
	msgs = ch.buf.Len()
	for p := range ch.buf.All() {
		bytes += unsent.Size(p)
	}
	ch.buf.Reset(0)
	return open, msgs, bytes
}

// fail closes the channel for good, when its client closes, and returns
// how many buffered messages it drops. The client has detached it first.
func (ch *Channel) fail() int {
	ch.sendMu.Lock()
	defer ch.sendMu.Unlock()
	ch.mu.Lock()
	_, msgs, bytes := ch.closeLocked()
	ch.mu.Unlock()
	ch.cl.buf.release(msgs, bytes)
	return msgs
}

// Close closes the channel for this client. The client forgets it: it is
// not reopened on later connections, and a later [Client.Channel] with the
// same name makes a fresh one. What the current connection accepted is
// written first, as [transport.Channel.Close] does (bounded by
// Config.Transport.CloseTimeout); messages still waiting in the reconnect
// buffer are not sent: Close reports them in an [UndeliveredError] and
// counts them in Stats.MessagesFailed. Afterwards Send and Receive fail
// with [ErrClosed]. Close is idempotent; every call waits for the first.
//
// The server lets the name go once it has read the old channel to its end,
// soon after Close returns. Until then it may refuse a new channel of the
// same name on the same connection (PROTOCOL.md, DUPLICATE_CHANNEL): the
// fresh channel's Send and Receive then fail with a
// [*transport.ChannelError] matching transport.CodeDuplicateChannel.
func (ch *Channel) Close() error {
	ch.closeOnce.Do(func() { ch.closeErr = ch.close() })
	return ch.closeErr
}

// close runs Close once. It first ends the waits of sendMu's holders, then
// takes the channel off its connection under Client.handoff, so that what a
// connection being taken away never delivered is back in the buffer and
// reported here, not dropped with only a count.
func (ch *Channel) close() error {
	cl := ch.cl
	cl.forget(ch)
	ch.stopClosing()
	cl.handoff.Lock()
	ch.sendMu.Lock()
	ch.mu.Lock()
	open, msgs, bytes := ch.closeLocked()
	ch.mu.Unlock()
	ch.sendMu.Unlock()
	cl.keepCount(ch)
	cl.handoff.Unlock()
	cl.buf.release(msgs, bytes)
	var errs []error
	for _, t := range open {
		errs = append(errs, t.Close())
		cl.inDoubt.Add(t.InDoubt())
		msgs += len(t.Unsent())
	}
	if msgs > 0 {
		cl.failed.Add(uint64(msgs))
		errs = append(errs, &UndeliveredError{Messages: msgs, Err: ErrClosed})
	}
	return errors.Join(errs...)
}

// isConnLost reports whether err from a channel of conn means the connection
// is gone (so the message should wait for the next one).
func isConnLost(conn *transport.Conn, err error) bool {
	return conn.Context().Err() != nil || errors.Is(err, transport.ErrEarlyDataRejected)
}

// Send sends msg on the channel. While connected it behaves like
// transport.Channel.Send; while disconnected it copies msg into the reconnect
// buffer, waiting for space until ctx ends. Messages go out in the order Send
// accepted them.
func (ch *Channel) Send(ctx context.Context, msg []byte) error {
	return ch.send(ctx, pending{Data: msg}, true)
}

// SendReplaySafe is Send for a message that is safe to process twice: on a
// resumed connection it travels in 0-RTT data, in the first flight.
func (ch *Channel) SendReplaySafe(ctx context.Context, msg []byte) error {
	return ch.send(ctx, pending{Data: msg, ReplaySafe: true}, true)
}

// TrySend is Send without waiting: it fails with ErrBufferFull when the
// reconnect buffer is full, and as transport.Channel.TrySend while connected.
func (ch *Channel) TrySend(msg []byte) error {
	return ch.send(context.Background(), pending{Data: msg}, false)
}

// SendMsg is Send for a message with a subject and headers
// (transport.Channel.SendMsg): m.Subject, when set and other than the
// channel's name, is the subject the message is published to. It does not
// modify m nor keep it once it returns. While disconnected, the message
// waits in the reconnect buffer with its subject and headers, and goes
// out as it was sent; one that the last connection's server would refuse
// (headers or a subject without the HEADERS extension, a wildcard
// subject) is refused at once. A buffered message that the next
// connection refuses all the same (its server lowered its size limit, or
// no longer takes headers) is dropped and counted in Stats.MessagesFailed,
// and the channel goes on.
func (ch *Channel) SendMsg(ctx context.Context, m *transport.Message) error {
	return ch.send(ctx, unsent.Of(ch.name, m), true)
}

// TrySendMsg is SendMsg without waiting, as TrySend.
func (ch *Channel) TrySendMsg(m *transport.Message) error {
	return ch.send(context.Background(), unsent.Of(ch.name, m), false)
}

// send is Send (block) or TrySend of p, which shares the caller's memory:
// the reconnect buffer keeps a copy.
func (ch *Channel) send(ctx context.Context, p pending, block bool) error {
	for {
		ch.mu.Lock()
		if ch.closed {
			ch.mu.Unlock()
			return ErrClosed
		}
		tch := ch.cur
		if tch != nil {
			ch.mu.Unlock()
			err := unsent.Send(ctx, tch, p, block)
			if err == nil || ctx.Err() != nil {
				return err
			}
			ch.mu.Lock()
			detached := ch.cur != tch
			ch.mu.Unlock()
			if !detached && !isConnLost(tch.Conn(), err) {
				return err
			}
			// The connection went away under us: the message was not
			// accepted, so it waits for the next connection.
			if err := ch.waitDetached(ctx, tch); err != nil {
				return err
			}
			continue
		}
		ch.mu.Unlock()
		if err := unsent.Check(ch.name, p, ch.cl.headers.Load()); err != nil {
			return fmt.Errorf("client: %w", err)
		}
		if err := ch.cl.buf.reserve(ctx, ch.closing.Done(), unsent.Size(p), block); err != nil {
			return err
		}
		ch.mu.Lock()
		if ch.cur != nil || ch.closed {
			// Attached (or closed) meanwhile: send directly instead.
			ch.mu.Unlock()
			ch.cl.buf.release(1, unsent.Size(p))
			continue
		}
		ch.buf.Push(unsent.Own(p))
		ch.mu.Unlock()
		return nil
	}
}

// current waits for the channel to be attached to a connection.
func (ch *Channel) current(ctx context.Context) (*transport.Channel, error) {
	for {
		ch.mu.Lock()
		tch, changed, closed := ch.cur, ch.changed, ch.closed
		ch.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if tch != nil {
			return tch, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch.cl.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// Receive returns the next message on the channel, waiting across
// reconnects until ctx ends. When the client resumes its session after a
// connection loss, the server sends again what this channel had not
// returned yet, so that every message arrives once and in order; without a
// resume (Config.DisableResume, a server without acknowledgements, or one
// that refused the resume), messages the server sent on a connection that
// died before they were returned are lost with it.
//
// At a gap notice (the server skipped messages there, for example as the
// relay drops for a slow consumer) Receive returns a
// [*transport.GapError], matching transport.ErrGap, that says how many
// were missed, and no message; the channel goes on: the next call returns
// the message after the gap. Gaps are counted in Stats.GapNotices and
// Stats.MessagesMissed.
func (ch *Channel) Receive(ctx context.Context) ([]byte, error) {
	return receive(ctx, ch, func(tch *transport.Channel) ([]byte, error) { return tch.ReceiveBuf(ctx, nil) })
}

// ReceiveBuf is Receive that stores the message in buf when it fits, as
// [transport.Channel.ReceiveBuf] does: it returns buf[:size], or a new slice
// for a larger message, so that a receive loop that passes back the slice
// it got, once done with it, receives without allocating.
func (ch *Channel) ReceiveBuf(ctx context.Context, buf []byte) ([]byte, error) {
	return receive(ctx, ch, func(tch *transport.Channel) ([]byte, error) { return tch.ReceiveBuf(ctx, buf) })
}

// ReceiveMsg is Receive with the message's subject and headers
// (transport.Channel.ReceiveMsg): Subject is the subject the message was
// published to, which on a wildcard subscription is not the channel's
// name. At a gap notice it returns a [*transport.GapError], as Receive.
func (ch *Channel) ReceiveMsg(ctx context.Context) (*transport.Message, error) {
	return receive(ctx, ch, func(tch *transport.Channel) (*transport.Message, error) { return tch.ReceiveMsg(ctx) })
}

// receive is Receive, with recv reading one message (or gap notice) from
// the channel's current transport channel.
func receive[T any](ctx context.Context, ch *Channel, recv func(*transport.Channel) (T, error)) (T, error) {
	var zero T
	for {
		tch, err := ch.current(ctx)
		if err != nil {
			return zero, err
		}
		msg, ok, err := receiveOn(ch, tch, recv)
		if !ok {
			continue // tch was retired meanwhile
		}
		if err == nil || ctx.Err() != nil || errors.Is(err, transport.ErrGap) {
			return msg, err
		}
		ch.mu.Lock()
		detached := ch.cur != tch
		ch.mu.Unlock()
		// A detached channel (its connection closing after GOAWAY) ends
		// with ErrClosed or io.EOF: that is the connection going, not the
		// channel.
		if !detached && !isConnLost(tch.Conn(), err) {
			return msg, err
		}
		// The connection is gone: wait until the client has detached it,
		// then for the next connection.
		if err := ch.waitDetached(ctx, tch); err != nil {
			return zero, err
		}
	}
}

// receiveOn receives from tch with recv and counts the message, or the
// gap notice (numbered like a message), for the session, if tch is still
// the channel's rx; ok is false, and nothing was received, if it is not.
func receiveOn[T any](ch *Channel, tch *transport.Channel, recv func(*transport.Channel) (T, error)) (msg T, ok bool, err error) {
	ch.rxMu.RLock()
	defer ch.rxMu.RUnlock()
	if ch.rx != tch {
		return msg, false, nil
	}
	msg, err = recv(tch)
	var gap *transport.GapError
	switch {
	case err == nil:
		ch.recvd.Add(1)
	case errors.As(err, &gap):
		ch.recvd.Add(1)
		ch.cl.gapNotices.Add(1)
		ch.cl.missed.Add(gap.Missed)
	}
	return msg, true, err
}

func (ch *Channel) waitDetached(ctx context.Context, tch *transport.Channel) error {
	for {
		ch.mu.Lock()
		cur, changed := ch.cur, ch.changed
		ch.mu.Unlock()
		if cur != tch {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-ch.cl.ctx.Done():
			return ErrClosed
		}
	}
}

// RetryError reports that SendWithRetry gave up.
type RetryError struct {
	Attempts int
	Last     error
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("client: send failed after %d attempts: %v", e.Attempts, e.Last)
}

func (e *RetryError) Unwrap() error { return e.Last }

// SendWithRetry sends msg and waits until it has been written to a live
// connection, retrying on the next connection, with the client's backoff,
// when the connection fails first; at most Config.RetryAttempts attempts. It
// returns a [*RetryError] with the number of attempts and the last failure.
// It does not use the reconnect buffer: it waits for a connection instead.
func (ch *Channel) SendWithRetry(ctx context.Context, msg []byte) error {
	var last error
	b := ch.cl.cfg.Backoff
	for attempt := 0; attempt < ch.cl.cfg.RetryAttempts; attempt++ {
		if attempt > 0 {
			d := b.next(attempt-1, ch.cl.jitter)
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return &RetryError{Attempts: attempt, Last: ctx.Err()}
			}
		}
		tch, err := ch.current(ctx)
		if err != nil {
			return &RetryError{Attempts: attempt + 1, Last: err}
		}
		err = ch.sendLocked(ctx, tch, msg)
		if err == nil {
			err = tch.Flush(ctx)
		}
		if err == nil {
			return nil
		}
		last = err
		if ctx.Err() != nil || !isConnLost(tch.Conn(), err) {
			return &RetryError{Attempts: attempt + 1, Last: err}
		}
	}
	return &RetryError{Attempts: ch.cl.cfg.RetryAttempts, Last: last}
}

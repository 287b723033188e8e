package transport

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// closeState is the bookkeeping of a graceful close, on both sides: what
// each side opened, what this side took of the peer's, and whether either
// is closing. Each event is one method; peerFinished is the one rule for
// when a peer that closes gracefully has nothing more for this side.
//
// Guarded by Conn.mu. The peer's events come from the control reader,
// channelOpened and channelAccepted from OpenChannel and AcceptChannel,
// streamsRefused from whoever resets a stream of the peer's (header
// readers, AcceptChannel, the close), beginClose from the first Close or
// Shutdown.
type closeState struct {
	closing      bool   // this side is closing: no channel is opened or accepted any more
	opened       uint64 // channels this side opened
	accepted     uint64 // the peer's streams taken from QUIC, handed out as channels or refused
	peerGraceful bool   // the peer's last GOAWAY had CodeNoError
	peerOpened   uint64 // channels the peer opened, from its last closing GOAWAY
	peerClosing  bool   // the peer ended its control stream after a closing GOAWAY
}

// channelOpened counts a channel this side opens; it reports false, and
// counts nothing, once this side is closing.
func (s *closeState) channelOpened() bool {
	if s.closing {
		return false
	}
	s.opened++
	return true
}

// channelAccepted counts a stream of the peer's that AcceptChannel took
// from the ready list, and reports whether it may become a channel: not
// once this side is closing (the caller then refuses it).
func (s *closeState) channelAccepted() bool {
	s.accepted++
	return !s.closing
}

// streamsRefused counts n streams of the peer's that were reset instead of
// becoming channels.
func (s *closeState) streamsRefused(n int) { s.accepted += uint64(n) }

// beginClose marks this side closing and returns the number of channels it
// opened, for its closing GOAWAY.
func (s *closeState) beginClose() (opened uint64) {
	s.closing = true
	return s.opened
}

// peerGoAway records a GOAWAY from the peer; one with CodeNoError begins
// its graceful close and says how many channels it opened.
func (s *closeState) peerGoAway(code ErrorCode, opened uint64) {
	s.peerGraceful = code == CodeNoError
	if s.peerGraceful {
		s.peerOpened = opened
	}
}

// peerControlEnded records the end of the peer's control stream, which
// completes its graceful close if its last GOAWAY was a closing one.
func (s *closeState) peerControlEnded() { s.peerClosing = s.peerGraceful }

// peerClosingToo reports whether the peer began a graceful close of its
// own: it may then have stopped reading this side's channels, so its
// NO_ERROR close does not confirm that it read them.
func (s *closeState) peerClosingToo() bool { return s.peerGraceful }

// peerFinished reports whether a peer closing gracefully has nothing more
// for this side: its control stream ended after a closing GOAWAY, every
// channel it opened was accepted or refused, and allRead reports that
// every channel's receive side was read to its end. allRead is called only
// when the rest holds.
func (s *closeState) peerFinished(allRead func() bool) bool {
	return s.peerClosing && s.accepted >= s.peerOpened && allRead()
}

// peerGoAway is the control reader's event for a GOAWAY frame.
func (c *Conn) peerGoAway(code ErrorCode, opened uint64) {
	c.mu.Lock()
	c.cs.peerGoAway(code, opened)
	c.mu.Unlock()
}

// peerControlEnded is the control reader's event for a FIN on the peer's
// control stream.
func (c *Conn) peerControlEnded() {
	c.mu.Lock()
	c.cs.peerControlEnded()
	c.mu.Unlock()
	c.finishIfDone()
}

// refuseStream resets a stream of the peer's that will not become a
// channel, and counts it; the count may complete the peer's close.
func (c *Conn) refuseStream(s *quic.Stream, code ErrorCode) {
	c.countRefused(s, code)
	c.finishIfDone()
}

// countRefused resets and counts a refused stream without checking
// whether the peer's close is complete: during this side's own close,
// which checks once its channels are done.
func (c *Conn) countRefused(s *quic.Stream, code ErrorCode) {
	c.mu.Lock()
	c.cs.streamsRefused(1)
	c.mu.Unlock()
	resetStream(s, code)
}

// finishIfDone closes the connection once a peer that is closing
// gracefully has nothing more for this side (closeState.peerFinished).
func (c *Conn) finishIfDone() {
	c.mu.Lock()
	done := c.cs.peerFinished(c.channelsReadLocked)
	c.mu.Unlock()
	if done {
		c.flushAcks()
		_ = c.qc.CloseWithError(quic.ApplicationErrorCode(CodeNoError), "")
	}
}

// channelsReadLocked reports whether every channel's receive side has
// ended. Called with c.mu held.
func (c *Conn) channelsReadLocked() bool {
	for ch := range c.channels {
		if !ch.recvDone.Load() {
			return false
		}
	}
	return true
}

// closer is the one close of a connection or a channel. The first Close,
// Shutdown, CloseWithError or Reset sets started and runs the close on the
// caller's goroutine; it sets err and closes done (finish) once every
// goroutine of the connection or channel has ended. Later calls wait for
// done; a later call whose own bound ends first, or that closes at once,
// cuts a graceful close short through abort.
//
// done and the abort context are made at their first use, once a close
// began: a connection or channel that stays open holds neither (issue 12,
// memory per idle session). The zero closer is ready to use.
type closer struct {
	started  atomic.Bool
	mu       sync.Mutex // guards the making of done, abortCtx and cancel
	abortCtx context.Context
	cancel   context.CancelCauseFunc
	done     chan struct{}
	err      error // written before done is closed, read after
}

// made makes done and the abort context if they are not yet. e.mu is held.
func (e *closer) made() {
	if e.done == nil {
		e.done = make(chan struct{})
		e.abortCtx, e.cancel = context.WithCancelCause(context.Background())
	}
}

// doneChan returns done, closed once the close finished.
func (e *closer) doneChan() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.made()
	return e.done
}

// aborted returns the context that abort ends, with its cause.
func (e *closer) aborted() context.Context {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.made()
	return e.abortCtx
}

// abort cuts a graceful close short with cause.
func (e *closer) abort(cause error) {
	e.mu.Lock()
	e.made()
	cancel := e.cancel
	e.mu.Unlock()
	cancel(cause)
}

// wait waits for the close to finish; if ctx ends first, it cuts a
// graceful close short and waits for it to end.
func (e *closer) wait(ctx context.Context) error {
	done := e.doneChan()
	select {
	case <-done:
	case <-ctx.Done():
		e.abort(context.Cause(ctx))
		<-done
	}
	return e.err
}

// finish ends the close with err; the caller has waited for the
// goroutines.
func (e *closer) finish(err error) {
	e.err = err
	e.abort(nil)
	e.mu.Lock()
	close(e.done)
	e.mu.Unlock()
}

// finishClose waits for the connection's goroutines and for the sockets
// migrations opened to close, and ends the close with err. The socket Dial
// made closes from its own context.AfterFunc when quic-go's connection
// ends, which is not waited for here (as with quic.DialAddr's).
func (c *Conn) finishClose(err error) {
	c.wg.Wait()
	c.stopAcks()
	if c.isClient {
		c.mig.release()
	}
	c.end.finish(err)
}

// CloseWithError closes the connection at once with code and reason. Messages
// not yet written are discarded; the peer sees a [*ConnError] with Remote set.
// During a graceful close it ends that close at once; the graceful close then
// reports what it could not deliver. CloseWithError is idempotent, and waits
// until the connection's goroutines have ended.
func (c *Conn) CloseWithError(code ErrorCode, reason string) error {
	first := c.end.started.CompareAndSwap(false, true)
	if first {
		c.mu.Lock()
		c.cs.beginClose()
		c.mu.Unlock()
	}
	_ = c.qc.CloseWithError(quic.ApplicationErrorCode(code), reason)
	if first {
		c.finishClose(nil)
	}
	<-c.end.doneChan()
	return nil
}

// Shutdown closes the connection gracefully: it opens and accepts no more
// channels, writes what Send accepted on every channel, tells the peer, and
// waits until the peer has read everything and closed too, or until ctx
// ends; then it closes the connection. It returns an error wrapping
// ErrUnflushed if accepted messages could not be written in time, and one
// wrapping ErrInDoubt if the connection ended before the peer confirmed that
// it had read every channel to its end (it was cut short, ctx ended, or the
// peer was closing too): then [Channel.InDoubt] counts what each channel
// wrote and [Channel.Unsent] holds what it never wrote.
//
// Shutdown is idempotent: a later call waits for the first to finish and
// returns its result, and if its own ctx ends first it cuts the graceful
// close short. Shutdown returns once the connection's goroutines have ended.
func (c *Conn) Shutdown(ctx context.Context) error {
	if c.end.started.CompareAndSwap(false, true) {
		c.finishClose(c.closeGracefully(ctx))
	}
	return c.end.wait(ctx)
}

// Close is [Conn.Shutdown] bounded by Config.CloseTimeout (default
// DefaultCloseTimeout), so that a deferred Close neither hangs nor drops
// messages silently: what it could not deliver in time is reported as
// Shutdown reports it.
func (c *Conn) Close() error {
	ctx, cancel := context.WithTimeoutCause(context.Background(), c.cfg.CloseTimeout, &closeTimeoutError{c.cfg.CloseTimeout})
	defer cancel()
	return c.Shutdown(ctx)
}

// closeTimeoutError is the cause of a Close that reached Config.CloseTimeout.
type closeTimeoutError struct{ d time.Duration }

func (e *closeTimeoutError) Error() string {
	return fmt.Sprintf("no close from the peer within the close timeout of %s", e.d)
}

// closeGracefully is the graceful close, run by the first Shutdown.
func (c *Conn) closeGracefully(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	actx := c.end.aborted()
	stop := context.AfterFunc(actx, func() { cancel(context.Cause(actx)) })
	defer stop()

	chans, opened := c.beginClose()
	c.refuseUnaccepted()
	err := closeChannels(ctx, chans)
	confirmed := c.sendClosingGoAway(opened) && c.awaitPeerClose(ctx)
	c.confirmed.Store(confirmed) // before the connection's context ends
	_ = c.qc.CloseWithError(quic.ApplicationErrorCode(CodeNoError), "")
	if !confirmed {
		err = errors.Join(err, c.unconfirmed(ctx, chans))
	}
	return err
}

// beginClose marks the connection closing, refuses the streams whose
// headers were read but that AcceptChannel never took, and returns the
// channels to close and the number this side opened.
func (c *Conn) beginClose() ([]*Channel, uint64) {
	c.mu.Lock()
	opened := c.cs.beginClose()
	chans := slices.Collect(maps.Keys(c.channels))
	unclaimed := c.takeAllReadyLocked()
	c.mu.Unlock()
	c.refuseReady(unclaimed)
	return chans, opened
}

// refuseUnaccepted refuses the channels the peer opened that are still
// waiting in QUIC: they will not be read, and the peer should not wait for
// them to end.
func (c *Conn) refuseUnaccepted() {
	drained, cancelled := context.WithCancel(context.Background())
	cancelled()
	for {
		s, err := c.qc.AcceptStream(drained)
		if err != nil {
			return
		}
		c.countRefused(s, CodeChannelClosed)
	}
}

// closeChannels closes chans at once, each writing what Send accepted
// until ctx ends.
func closeChannels(ctx context.Context, chans []*Channel) error {
	errs := make([]error, len(chans))
	var wg sync.WaitGroup
	for i, ch := range chans {
		wg.Go(func() { errs[i] = ch.Shutdown(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// awaitPeerClose waits for the peer to close after our closing GOAWAY,
// refusing channels it opens meanwhile. It reports whether the peer
// confirmed the close: it closed with NO_ERROR, which it does only once it
// has read every channel to its end, and it was not closing itself (a peer
// that closes gracefully too may have stopped reading our channels).
func (c *Conn) awaitPeerClose(ctx context.Context) bool {
	for {
		s, err := c.qc.AcceptStream(ctx)
		if err != nil {
			var ae *quic.ApplicationError
			if !errors.As(err, &ae) || !ae.Remote || ErrorCode(ae.ErrorCode) != CodeNoError {
				return false
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			return !c.cs.peerClosingToo()
		}
		resetStream(s, CodeChannelClosed)
	}
}

// unconfirmed marks what chans wrote as in doubt after a close the peer did
// not confirm, and returns an error wrapping ErrInDoubt if anything was.
func (c *Conn) unconfirmed(ctx context.Context, chans []*Channel) error {
	cause := context.Cause(c.qc.Context())
	if ctx.Err() != nil {
		cause = context.Cause(ctx)
		var te *closeTimeoutError
		if !errors.As(cause, &te) {
			cause = fmt.Errorf("no close from the peer before the close was cut short: %w", cause)
		}
	}
	var n uint64
	for _, ch := range chans {
		n += ch.markInDoubt(cause)
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d messages written, the connection ended before the peer confirmed reading them: %w", ErrInDoubt, n, convertConnErr(cause))
}

// ShutdownWithError closes the connection with code and reason once what
// the channels hold has reached the peer: it opens and accepts no more
// channels, has every channel write what Send accepted so far, waits
// until the peer acknowledged all of it when acknowledgements are on (or
// until it was written to QUIC when they are off), then closes the
// connection at once with code and reason, as CloseWithError does. If ctx
// ends first, or the connection ends, it closes all the same and returns
// an error wrapping ErrInDoubt: [Channel.Unacked] then says what may not
// have arrived. It is idempotent with the other close calls: if one began
// first, it waits for it as Shutdown does.
func (c *Conn) ShutdownWithError(ctx context.Context, code ErrorCode, reason string) error {
	if !c.end.started.CompareAndSwap(false, true) {
		return c.end.wait(ctx)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	actx := c.end.aborted()
	stop := context.AfterFunc(actx, func() { cancel(context.Cause(actx)) })
	defer stop()
	c.mu.Lock()
	c.cs.beginClose()
	chans := slices.Collect(maps.Values(c.byStream))
	c.mu.Unlock()
	var err error
	for _, ch := range chans {
		if n := ch.awaitDelivered(ctx); n > 0 && err == nil {
			err = fmt.Errorf("%w: channel %q: %d messages not acknowledged before the close with %s", ErrInDoubt, ch.name, n, code)
		}
	}
	// What this side received is acknowledged first, so that the peer
	// does not count it as undelivered.
	c.flushAcks()
	_ = c.qc.CloseWithError(quic.ApplicationErrorCode(code), reason)
	c.finishClose(err)
	return err
}

package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// controlWriter writes this side's frames on the control stream: SLOW_DOWN
// and RESUME, GOAWAY, and the closing GOAWAY that ends the stream. Any
// goroutine may write; mu serialises the writes and guards every field.
type controlWriter struct {
	mu        sync.Mutex
	s         *quic.Stream
	buf       []byte
	localSlow bool // we asked the peer to slow down
	closed    bool // the closing GOAWAY was written and the send side ended
	// goAwaySent says that SendGoAway asked the peer to leave; read
	// without the lock by GoAwaySent.
	goAwaySent atomic.Bool
}

// peerSignals is what the peer said on its control stream. The control
// reader goroutine is its only writer; slow is read without a lock on every
// Send, mu guards the rest.
type peerSignals struct {
	slow     atomic.Bool
	mu       sync.Mutex
	resumed  chan struct{} // made at SLOW_DOWN, closed at RESUME
	goAway   *GoAway       // the last GOAWAY
	goAwayCh chan struct{} // closed at the first GOAWAY
}

// SlowDown asks the peer to stop sending: its Send calls wait and its
// TrySend calls fail with ErrSlowDown until [Conn.Resume]. Repeated calls send
// one signal.
func (c *Conn) SlowDown() error { return c.setLocalSlow(true) }

// Resume lets the peer send again after [Conn.SlowDown].
func (c *Conn) Resume() error { return c.setLocalSlow(false) }

func (c *Conn) setLocalSlow(slow bool) error {
	c.ctrl.mu.Lock()
	defer c.ctrl.mu.Unlock()
	if c.ctrl.localSlow == slow {
		return nil
	}
	t := wire.ControlResume
	if slow {
		t = wire.ControlSlowDown
	}
	if err := c.writeControlLocked(wire.Control{Type: t}); err != nil {
		return err
	}
	c.ctrl.localSlow = slow
	return nil
}

// PeerSlowedDown reports whether the peer has asked this side to slow down.
func (c *Conn) PeerSlowedDown() bool { return c.sig.slow.Load() }

// SendGoAway tells the peer that this side is going away, with a code and a
// reason, without closing anything: the peer should finish its work and
// reconnect, elsewhere if it can.
func (c *Conn) SendGoAway(code ErrorCode, reason string) error {
	c.ctrl.mu.Lock()
	defer c.ctrl.mu.Unlock()
	// Set before the write: the peer may have the frame, and answer it
	// (closing its channels to leave), before Write returns, and whoever
	// sees that answer asks GoAwaySent.
	was := c.ctrl.goAwaySent.Swap(true)
	err := c.writeControlLocked(wire.Control{Type: wire.ControlGoAway, Code: uint64(code), Reason: reason})
	if err != nil {
		c.ctrl.goAwaySent.Store(was)
		return err
	}
	if testHookGoAwayWritten != nil {
		testHookGoAwayWritten()
	}
	return nil
}

// testHookGoAwayWritten, set only by tests, runs in SendGoAway once the
// frame is written.
var testHookGoAwayWritten func()

// GoAwaySent reports whether this side asked the peer to leave with
// [Conn.SendGoAway] (not the GOAWAY that begins a graceful close): the
// peer's graceful close that follows is its answer, and a server that
// keeps sessions for a resume expects the client back.
func (c *Conn) GoAwaySent() bool { return c.ctrl.goAwaySent.Load() }

// sendClosingGoAway writes the GOAWAY that begins a graceful close, with
// the number of channels this side opened, and ends the control stream's
// send side. It reports whether the frame was written.
func (c *Conn) sendClosingGoAway(opened uint64) bool {
	c.flushAcks()
	c.ctrl.mu.Lock()
	defer c.ctrl.mu.Unlock()
	if c.writeControlLocked(wire.Control{Type: wire.ControlGoAway, Code: uint64(CodeNoError), Opened: opened}) != nil {
		return false
	}
	c.ctrl.closed = true
	_ = c.ctrl.s.Close()
	return true
}

// GoAwayReceived returns a channel that is closed when the peer sends GOAWAY.
func (c *Conn) GoAwayReceived() <-chan struct{} { return c.sig.goAwayCh }

// PeerGoAway returns what the peer said in its GOAWAY, if it sent one.
func (c *Conn) PeerGoAway() (GoAway, bool) {
	c.sig.mu.Lock()
	defer c.sig.mu.Unlock()
	if c.sig.goAway == nil {
		return GoAway{}, false
	}
	return *c.sig.goAway, true
}

// writeControlLocked writes f on the control stream; c.ctrl.mu is held.
func (c *Conn) writeControlLocked(f wire.Control) error {
	if c.ctrl.closed {
		return ErrClosed
	}
	c.ctrl.buf = wire.AppendControl(c.ctrl.buf[:0], f)
	if _, err := c.ctrl.s.Write(c.ctrl.buf); err != nil {
		return c.wrapErr(err)
	}
	return nil
}

// waitResume waits while the peer has asked us to slow down.
func (c *Conn) waitResume(ctx context.Context) error {
	for c.sig.slow.Load() {
		c.sig.mu.Lock()
		ch := c.sig.resumed
		c.sig.mu.Unlock()
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return context.Cause(c.ctx)
		}
	}
	return nil
}

// readControl is the control reader goroutine, started by whoever made
// the connection (see newConn): it reads the peer's control frames until
// the stream ends or breaks the protocol, then waits for the connection's
// end and runs the end hook. It owns sr.
//
// It waits for the peer's next frame in fill, right under this small
// frame, and parses and handles what arrived in controlFrame, a call
// that has returned before the next wait: an idle connection's reader then
// waits, and stays, on the 2 KiB stack it started with (the collector
// never shrinks a 4 KiB stack whose waiting frames take more than a
// quarter of it).
func (c *Conn) readControl(sr *streamReader) {
	defer c.wg.Done()
	// The reader lives as long as the connection: after the peer's FIN,
	// or a failure that closes the connection, it waits for the end and
	// runs the end hook.
	defer c.endOnReader()
	for {
		var err error
		if len(sr.buffered()) == 0 {
			err = sr.fill(1) // as readNext would, on an empty buffer
		}
		if !c.controlFrame(sr, err) {
			return
		}
	}
}

// controlFrame reads the next control frame from sr, which holds at least
// its first byte unless err, the error of a read into an empty buffer, is
// set, and handles it; false once the control stream ended or broke the
// protocol (the connection is then closed or closing).
//
//go:noinline
func (c *Conn) controlFrame(sr *streamReader, err error) bool {
	var f wire.Control
	if err == nil {
		err = readControlInto(sr, &f)
	}
	var malformed *wire.MalformedError
	switch {
	case err == nil:
	case errors.As(err, &malformed):
		c.protocolError(err.Error())
		return false
	default:
		c.controlEnded(err)
		return false
	}
	if err := c.handleControl(&f); err != nil {
		c.protocolError(err.Error())
		return false
	}
	return true
}

// controlEnded handles the end of the peer's control stream: a FIN after a
// graceful GOAWAY, a rejected 0-RTT attempt, or a failure.
func (c *Conn) controlEnded(err error) {
	switch {
	case errors.Is(err, io.EOF):
		c.peerControlEnded()
	case errors.Is(err, quic.Err0RTTRejected):
		c.rejected.Store(true)
		c.cancel(ErrEarlyDataRejected)
		_ = c.qc.CloseWithError(quic.ApplicationErrorCode(CodeNoError), "0-RTT rejected")
	case c.err() == nil && !isConnLevel(err):
		// A stream error of a live connection; one of a connection that
		// ended needs no close (the end hook follows on this goroutine).
		c.protocolError(fmt.Sprintf("control stream failed: %v", err))
	}
}

func (c *Conn) handleControl(f *wire.Control) error {
	select {
	case <-c.ready:
	default:
		return c.handleEarlyHello(f)
	}
	switch f.Type {
	case wire.ControlSlowDown:
		c.sig.slowDown()
	case wire.ControlResume:
		c.sig.resume()
	case wire.ControlGoAway:
		c.sig.goAwayReceived(GoAway{Code: ErrorCode(f.Code), Reason: f.Reason})
		c.peerGoAway(ErrorCode(f.Code), f.Opened)
	case wire.ControlAck:
		return c.handleAck(f.Acks)
	case wire.ControlResumeState:
		return c.peerResumeState(f)
	case wire.ControlPing:
		return c.handlePing(f.Opaque)
	case wire.ControlPong:
		c.handlePong(f.Opaque)
	default:
		return fmt.Errorf("unexpected %s frame after the HELLO exchange", f.Type)
	}
	return nil
}

func (s *peerSignals) slowDown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.slow.Load() {
		s.resumed = make(chan struct{})
		s.slow.Store(true)
	}
}

func (s *peerSignals) resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slow.Load() {
		s.slow.Store(false)
		close(s.resumed)
	}
}

func (s *peerSignals) goAwayReceived(g GoAway) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.goAway == nil
	s.goAway = &g
	if first {
		close(s.goAwayCh)
	}
}

// handleEarlyHello takes the server's HELLO on a connection from DialEarly.
func (c *Conn) handleEarlyHello(f *wire.Control) error {
	if f.Type != wire.ControlHello || len(f.Hello.SessionID) != len(SessionID{}) {
		return fmt.Errorf("expected the server's HELLO with a %d-byte session ID, got %s", len(SessionID{}), f.Type)
	}
	if f.Hello.Version != wire.Version {
		_ = c.qc.CloseWithError(quic.ApplicationErrorCode(CodeVersionMismatch),
			fmt.Sprintf("server speaks version %d, this client version %d", f.Hello.Version, wire.Version))
		return nil
	}
	res, err := clientResume(&c.cfg, &f.Hello)
	var re *ResumeError
	switch {
	case errors.As(err, &re):
		c.cancel(re)
		_ = c.qc.CloseWithError(quic.ApplicationErrorCode(CodeNoError), re.reason())
		return nil
	case err != nil:
		return err
	}
	c.res = res
	c.setPeer(SessionID(f.Hello.SessionID), f.Hello)
	close(c.ready)
	if !c.acksOn.Load() {
		c.mu.Lock()
		chans := slices.Collect(maps.Keys(c.channels))
		c.mu.Unlock()
		for _, ch := range chans {
			ch.dropRetention()
		}
	}
	return nil
}

func (c *Conn) protocolError(reason string) {
	_ = c.qc.CloseWithError(quic.ApplicationErrorCode(CodeProtocolError), reason)
}

package transport

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/quic-go/quic-go/quicvarint"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// MaxResumeChannels is the most channels one side's resume state may
// name (SendResumeState; a peer that names more is closed with
// CodeProtocolError): it bounds what a peer can make this side hold.
const MaxResumeChannels = 1 << 14

// ErrNotResumed is returned by SendResumeState, PeerResumeState and
// RejectResume on a connection that did not resume a session (or whose
// HELLO exchange is not complete).
var ErrNotResumed = errors.New("transport: the connection did not resume a session")

// errResumeStateSent is returned by a second SendResumeState.
var errResumeStateSent = errors.New("transport: the resume state was already sent: each side sends it once")

// resumeExchange is the RESUME_STATE exchange of a resumed connection. mu
// guards every field; the control reader fills peer.
type resumeExchange struct {
	mu    sync.Mutex
	sent  bool              // SendResumeState was called
	peer  map[string]uint64 // the peer's entries so far
	final bool              // the peer's last frame arrived
	done  chan struct{}     // closed when final is set; made on first use
}

// complete reports whether the peer's resume state has arrived whole.
func (x *resumeExchange) complete() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.final
}

func (x *resumeExchange) doneLocked() chan struct{} {
	if x.done == nil {
		x.done = make(chan struct{})
	}
	return x.done
}

// SendResumeState sends, on a resumed connection, how many messages this
// side has received on each channel of the session (by name), counted over
// the whole session: the peer re-sends from there. Each side sends it
// once, right after the HELLO exchange (after [Conn.Ready] on a connection
// from DialEarly), in as many RESUME_STATE frames as it needs. It fails with
// ErrNotResumed on a connection that did not resume, with an error wrapping
// ErrInvalidName for a bad name, and for more than MaxResumeChannels
// channels or a count of 2^62 or more. It is safe for concurrent use.
func (c *Conn) SendResumeState(received map[string]uint64) error {
	if !c.Resumed() {
		return ErrNotResumed
	}
	entries, err := resumeEntries(received)
	if err != nil {
		return err
	}
	c.rs.mu.Lock()
	sent := c.rs.sent
	c.rs.sent = true
	c.rs.mu.Unlock()
	if sent {
		return errResumeStateSent
	}
	// A buffer of its own: the state may be large, and ctrl.buf lives as
	// long as the connection.
	b := wire.AppendResumeState(nil, entries)
	c.ctrl.mu.Lock()
	defer c.ctrl.mu.Unlock()
	if c.ctrl.closed {
		return ErrClosed
	}
	if _, err := c.ctrl.s.Write(b); err != nil {
		return c.wrapErr(err)
	}
	return nil
}

// resumeEntries checks a resume state and returns its entries, by name.
func resumeEntries(received map[string]uint64) ([]wire.ResumeEntry, error) {
	if len(received) > MaxResumeChannels {
		return nil, fmt.Errorf("transport: resume state names %d channels, the limit is %d (MaxResumeChannels)", len(received), MaxResumeChannels)
	}
	entries := make([]wire.ResumeEntry, 0, len(received))
	for _, name := range slices.Sorted(maps.Keys(received)) {
		if err := wire.ValidateName(name); err != nil {
			return nil, fmt.Errorf("%w in the resume state: %w", ErrInvalidName, err)
		}
		n := received[name]
		if n > quicvarint.Max {
			return nil, fmt.Errorf("transport: resume state count %d for channel %q is over 2^62-1", n, name)
		}
		entries = append(entries, wire.ResumeEntry{Name: name, Received: n})
	}
	return entries, nil
}

// PeerResumeState waits for the peer's resume state (see SendResumeState)
// and returns it, a map of its own; channels the peer does not name count
// as 0. It fails with ErrNotResumed on a connection that did not resume,
// with ctx's error, or with why the connection ended (a [*ResumeError] if
// the peer refused this side's state). It is safe for concurrent use.
func (c *Conn) PeerResumeState(ctx context.Context) (map[string]uint64, error) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, context.Cause(c.ctx)
	}
	if !c.res.resumed {
		return nil, ErrNotResumed
	}
	c.rs.mu.Lock()
	done := c.rs.doneLocked()
	c.rs.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		select {
		case <-done:
		default:
			return nil, context.Cause(c.ctx)
		}
	}
	c.rs.mu.Lock()
	defer c.rs.mu.Unlock()
	m := maps.Clone(c.rs.peer)
	if m == nil {
		m = make(map[string]uint64)
	}
	return m, nil
}

// peerResumeState takes a RESUME_STATE frame from the control reader; an
// error is the peer's protocol violation.
func (c *Conn) peerResumeState(f *wire.Control) error {
	if !c.res.resumed {
		return errors.New("RESUME_STATE on a connection that did not resume a session")
	}
	x := &c.rs
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.final {
		return errors.New("RESUME_STATE after the last one: the resume state is sent once")
	}
	if x.peer == nil {
		x.peer = make(map[string]uint64, len(f.Entries))
	}
	for _, e := range f.Entries {
		if _, dup := x.peer[e.Name]; dup {
			return fmt.Errorf("RESUME_STATE names channel %q twice", e.Name)
		}
		if len(x.peer) == MaxResumeChannels {
			return fmt.Errorf("RESUME_STATE names more than %d channels", MaxResumeChannels)
		}
		x.peer[e.Name] = e.Received
	}
	if f.Final {
		x.final = true
		close(x.doneLocked())
	}
	return nil
}

// RejectResume closes a resumed connection at once with CodeResumeClaim
// and detail as the reason (cut to 1024 bytes), when the peer's resume
// state is impossible: it claims more messages received on a channel than
// this side sent, or fewer than this side saw acknowledged. Name the
// channel and the counts in detail. The peer's connection ends with a
// [*ResumeError] wrapping ErrResumeClaim, with detail in its Detail, as
// context.Cause of its Context; this side's with a [*ConnError] with
// CodeResumeClaim. It fails with ErrNotResumed, and closes nothing, on a
// connection that did not resume; otherwise it returns nil once the
// connection's goroutines have ended, like [Conn.CloseWithError].
func (c *Conn) RejectResume(detail string) error {
	if !c.Resumed() {
		return ErrNotResumed
	}
	return c.CloseWithError(CodeResumeClaim, truncateReason(detail))
}

package transport

import (
	"errors"
	"fmt"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// MaxUrgency is the least urgent channel urgency (RFC 9218); 0 is the most
// urgent. A channel without a Priority is sent as quic-go's default, urgency
// DefaultUrgency and incremental.
const MaxUrgency = wire.MaxUrgency

// DefaultUrgency is the urgency of a channel opened without a Priority
// (quic-go's default, which RFC 9218 also names as the default).
const DefaultUrgency = 3

// ErrInvalidPriority is returned by OpenChannelWith for a Priority whose
// urgency is outside 0..MaxUrgency.
var ErrInvalidPriority = errors.New("transport: invalid channel priority")

// Priority is a channel's send priority in the terms of RFC 9218: QUIC
// sends the data of a more urgent channel (lower urgency) of the same
// connection before that of a less urgent one, so that an interactive
// channel does not wait behind bulk ones. Among channels of one urgency,
// incremental ones share the sending in turns, non-incremental ones are
// sent one after the other, in the order they were opened.
//
// The priority travels in the channel header (the PRIORITY option), and
// both ends apply it to their send direction. A peer that predates the
// option ignores it: its direction keeps the default priority.
//
// Make one with [NewPriority]; the zero Priority means none (the channel
// keeps the default, urgency DefaultUrgency and incremental, and its
// header carries no option). Priority values are comparable.
type Priority struct {
	urgency     int
	incremental bool
	set         bool
}

// NewPriority returns the priority of the given urgency (0, the most
// urgent, to MaxUrgency) and incremental flag. OpenChannelWith rejects an
// urgency out of range with an error wrapping ErrInvalidPriority.
func NewPriority(urgency int, incremental bool) Priority {
	return Priority{urgency: urgency, incremental: incremental, set: true}
}

// IsZero reports whether p is the zero Priority: none.
func (p Priority) IsZero() bool { return !p.set }

// Urgency returns the urgency, DefaultUrgency for the zero Priority.
func (p Priority) Urgency() int {
	if !p.set {
		return DefaultUrgency
	}
	return p.urgency
}

// Incremental reports whether the channel shares the sending with the
// others of its urgency in turns; true for the zero Priority.
func (p Priority) Incremental() bool { return !p.set || p.incremental }

// String returns the priority in the form of an RFC 9218 Priority header
// field ("u=1, i"), or "none".
func (p Priority) String() string {
	if !p.set {
		return "none"
	}
	if p.incremental {
		return fmt.Sprintf("u=%d, i", p.urgency)
	}
	return fmt.Sprintf("u=%d", p.urgency)
}

func (p Priority) validate() error {
	if p.set && (p.urgency < 0 || p.urgency > MaxUrgency) {
		return fmt.Errorf("%w: urgency %d is outside 0..%d", ErrInvalidPriority, p.urgency, MaxUrgency)
	}
	return nil
}

// toWire returns the options as the channel header carries them; they
// must be valid.
func (o ChannelOptions) toWire() wire.ChannelOptions {
	w := wire.ChannelOptions{Group: o.Group}
	if o.Priority.set {
		w.Priority = wire.Priority{Set: true, Urgency: uint8(o.Priority.urgency), Incremental: o.Priority.incremental}
	}
	return w
}

// optionsFromWire returns the options a channel header carried.
func optionsFromWire(w wire.ChannelOptions) ChannelOptions {
	o := ChannelOptions{Group: w.Group}
	if w.Priority.Set {
		o.Priority = NewPriority(int(w.Priority.Urgency), w.Priority.Incremental)
	}
	return o
}

// applyPriority sets the priority of this side's sending on the channel's
// stream; the zero Priority leaves quic-go's default.
func (ch *Channel) applyPriority() {
	if p := ch.opts.Priority; p.set {
		ch.s.SetPriority(int8(p.urgency), p.incremental)
	}
}

package session

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/quicmsg/quicmsg/transport"
)

// BroadcastStatus is what Broadcast did for one session.
type BroadcastStatus int

const (
	// BroadcastDelivered: the session's channel accepted the message (it is
	// in the channel's send buffer, as after a successful Send).
	BroadcastDelivered BroadcastStatus = iota
	// BroadcastSlowed: skipped, because the client had asked the server to
	// slow down (transport.ErrSlowDown) or the channel's send buffer was
	// full (transport.ErrWouldBlock).
	BroadcastSlowed
	// BroadcastFailed: the send failed; the outcome's Err says why (the
	// channel or the connection ended, the message is over the client's size
	// limit).
	BroadcastFailed
)

func (s BroadcastStatus) String() string {
	switch s {
	case BroadcastDelivered:
		return "delivered"
	case BroadcastSlowed:
		return "slowed"
	case BroadcastFailed:
		return "failed"
	}
	return fmt.Sprintf("BroadcastStatus(%d)", int(s))
}

// BroadcastOutcome is what Broadcast did for one session.
type BroadcastOutcome struct {
	Session transport.SessionID
	Status  BroadcastStatus
	Err     error // why the session was skipped or failed
}

// BroadcastResult says what [Server.Broadcast] did: how many sessions got
// the message, how many were skipped as slowed or failed, each of those with
// its reason, and how many did not have the channel open.
type BroadcastResult struct {
	Delivered int
	Slowed    int
	Failed    int
	// NotOpen counts sessions without an open channel of that name; they
	// were not sent to.
	NotOpen int
	// Undelivered lists the sessions counted in Slowed and Failed.
	Undelivered []BroadcastOutcome
}

// Err joins the errors of the sessions that failed; nil if none did.
// Sessions skipped as slowed are not errors.
func (r BroadcastResult) Err() error {
	var errs []error
	for _, o := range r.Undelivered {
		if o.Status == BroadcastFailed {
			errs = append(errs, fmt.Errorf("session %s: %w", o.Session, o.Err))
		}
	}
	return errors.Join(errs...)
}

// Broadcast sends msg on channel to every session that has a channel of that
// name open (a detached session's client channels count: the message waits
// for its client, see Session.TrySend), and never waits: a session whose client asked to slow down, or
// whose channel's send buffer is full, is skipped and reported as slowed,
// so that one slow client delays neither the others nor the caller. It
// opens no channel; use Session.SendOpen for that. Sessions that start
// during the call may or may not be included.
func (s *Server) Broadcast(channel string, msg []byte) BroadcastResult {
	var r BroadcastResult
	for _, sess := range s.broadcastTargets() {
		err := sess.TrySend(channel, msg)
		var cc *ChannelClosedError
		switch {
		case err == nil:
			r.Delivered++
		case errors.As(err, &cc) && cc.Err == nil:
			r.NotOpen++
		case errors.Is(err, transport.ErrSlowDown), errors.Is(err, transport.ErrWouldBlock):
			r.Slowed++
			r.Undelivered = append(r.Undelivered, BroadcastOutcome{Session: sess.ID(), Status: BroadcastSlowed, Err: err})
		default:
			r.Failed++
			r.Undelivered = append(r.Undelivered, BroadcastOutcome{Session: sess.ID(), Status: BroadcastFailed, Err: err})
		}
	}
	return r
}

// broadcastTargets returns the sessions Broadcast sends to: the live ones
// and the detached ones, whose carried channels keep what they are sent.
func (s *Server) broadcastTargets() []*Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := slices.Collect(maps.Values(s.sessions))
	return slices.AppendSeq(all, maps.Values(s.detached))
}

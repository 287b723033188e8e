package session

import (
	"errors"
	"fmt"

	"github.com/quicmsg/quicmsg/transport"
)

// ErrChannelClosed is matched, with errors.Is, by the error of a send on a
// channel the session does not have open (see [ChannelClosedError]).
var ErrChannelClosed = errors.New("session: channel not open")

// ErrTooManyChannels is matched, with errors.Is, by the error of opening a
// channel beyond Config.MaxServerChannels (see [ChannelLimitError]).
var ErrTooManyChannels = errors.New("session: too many server-opened channels")

// ChannelClosedError is returned by [Session.Send] and [Session.TrySend] for
// a channel the session does not have open: the client closed it (or reset
// it), or nobody opened it. They never open a channel, so that a message
// meant for a channel the client has left does not open a new one the client
// never reads; [Session.SendOpen] and [Session.Open] open one on request.
// It matches ErrChannelClosed.
type ChannelClosedError struct {
	Channel string
	// Err is the channel's own error when it ended during the send; nil when
	// the session had no channel of that name.
	Err error
}

func (e *ChannelClosedError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("session: channel %q is closed: %v", e.Channel, e.Err)
	}
	return fmt.Sprintf("session: channel %q is not open (the client closed it or never opened it; Session.SendOpen opens a new one)", e.Channel)
}

// Is makes the error match ErrChannelClosed.
func (e *ChannelClosedError) Is(target error) bool { return target == ErrChannelClosed }

// Unwrap returns the channel's own error, if any.
func (e *ChannelClosedError) Unwrap() error { return e.Err }

// ChannelLimitError is returned by [Session.Open] and [Session.SendOpen] when
// the session already has Config.MaxServerChannels channels open that the
// server opened. One closes, and frees its place, when either side closes
// it. It matches ErrTooManyChannels.
type ChannelLimitError struct {
	Channel string // the channel that was not opened
	Limit   int    // Config.MaxServerChannels
}

func (e *ChannelLimitError) Error() string {
	return fmt.Sprintf("session: channel %q not opened: the session has %d server-opened channels open, the limit (Config.MaxServerChannels)", e.Channel, e.Limit)
}

// Is makes the error match ErrTooManyChannels.
func (e *ChannelLimitError) Is(target error) bool { return target == ErrTooManyChannels }

// ErrListenerLimits is matched, with errors.Is, by the error of Serve on a
// listener that advertises other pending limits than the server enforces
// (see [ListenerLimitsError]).
var ErrListenerLimits = errors.New("session: listener advertises other limits than the server enforces")

// ListenerLimitsError is returned by [Server.Serve] for a listener whose
// HELLO advertises a pending limit other than the server's: clients would
// size their sending to the advertised value while the server enforces its
// own. [Server.Listen] makes a listener that advertises the server's
// limits. It matches ErrListenerLimits.
type ListenerLimitsError struct {
	Limit      string // "PendingCap" or "PendingBytes"
	Advertised int    // what the listener advertises (its transport.Config)
	Enforced   int    // what the server enforces (its Config)
}

func (e *ListenerLimitsError) Error() string {
	return fmt.Sprintf("session: the listener advertises %s %d in HELLO but the server enforces %d: make the listener with Server.Listen, or set transport.Config.%s to %d",
		e.Limit, e.Advertised, e.Enforced, e.Limit, e.Enforced)
}

// Is makes the error match ErrListenerLimits.
func (e *ListenerLimitsError) Is(target error) bool { return target == ErrListenerLimits }

// ErrNoReplyTo is matched by the error of [Session.Reply] for a request
// without a reply-to (transport.HeaderReplyTo): there is no subject to
// answer to. It is transport.ErrNoReplyTo, so that one errors.Is check
// covers the replies of both packages.
var ErrNoReplyTo = transport.ErrNoReplyTo

// ErrSessionEnded is matched, with errors.Is, by the error of a send on a
// session that has ended; the error also wraps why it ended.
var ErrSessionEnded = errors.New("session: session ended")

// ErrResumeWindowExpired is matched by the cause of a detached session's
// end when its client did not resume it within Config.ResumeWindow. The
// cause also wraps why its connection was lost.
var ErrResumeWindowExpired = errors.New("session: the client did not resume the session within Config.ResumeWindow")

// ErrDetachedLimit is matched, with errors.Is, by the cause of a detached
// session ended to stay within a server's limits on detached sessions
// (see [DetachedLimitError]).
var ErrDetachedLimit = errors.New("session: detached session ended at the server's limit")

// DetachedLimitError is why a detached session ended before its resume
// window passed: the server holds at most Config.MaxDetachedSessions
// detached sessions and Config.MaxDetachedBytes bytes of their messages,
// and ends the oldest ones first to stay within them. It matches
// ErrDetachedLimit.
type DetachedLimitError struct {
	Limit string // "MaxDetachedSessions" or "MaxDetachedBytes"
	Value int    // the limit's value
}

func (e *DetachedLimitError) Error() string {
	return fmt.Sprintf("session: detached session ended to stay within Config.%s (%d): it was the oldest", e.Limit, e.Value)
}

// Is makes the error match ErrDetachedLimit.
func (e *DetachedLimitError) Is(target error) bool { return target == ErrDetachedLimit }

// UnackedError is the cause Config.OnSessionEnd gets for a session with
// acknowledgements on that ended with server-to-client messages its client
// never acknowledged: sent and not confirmed, or accepted by Send and never
// sent. They may or may not have reached the client (those sent); none
// will be sent again. A channel the client closed without GOAWAY counts
// only what was never written on it: the client declined what it did not
// read. Err is why the session ended; Unwrap returns it, so
// that errors.Is and errors.As see through to it.
type UnackedError struct {
	Messages map[string]int // unacknowledged messages per channel name
	Err      error
}

// Total returns the number of unacknowledged messages over all channels.
func (e *UnackedError) Total() int {
	n := 0
	for _, c := range e.Messages {
		n += c
	}
	return n
}

func (e *UnackedError) Error() string {
	return fmt.Sprintf("session: ended with %d messages to the client unacknowledged, on %d channels: %v", e.Total(), len(e.Messages), e.Err)
}

// Unwrap returns why the session ended.
func (e *UnackedError) Unwrap() error { return e.Err }

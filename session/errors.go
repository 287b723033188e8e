package session

import (
	"errors"
	"fmt"
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

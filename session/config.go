package session

import (
	"fmt"
	"log/slog"

	"github.com/quicmsg/quicmsg/transport"
)

// Defaults for [Config]. A zero field in Config means the default.
const (
	// DefaultMaxSessions is how many sessions a server holds at once; further
	// connections are closed with transport.CodeTooManySessions.
	DefaultMaxSessions = 10000
	// DefaultPendingCap is how many messages a session may have received but
	// not yet handled before backpressure starts.
	DefaultPendingCap = transport.DefaultPendingCap
	// DefaultMaxServerChannels is how many channels opened by the server
	// (Session.Open, Session.SendOpen) a session may have open at once.
	DefaultMaxServerChannels = 16
)

// OverflowPolicy says what a session does when its pending messages reach
// Config.PendingCap.
type OverflowPolicy int

const (
	// OverflowBlock signals slow-down to the client and stops reading its
	// channels, so that QUIC flow control stops the sender. Below half the
	// cap the session signals resume and reads again. Nothing is dropped.
	OverflowBlock OverflowPolicy = iota
	// OverflowDisconnect signals slow-down at the cap but keeps reading; a
	// client that pushes on to twice the cap is disconnected with
	// transport.CodeOverloaded. Messages already received are still handled.
	OverflowDisconnect
)

func (p OverflowPolicy) String() string {
	switch p {
	case OverflowBlock:
		return "block"
	case OverflowDisconnect:
		return "disconnect"
	}
	return fmt.Sprintf("OverflowPolicy(%d)", int(p))
}

// Config configures a [Server]. The zero value is ready to use.
type Config struct {
	// MaxSessions caps concurrent sessions. Default DefaultMaxSessions (10000).
	MaxSessions int
	// PendingCap caps messages received but not yet handled, per session.
	// Default DefaultPendingCap (1000).
	PendingCap int
	// Overflow is the policy at the pending cap. Default OverflowBlock.
	Overflow OverflowPolicy
	// MaxServerChannels caps the channels the server opens to one session
	// (Session.Open, Session.SendOpen) that are open at once; opening more
	// fails with a *ChannelLimitError. Keep it below the clients'
	// transport.Config.MaxChannels, or opening waits for the client.
	// Default DefaultMaxServerChannels (16).
	MaxServerChannels int
	// Transport configures the listener made by ListenAndServe: message
	// size, channels per session (QUIC stream limit), idle timeout,
	// keep-alive and handshake timeout. Its PendingCap is set from PendingCap.
	Transport transport.Config
	// Logger receives one line per session start and end. Default: discard.
	Logger *slog.Logger
	// OnSessionStart and OnSessionEnd, when set, are called on the session's
	// own goroutine, never under a lock, when a session begins and after it
	// has ended and left the server's table. cause says why it ended.
	OnSessionStart func(s *Session)
	OnSessionEnd   func(s *Session, cause error)
	// OnChannelOpen and OnChannelClose, when set, are called, never under a
	// lock, when a channel of a session opens (by either side) and when it
	// ends. A relay uses them to track which sessions have which channels.
	// OnChannelOpen runs before the first message of the channel is handled.
	OnChannelOpen  func(s *Session, channel string)
	OnChannelClose func(s *Session, channel string)
}

func (c *Config) withDefaults() (Config, error) {
	var r Config
	if c != nil {
		r = *c
	}
	if r.MaxSessions == 0 {
		r.MaxSessions = DefaultMaxSessions
	}
	if r.PendingCap == 0 {
		r.PendingCap = DefaultPendingCap
	}
	if r.MaxServerChannels == 0 {
		r.MaxServerChannels = DefaultMaxServerChannels
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case r.MaxSessions < 0:
		return r, fmt.Errorf("session: Config.MaxSessions %d is negative", r.MaxSessions)
	case r.PendingCap < 0:
		return r, fmt.Errorf("session: Config.PendingCap %d is negative", r.PendingCap)
	case r.MaxServerChannels < 0:
		return r, fmt.Errorf("session: Config.MaxServerChannels %d is negative", r.MaxServerChannels)
	case r.Overflow != OverflowBlock && r.Overflow != OverflowDisconnect:
		return r, fmt.Errorf("session: Config.Overflow %v is not a known policy", r.Overflow)
	}
	r.Transport.PendingCap = r.PendingCap
	return r, nil
}

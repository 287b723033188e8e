package session

import (
	"cmp"
	"fmt"
	"log/slog"
	"time"

	"github.com/quicmsg/quicmsg/internal/cfgcheck"
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
	// DefaultPendingBytes is how many bytes of message payload a session may
	// have received but not yet handled before backpressure starts.
	DefaultPendingBytes = transport.DefaultPendingBytes
	// DefaultCloseTimeout is how long Server.Close lets sessions leave
	// after GOAWAY before it closes them.
	DefaultCloseTimeout = transport.DefaultCloseTimeout
	// DefaultResumeWindow is how long a session whose connection was lost
	// waits, detached, for its client to resume it.
	DefaultResumeWindow = 30 * time.Second
	// DefaultMaxDetachedSessions is how many detached sessions a server
	// keeps at once.
	DefaultMaxDetachedSessions = 10000
	// DefaultMaxDetachedBytes is how many bytes of server-to-client
	// messages not yet acknowledged all detached sessions hold together.
	DefaultMaxDetachedBytes = 256 << 20
	// DefaultMaxDetachedSendBytes is how many bytes of messages Send may
	// add to one session while it cannot write them (detached, or its
	// client has not reopened the channel yet).
	DefaultMaxDetachedSendBytes = 1 << 20
)

// OverflowPolicy says what a session does when its pending messages reach
// Config.PendingCap or their bytes Config.PendingBytes.
type OverflowPolicy int

const (
	// OverflowBlock signals slow-down to the client and stops reading its
	// channels, so that QUIC flow control stops the sender. The readers read
	// again as soon as the pending messages are below the cap and the byte
	// budget; the session signals resume only below half the cap and half
	// the byte budget. Nothing is dropped.
	OverflowBlock OverflowPolicy = iota
	// OverflowDisconnect signals slow-down at the cap or the byte budget but
	// keeps reading, to see whether the client obeys. A client that sends
	// more after SLOW_DOWN than a conforming one could have had under way
	// (the allowance, see PROTOCOL.md: twice the connection receive window
	// plus, per open channel, twice the larger of the client's send buffer,
	// counted up to transport.MaxAdvertisedSendBuffer or the server's own
	// send buffer if larger, and one message) is disconnected with transport.CodeOverloaded, once
	// per session. Messages already received are still handled. Memory stays
	// bounded all the same: at PendingBytes plus the allowance (or PendingCap
	// plus one message per 64 bytes of allowance) the session stops reading
	// as under OverflowBlock.
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
	// PendingBytes caps the payload bytes of messages received but not yet
	// handled, per session, beside PendingCap: backpressure starts at
	// whichever is reached first. A message's subject and headers count as
	// payload. Default DefaultPendingBytes (8 MiB).
	PendingBytes int
	// ServerPendingBytes is the budget of pending message bytes of all
	// sessions together. From half of it the server stops reading from the
	// sessions that hold more than their fair share, at all of it from every
	// session that holds any, so that QUIC flow control pushes back on their
	// clients; they read again as the handler frees the budget. A session
	// with an empty queue may always read one message. Default
	// DefaultServerPendingBytes(), sized from the machine.
	ServerPendingBytes int
	// Overflow is the policy at the pending cap. Default OverflowBlock.
	Overflow OverflowPolicy
	// MaxServerChannels caps the channels the server opens to one session
	// (Session.Open, Session.SendOpen) that are open at once; opening more
	// fails with a *ChannelLimitError. Keep it below the clients'
	// transport.Config.MaxChannels, or opening waits for the client.
	// Default DefaultMaxServerChannels (16).
	MaxServerChannels int
	// CloseTimeout bounds Server.Close: how long sessions have to leave
	// after GOAWAY, and the handler to drain what was received, before the
	// rest are closed. Default DefaultCloseTimeout (5 s).
	CloseTimeout time.Duration
	// Transport configures the listener made by Server.Listen and
	// ListenAndServe: message size, channels per session (QUIC stream
	// limit), idle timeout, keep-alive and handshake timeout, QUIC receive
	// windows. Its PendingCap and PendingBytes, what the listener advertises
	// in HELLO, are set from those of this Config, which the server
	// enforces; whatever they held is replaced.
	Transport transport.Config
	// Logger receives one line per session start and end. Default: discard.
	Logger *slog.Logger
	// OnSessionStart and OnSessionEnd, when set, are called on the session's
	// own goroutine, never under a lock, when a session begins and after it
	// has ended: its connection is gone, it left the server's table, its
	// channels' readers have ended and the handler has returned for the last
	// message it read. cause says why it ended.
	OnSessionStart func(s *Session)
	OnSessionEnd   func(s *Session, cause error)
	// OnChannelOpen and OnChannelClose, when set, are called, never under a
	// lock, when a channel of a session opens (by either side) and when it
	// ends. A relay uses them to track which sessions have which channels.
	// OnChannelOpen runs before the first message of the channel is handled.
	// Calls for different channels may run at the same time (each client
	// channel's on the goroutine that read its header).
	// A client channel of a resumable session stays open while the session
	// is detached: the client's reopening it after a resume calls neither
	// hook, and OnChannelClose runs when the client closes it or the
	// session ends.
	OnChannelOpen  func(s *Session, channel string)
	OnChannelClose func(s *Session, channel string)

	// ResumeWindow is how long a session outlives a lost connection,
	// detached, for its client to resume it on a new one (see the package
	// doc, "Resumable sessions"). Sessions are resumable when both sides
	// acknowledge messages (transport.Config.DisableAcks unset on both) and
	// the listener is one Server.Listen made. Negative: sessions end with
	// their connection, as without acknowledgements. Default
	// DefaultResumeWindow (30 s).
	ResumeWindow time.Duration
	// MaxDetachedSessions caps the detached sessions held at once. At the
	// cap, detaching one more ends the oldest detached session (its
	// OnSessionEnd reports a *DetachedLimitError). Default
	// DefaultMaxDetachedSessions (10000).
	MaxDetachedSessions int
	// MaxDetachedBytes caps the payload bytes of server-to-client messages
	// not acknowledged by their clients that the detached sessions hold
	// together (what they re-send on resume). Over it, the oldest detached
	// sessions end until the rest fit; a session that alone holds more is
	// not detached. Default DefaultMaxDetachedBytes (256 MiB).
	MaxDetachedBytes int
	// MaxDetachedSendBytes caps, per session, the payload bytes that Send
	// accepts on a channel that has no connection to write to (the session
	// is detached, or its client has not reopened the channel since it
	// resumed): beyond it Send waits until the session resumes or ends,
	// and TrySend fails with transport.ErrWouldBlock. One message alone
	// always fits. Default DefaultMaxDetachedSendBytes (1 MiB).
	MaxDetachedSendBytes int
	// ResumeKey authenticates the resume tokens the listener made by
	// Server.Listen issues (it replaces Transport.ResumeKey when set). Nil:
	// Transport.ResumeKey, or a random key per listener. Sessions never
	// survive a restart (they live in memory); a key kept across restarts
	// only makes the clients' refusal say transport.ErrResumeExpired
	// instead of transport.ErrResumeTokenInvalid.
	ResumeKey *transport.ResumeKey
	// OnSessionDetached, when set, is called on the session's goroutine,
	// never under a lock, when the session's connection was lost and the
	// session is kept for a resume; cause is why the connection ended.
	// OnSessionResumed is called when a client has resumed it, on its new
	// connection ([Session.Conn]), before its channels are accepted. A
	// session that is never resumed ends with OnSessionEnd as any other.
	OnSessionDetached func(s *Session, cause error)
	OnSessionResumed  func(s *Session)
}

func (c *Config) withDefaults() (Config, error) {
	var r Config
	if c != nil {
		r = *c
	}
	r.MaxSessions = cmp.Or(r.MaxSessions, DefaultMaxSessions)
	r.PendingCap = cmp.Or(r.PendingCap, DefaultPendingCap)
	r.MaxServerChannels = cmp.Or(r.MaxServerChannels, DefaultMaxServerChannels)
	r.PendingBytes = cmp.Or(r.PendingBytes, DefaultPendingBytes)
	if r.ServerPendingBytes == 0 {
		r.ServerPendingBytes = DefaultServerPendingBytes() // reads /proc: only when needed
	}
	r.CloseTimeout = cmp.Or(r.CloseTimeout, DefaultCloseTimeout)
	r.ResumeWindow = cmp.Or(r.ResumeWindow, DefaultResumeWindow)
	r.MaxDetachedSessions = cmp.Or(r.MaxDetachedSessions, DefaultMaxDetachedSessions)
	r.MaxDetachedBytes = cmp.Or(r.MaxDetachedBytes, DefaultMaxDetachedBytes)
	r.MaxDetachedSendBytes = cmp.Or(r.MaxDetachedSendBytes, DefaultMaxDetachedSendBytes)
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	r.Transport.PendingCap = r.PendingCap
	r.Transport.PendingBytes = r.PendingBytes
	return r, r.validate()
}

// validate names the first field of a Config (defaults applied) that is out
// of range.
func (c *Config) validate() error {
	if err := cfgcheck.NonNegative("session: Config",
		cfgcheck.Int{Name: "MaxSessions", Value: c.MaxSessions},
		cfgcheck.Int{Name: "PendingCap", Value: c.PendingCap},
		cfgcheck.Int{Name: "MaxServerChannels", Value: c.MaxServerChannels},
		cfgcheck.Int{Name: "PendingBytes", Value: c.PendingBytes},
		cfgcheck.Int{Name: "ServerPendingBytes", Value: c.ServerPendingBytes},
		cfgcheck.Int{Name: "MaxDetachedSessions", Value: c.MaxDetachedSessions},
		cfgcheck.Int{Name: "MaxDetachedBytes", Value: c.MaxDetachedBytes},
		cfgcheck.Int{Name: "MaxDetachedSendBytes", Value: c.MaxDetachedSendBytes},
	); err != nil {
		return err
	}
	switch {
	case c.CloseTimeout < 0:
		return fmt.Errorf("session: Config.CloseTimeout %v is negative", c.CloseTimeout)
	case c.Overflow != OverflowBlock && c.Overflow != OverflowDisconnect:
		return fmt.Errorf("session: Config.Overflow %v is not a known policy", c.Overflow)
	}
	return nil
}

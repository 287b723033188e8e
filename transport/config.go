package transport

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"

	"github.com/quicmsg/quicmsg/internal/cfgcheck"
	"github.com/quicmsg/quicmsg/internal/wire"
)

// Defaults for [Config]. A zero field in Config means the default.
const (
	// DefaultMaxMessageSize is the largest message accepted, in bytes.
	DefaultMaxMessageSize = 1 << 20
	// MaxMessageSizeLimit is the highest value Config.MaxMessageSize may take.
	MaxMessageSizeLimit = 16 << 20
	// DefaultHandshakeTimeout bounds the QUIC handshake plus the HELLO exchange.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultIdleTimeout closes a connection that received nothing for this long.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultKeepAlivePeriod is how often an otherwise quiet connection sends
	// a keep-alive, so that healthy idle sessions do not hit the idle timeout.
	DefaultKeepAlivePeriod = 10 * time.Second
	// DefaultMaxChannels is how many channels the peer may have open at once
	// on one connection (the QUIC bidirectional stream limit).
	DefaultMaxChannels = 100
	// DefaultSendBufferSize is how many bytes of encoded messages a channel
	// buffers before Send blocks (TrySend fails with ErrWouldBlock).
	DefaultSendBufferSize = 64 << 10
	// MaxAdvertisedSendBuffer is the most of a peer's advertised send buffer
	// (HELLO extension SEND_BUFFER) that this side takes into account, unless
	// its own Config.SendBufferSize is larger, which is then the limit: a
	// receiver sizes from it what the peer may still send after SLOW_DOWN
	// (PROTOCOL.md, "Overload"), and a peer must not be able to raise that
	// without bound by advertising a huge buffer.
	MaxAdvertisedSendBuffer = 1 << 20
	// DefaultAcceptBacklog is how many connections may wait, HELLO exchange
	// done, for Listener.Accept.
	DefaultAcceptBacklog = 128
	// DefaultHelloTimeout is how long a Listener under pressure waits for a
	// client's HELLO once the TLS handshake has completed. An honest client
	// sends HELLO right after its handshake's last message, so this only has
	// to cover scheduling delays and one network delay.
	DefaultHelloTimeout = 500 * time.Millisecond
	// DefaultMaxPendingHellos is how many connections a Listener holds that
	// have completed the TLS handshake but not yet sent HELLO.
	DefaultMaxPendingHellos = 1024
	// DefaultMaxPendingHellosPerIP is DefaultMaxPendingHellos for one source
	// IP address.
	DefaultMaxPendingHellosPerIP = 128
	// DefaultMaxHandshakesPerIP is how many QUIC handshakes may be in
	// progress at once from one source IP address on a Listener.
	DefaultMaxHandshakesPerIP = 16
	// DefaultChannelHeaderTimeout is how long the peer has to send a
	// channel's header once its stream arrived.
	DefaultChannelHeaderTimeout = time.Second
	// DefaultPendingCap is what Config.PendingCap advertises in HELLO when
	// the layer that enforces it sets nothing.
	DefaultPendingCap = 1000
	// DefaultPendingBytes is what Config.PendingBytes advertises in HELLO
	// when the layer that enforces it sets nothing.
	DefaultPendingBytes = 8 << 20
	// DefaultMaxStreamReceiveWindow is the largest QUIC flow-control window,
	// in bytes, that one channel's receive side auto-tunes up to: what the
	// peer may send on a channel that this side has not read.
	DefaultMaxStreamReceiveWindow = 4 << 20
	// DefaultMaxConnectionReceiveWindow is the largest QUIC flow-control
	// window, in bytes, for all channels of a connection together: the bound
	// on data received but not read, per connection.
	DefaultMaxConnectionReceiveWindow = 8 << 20
	// DefaultCloseTimeout bounds how long Close waits to write what Send accepted
	// and for the peer to acknowledge a graceful close.
	DefaultCloseTimeout = 5 * time.Second
)

// Config configures a [Listener] or a connection made by [Dial]. The zero
// value is ready to use: every zero field takes its default. A Config must not
// be modified after being passed to Listen or Dial.
type Config struct {
	// MaxMessageSize is the largest message this side accepts, in bytes.
	// Default DefaultMaxMessageSize (1 MiB); at most MaxMessageSizeLimit (16 MiB).
	MaxMessageSize int
	// HandshakeTimeout bounds the QUIC handshake and the HELLO exchange.
	// Default DefaultHandshakeTimeout (5 s).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that received nothing for this long; the
	// effective value is the smaller of both sides'. Default DefaultIdleTimeout (30 s).
	IdleTimeout time.Duration
	// KeepAlivePeriod is how often a quiet connection sends a keep-alive.
	// Default DefaultKeepAlivePeriod (10 s); negative disables keep-alives.
	KeepAlivePeriod time.Duration
	// MaxChannels is how many channels the peer may have open at once. Opening
	// more blocks in OpenChannel until one closes. Default DefaultMaxChannels (100).
	MaxChannels int
	// SendBufferSize is how many bytes a channel buffers before Send blocks.
	// It is advertised to the peer in HELLO; a peer counts at most
	// max(MaxAdvertisedSendBuffer, its own SendBufferSize) of it when it
	// sizes what may still arrive after SLOW_DOWN, so a sender with a larger
	// buffer may be disconnected with CodeOverloaded by a receiver that sheds
	// senders ignoring SLOW_DOWN if it keeps sending what it buffered.
	// Default DefaultSendBufferSize (64 KiB).
	SendBufferSize int
	// AcceptBacklog is how many connections may wait for Listener.Accept
	// once their HELLO exchange is done. Default DefaultAcceptBacklog (128).
	AcceptBacklog int
	// HelloTimeout is how long a Listener waits for a client's HELLO,
	// counted from the completion of the TLS handshake (a 0-RTT client's
	// HELLO arrives before that). It is enforced while the listener is under
	// pressure, with more than half of MaxPendingHellos (or of
	// MaxPendingHellosPerIP for the client's address) waiting for HELLO: an
	// overdue connection is then closed with CodeProtocolError and counted
	// in ListenerStats.HelloTimeouts. Without pressure, HandshakeTimeout
	// (counted from the first packet) bounds the wait, so that a loaded
	// server does not turn away clients whose HELLO it has not read yet.
	// Default DefaultHelloTimeout (500 ms).
	HelloTimeout time.Duration
	// MaxPendingHellos is how many connections a Listener holds that have
	// completed the TLS handshake but not yet sent HELLO. When a new one
	// would exceed it, the oldest is closed with CodeTooManySessions and
	// counted in ListenerStats.EvictedHellos. Default DefaultMaxPendingHellos (1024).
	MaxPendingHellos int
	// MaxPendingHellosPerIP is MaxPendingHellos for the connections of one
	// source IP address: a new connection over it evicts the oldest pending
	// connection of the same address (not of another), so that one source
	// cannot push out the others. Default DefaultMaxPendingHellosPerIP (128).
	MaxPendingHellosPerIP int
	// MaxHandshakesPerIP is how many QUIC handshakes a Listener (from
	// Listen) runs at once for one source IP address. A new connection over
	// it is refused with CONNECTION_REFUSED before any cryptography is done,
	// and counted in ListenerStats.RefusedHandshakes, so that one source's
	// flood cannot take the CPU everyone's handshakes need. A handshake
	// lasts about one round trip, so 16 at once allow hundreds of new
	// connections per second from one address; raise it for many clients
	// behind one NAT that all connect at the same instant. The cap is
	// applied before the source address is validated: a peer that can spoof
	// a victim's address can keep that address at its cap (and refused) for
	// as long as it keeps sending Initials; a Listener exposed to such
	// peers should raise the cap. Default DefaultMaxHandshakesPerIP (16).
	MaxHandshakesPerIP int
	// ChannelHeaderTimeout is how long the peer has to send a channel's
	// header once the first byte of the channel's stream arrived (QUIC
	// opens a stream implicitly when a later one's frame arrives first: the
	// wait for its first byte lasts as long as the connection); a stream
	// whose header is late is reset with CodeProtocolError. Headers are read concurrently,
	// so a slow one does not hold up the others. Default
	// DefaultChannelHeaderTimeout (1 s).
	ChannelHeaderTimeout time.Duration
	// PendingCap is what this side advertises in HELLO as its cap on
	// messages received but not yet handled (PROTOCOL.md, HELLO frame). It is an
	// advertisement only: transport neither interprets nor enforces it. It
	// is set by the layer that consumes the messages and enforces the cap,
	// so that what the peer is told is what is enforced. Default
	// DefaultPendingCap (1000).
	PendingCap int
	// PendingBytes is what this side advertises in HELLO, beside PendingCap,
	// as its budget of payload bytes of messages received but not yet
	// handled; like PendingCap an advertisement only, set by the layer that
	// enforces it. Default DefaultPendingBytes (8 MiB).
	PendingBytes int
	// MaxStreamReceiveWindow caps the QUIC receive window of one channel, in
	// bytes. A channel receives at most this much per round trip: 4 MiB is
	// about 330 Mbit/s at 100 ms. Default DefaultMaxStreamReceiveWindow (4 MiB).
	MaxStreamReceiveWindow int
	// MaxConnectionReceiveWindow caps the QUIC receive window of the whole
	// connection, in bytes: received data that was not read yet stays within
	// it, and the connection receives at most this much per round trip (8 MiB
	// is about 670 Mbit/s at 100 ms; raise both windows for long fat paths,
	// at the cost of memory per session). Default
	// DefaultMaxConnectionReceiveWindow (8 MiB).
	MaxConnectionReceiveWindow int
	// CloseTimeout bounds a graceful Conn.Close and Channel.Close
	// (Conn.Shutdown takes a context instead). Default DefaultCloseTimeout (5 s).
	CloseTimeout time.Duration
	// EarlyDataWindow, with Allow0RTT (below), is how long after it was issued a
	// session ticket may carry 0-RTT data; an older ticket resumes with a
	// full round trip. It also bounds how long a used ticket is remembered.
	// Default DefaultEarlyDataWindow (24 h); at most MaxEarlyDataWindow.
	EarlyDataWindow time.Duration
	// ReplayCacheSize, with Allow0RTT, is how many used session tickets a
	// Listener remembers. When it is full the oldest is forgotten and every
	// ticket issued no later than that one gets no more 0-RTT, so a full
	// cache costs round trips, never a replay. Default DefaultReplayCacheSize.
	ReplayCacheSize int
	// StatelessResetKey, when set on a Listener, lets it reset connections
	// it lost its state for. Keep it across restarts so that clients of a
	// restarted server notice at once instead of at their idle timeout.
	StatelessResetKey *quic.StatelessResetKey
	// ConnectionIDGenerator, when set on a Listener (Listen), makes the
	// connection IDs the listener issues, for example ones that carry a
	// server ID for a load balancer (QUIC-LB). Its IDs must all be of one
	// length, 1 to 20 bytes. Nil: quic-go's random 4-byte IDs. Not used by
	// Dial, nor by ListenTransport, whose transport has its own.
	ConnectionIDGenerator quic.ConnectionIDGenerator
	// Allow0RTT lets a Listener accept 0-RTT data from resuming clients
	// (EarlyDataWindow and ReplayCacheSize above).
	// Only messages their sender marked safe to replay travel in 0-RTT.
	// Keep 0-RTT working across restarts by keeping the TLS session ticket
	// keys (tls.Config.SetSessionTicketKeys).
	//
	// Early data is refused as a replay when a session ticket is presented a
	// second time: each ticket carries 0-RTT data once per server process
	// (see the package documentation, "0-RTT and replays"). A refused
	// attempt resumes with a full round trip instead; it is never refused as
	// a connection. Listener.Stats counts refusals.
	Allow0RTT bool
	// DisableAcks makes this side not offer acknowledgements in HELLO.
	// Acknowledgements are on when both sides offer them: the receiver
	// acknowledges each channel's messages as Receive returns them and the
	// sender keeps what it wrote until then, which bounds it (AckWindow),
	// makes [Channel.Unacked] exact and lets a session be resumed on a new
	// connection. Off, delivery of what was written is in doubt when a
	// connection ends, as with version-1 peers that predate them.
	DisableAcks bool
	// noHeaders makes this side leave the HEADERS extension out of its
	// HELLO, as a peer that predates it does; set only by tests.
	noHeaders bool
	// noPing makes this side leave the PING extension out of its HELLO
	// and refuse a PING, as a peer that predates it does; set only by tests.
	noPing bool
	// AckWindow is how many bytes of encoded messages one channel holds
	// that the peer has not acknowledged (written and unacknowledged, plus
	// buffered): Send waits, and TrySend fails with ErrAckWindowFull, while
	// it is full. It is end-to-end backpressure: a receiver that stops
	// reading stops its sender within one window. Default DefaultAckWindow (1 MiB).
	AckWindow int
	// ResumeKey, on a Listener, authenticates the resume tokens it issues
	// (HMAC-SHA256). Nil: a random key per Listener, so that tokens do not
	// survive a restart (they would be refused as ErrResumeTokenInvalid).
	ResumeKey *ResumeKey
	// OnResume, on a Listener, decides a client's resume attempt whose
	// token it authenticated: nil to resume the session (the connection
	// then comes out of Accept with Resumed true and the session's ID), or
	// one of ErrResumeExpired, ErrResumeTokenReplayed, ErrSessionAttached
	// to refuse it (the connection is closed with the matching code). An
	// error that wraps one of them refuses with that code and sends the
	// rest of its text as the detail; any other error refuses as
	// ErrResumeExpired, with its text as the detail. It is called on the
	// listener's goroutines, once the TLS handshake has completed and the
	// token's MAC was verified, and must not block. Nil OnResume refuses
	// every resume with ErrResumeExpired, and the listener issues no resume
	// tokens, so that clients begin new sessions (with 0-RTT) at once.
	OnResume func(ResumeRequest) error
	// Resume, on Dial, DialEarly and DialTransport, asks the server to
	// resume the session of the token instead of starting one. Dial then
	// fails with a [*ResumeError] if the server refuses (after DialEarly,
	// WaitReady does). It needs acknowledgements: DisableAcks must be unset.
	Resume *ResumeToken
	// Mode is what this side announces in its HELLO (extension MODE) that
	// it does with the messages it receives, so that a peer can tell at
	// once whether it is the kind of server it needs: quicsrv announces
	// ModeRelay or ModeEcho, and an application built on session.Server
	// may announce a name of its own. The peer reads it with
	// [Conn.PeerMode]. 1 to 64 bytes of visible ASCII (0x21 to 0x7e).
	// Default "": no mode is announced, as clients usually do.
	Mode string
	// Tracer, when set, is quic-go's connection tracer, for example to write
	// qlog files (see github.com/quic-go/quic-go/qlog).
	Tracer func(ctx context.Context, isClient bool, connID quic.ConnectionID) qlogwriter.Trace
}

func (c *Config) withDefaults() (Config, error) {
	var r Config
	if c != nil {
		r = *c
	}
	r.MaxMessageSize = cmp.Or(r.MaxMessageSize, DefaultMaxMessageSize)
	r.MaxChannels = cmp.Or(r.MaxChannels, DefaultMaxChannels)
	r.SendBufferSize = cmp.Or(r.SendBufferSize, DefaultSendBufferSize)
	r.AcceptBacklog = cmp.Or(r.AcceptBacklog, DefaultAcceptBacklog)
	r.PendingCap = cmp.Or(r.PendingCap, DefaultPendingCap)
	r.ReplayCacheSize = cmp.Or(r.ReplayCacheSize, DefaultReplayCacheSize)
	r.EarlyDataWindow = cmp.Or(r.EarlyDataWindow, DefaultEarlyDataWindow)
	r.MaxPendingHellos = cmp.Or(r.MaxPendingHellos, DefaultMaxPendingHellos)
	r.MaxPendingHellosPerIP = cmp.Or(r.MaxPendingHellosPerIP, DefaultMaxPendingHellosPerIP)
	r.MaxHandshakesPerIP = cmp.Or(r.MaxHandshakesPerIP, DefaultMaxHandshakesPerIP)
	r.HelloTimeout = cmp.Or(r.HelloTimeout, DefaultHelloTimeout)
	r.ChannelHeaderTimeout = cmp.Or(r.ChannelHeaderTimeout, DefaultChannelHeaderTimeout)
	r.PendingBytes = cmp.Or(r.PendingBytes, DefaultPendingBytes)
	r.MaxStreamReceiveWindow = cmp.Or(r.MaxStreamReceiveWindow, DefaultMaxStreamReceiveWindow)
	r.MaxConnectionReceiveWindow = cmp.Or(r.MaxConnectionReceiveWindow, DefaultMaxConnectionReceiveWindow)
	r.HandshakeTimeout = cmp.Or(r.HandshakeTimeout, DefaultHandshakeTimeout)
	r.IdleTimeout = cmp.Or(r.IdleTimeout, DefaultIdleTimeout)
	r.KeepAlivePeriod = cmp.Or(r.KeepAlivePeriod, DefaultKeepAlivePeriod)
	r.CloseTimeout = cmp.Or(r.CloseTimeout, DefaultCloseTimeout)
	r.AckWindow = cmp.Or(r.AckWindow, DefaultAckWindow)
	return r, r.validate()
}

// validate names the first field of a Config (defaults applied) that is out
// of range.
func (c *Config) validate() error {
	if c.MaxMessageSize < 0 || c.MaxMessageSize > MaxMessageSizeLimit {
		return fmt.Errorf("transport: Config.MaxMessageSize %d is outside 1..%d", c.MaxMessageSize, MaxMessageSizeLimit)
	}
	if err := cfgcheck.NonNegative("transport: Config",
		cfgcheck.Int{Name: "MaxChannels", Value: c.MaxChannels},
		cfgcheck.Int{Name: "SendBufferSize", Value: c.SendBufferSize},
		cfgcheck.Int{Name: "AcceptBacklog", Value: c.AcceptBacklog},
		cfgcheck.Int{Name: "PendingCap", Value: c.PendingCap},
		cfgcheck.Int{Name: "PendingBytes", Value: c.PendingBytes},
		cfgcheck.Int{Name: "MaxStreamReceiveWindow", Value: c.MaxStreamReceiveWindow},
		cfgcheck.Int{Name: "MaxConnectionReceiveWindow", Value: c.MaxConnectionReceiveWindow},
		cfgcheck.Int{Name: "MaxPendingHellos", Value: c.MaxPendingHellos},
		cfgcheck.Int{Name: "MaxPendingHellosPerIP", Value: c.MaxPendingHellosPerIP},
		cfgcheck.Int{Name: "MaxHandshakesPerIP", Value: c.MaxHandshakesPerIP},
		cfgcheck.Int{Name: "ReplayCacheSize", Value: c.ReplayCacheSize},
		cfgcheck.Int{Name: "AckWindow", Value: c.AckWindow},
	); err != nil {
		return err
	}
	if min(c.HandshakeTimeout, c.IdleTimeout, c.CloseTimeout, c.HelloTimeout, c.ChannelHeaderTimeout) < 0 {
		return fmt.Errorf("transport: Config timeouts must not be negative")
	}
	if g := c.ConnectionIDGenerator; g != nil && (g.ConnectionIDLen() < 1 || g.ConnectionIDLen() > maxConnectionIDLen) {
		return fmt.Errorf("transport: Config.ConnectionIDGenerator makes %d-byte connection IDs; want 1 to %d", g.ConnectionIDLen(), maxConnectionIDLen)
	}
	if c.EarlyDataWindow < 0 || c.EarlyDataWindow > MaxEarlyDataWindow {
		return fmt.Errorf("transport: Config.EarlyDataWindow %v is outside 0..%v", c.EarlyDataWindow, MaxEarlyDataWindow)
	}
	if c.Mode != "" {
		if err := wire.ValidateMode(c.Mode); err != nil {
			return fmt.Errorf("transport: Config.Mode: %w", err)
		}
	}
	return nil
}

// QUICConfig returns the quic-go settings quicmsg uses for c, with defaults
// applied: for diagnostics and for baselines that compare with raw quic-go.
func (c *Config) QUICConfig() (*quic.Config, error) {
	r, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	return r.quicConfig(), nil
}

func (c *Config) quicConfig() *quic.Config {
	keepAlive := c.KeepAlivePeriod
	if keepAlive < 0 {
		keepAlive = 0
	}
	return &quic.Config{
		HandshakeIdleTimeout: c.HandshakeTimeout,
		MaxIdleTimeout:       c.IdleTimeout,
		KeepAlivePeriod:      keepAlive,
		// One extra stream for the control stream.
		MaxIncomingStreams:    int64(c.MaxChannels) + 1,
		MaxIncomingUniStreams: -1,
		Allow0RTT:             c.Allow0RTT,
		Tracer:                c.Tracer,
		// quic-go starts at 512 KiB per stream and 768 KiB per connection
		// and does not lower its start to a smaller maximum itself.
		InitialStreamReceiveWindow:     uint64(min(c.MaxStreamReceiveWindow, quicInitialStreamWindow)),
		MaxStreamReceiveWindow:         uint64(c.MaxStreamReceiveWindow),
		InitialConnectionReceiveWindow: uint64(min(c.MaxConnectionReceiveWindow, quicInitialConnWindow)),
		MaxConnectionReceiveWindow:     uint64(c.MaxConnectionReceiveWindow),
	}
}

// advertised returns the receive limits a side with configuration c (defaults
// applied) announces in its HELLO.
func (c *Config) advertised() Limits {
	return Limits{
		MaxMessageSize: c.MaxMessageSize,
		PendingCap:     c.PendingCap,
		PendingBytes:   c.PendingBytes,
		SendBufferSize: c.SendBufferSize,
	}
}

// quic-go's starting receive windows (its defaults for the Initial fields).
const (
	quicInitialStreamWindow = 512 << 10
	quicInitialConnWindow   = 768 << 10
)

// maxConnectionIDLen is the longest connection ID of QUIC version 1.
const maxConnectionIDLen = 20

const alpn = wire.ALPN

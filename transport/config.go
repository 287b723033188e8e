package transport

import (
	"context"
	"fmt"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"

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
	// DefaultAcceptBacklog is how many connections may wait, handshake done,
	// for Listener.Accept; it also caps concurrent HELLO exchanges.
	DefaultAcceptBacklog = 128
	// DefaultPendingCap is the receive-side cap on messages received but not
	// yet handled, advertised to the peer in HELLO (enforced by package session).
	DefaultPendingCap = 1000
	// DefaultPendingBytes is the receive-side budget, in bytes of message
	// payload, of messages received but not yet handled, advertised to the
	// peer in HELLO beside DefaultPendingCap (enforced by package session).
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
	// Default DefaultSendBufferSize (64 KiB).
	SendBufferSize int
	// AcceptBacklog is how many connections may wait for Listener.Accept.
	// Default DefaultAcceptBacklog (128).
	AcceptBacklog int
	// PendingCap is the receive-side cap on unhandled messages, advertised to
	// the peer. Default DefaultPendingCap (1000).
	PendingCap int
	// PendingBytes is the receive-side budget on unhandled message bytes,
	// advertised to the peer. Default DefaultPendingBytes (8 MiB).
	PendingBytes int
	// MaxStreamReceiveWindow caps the QUIC receive window of one channel, in
	// bytes. Default DefaultMaxStreamReceiveWindow (4 MiB).
	MaxStreamReceiveWindow int
	// MaxConnectionReceiveWindow caps the QUIC receive window of the whole
	// connection, in bytes: received data that was not read yet stays within
	// it. Default DefaultMaxConnectionReceiveWindow (8 MiB).
	MaxConnectionReceiveWindow int
	// CloseTimeout bounds a graceful Close. Default DefaultCloseTimeout (5 s).
	CloseTimeout time.Duration
	// Allow0RTT lets a Listener accept 0-RTT data from resuming clients.
	// Only messages their sender marked safe to replay travel in 0-RTT.
	// Keep 0-RTT working across restarts by keeping the TLS session ticket
	// keys (tls.Config.SetSessionTicketKeys).
	Allow0RTT bool
	// StatelessResetKey, when set on a Listener, lets it reset connections
	// it lost its state for. Keep it across restarts so that clients of a
	// restarted server notice at once instead of at their idle timeout.
	StatelessResetKey *quic.StatelessResetKey
	// Tracer, when set, is quic-go's connection tracer, for example to write
	// qlog files (see github.com/quic-go/quic-go/qlog).
	Tracer func(ctx context.Context, isClient bool, connID quic.ConnectionID) qlogwriter.Trace
}

func (c *Config) withDefaults() (Config, error) {
	var r Config
	if c != nil {
		r = *c
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&r.MaxMessageSize, DefaultMaxMessageSize)
	def(&r.MaxChannels, DefaultMaxChannels)
	def(&r.SendBufferSize, DefaultSendBufferSize)
	def(&r.AcceptBacklog, DefaultAcceptBacklog)
	def(&r.PendingCap, DefaultPendingCap)
	def(&r.PendingBytes, DefaultPendingBytes)
	def(&r.MaxStreamReceiveWindow, DefaultMaxStreamReceiveWindow)
	def(&r.MaxConnectionReceiveWindow, DefaultMaxConnectionReceiveWindow)
	defD(&r.HandshakeTimeout, DefaultHandshakeTimeout)
	defD(&r.IdleTimeout, DefaultIdleTimeout)
	defD(&r.KeepAlivePeriod, DefaultKeepAlivePeriod)
	defD(&r.CloseTimeout, DefaultCloseTimeout)
	switch {
	case r.MaxMessageSize < 0 || r.MaxMessageSize > MaxMessageSizeLimit:
		return r, fmt.Errorf("transport: Config.MaxMessageSize %d is outside 1..%d", r.MaxMessageSize, MaxMessageSizeLimit)
	case r.MaxChannels < 0:
		return r, fmt.Errorf("transport: Config.MaxChannels %d is negative", r.MaxChannels)
	case r.SendBufferSize < 0:
		return r, fmt.Errorf("transport: Config.SendBufferSize %d is negative", r.SendBufferSize)
	case r.AcceptBacklog < 0:
		return r, fmt.Errorf("transport: Config.AcceptBacklog %d is negative", r.AcceptBacklog)
	case r.PendingCap < 0:
		return r, fmt.Errorf("transport: Config.PendingCap %d is negative", r.PendingCap)
	case r.PendingBytes < 0:
		return r, fmt.Errorf("transport: Config.PendingBytes %d is negative", r.PendingBytes)
	case r.MaxStreamReceiveWindow < 0:
		return r, fmt.Errorf("transport: Config.MaxStreamReceiveWindow %d is negative", r.MaxStreamReceiveWindow)
	case r.MaxConnectionReceiveWindow < 0:
		return r, fmt.Errorf("transport: Config.MaxConnectionReceiveWindow %d is negative", r.MaxConnectionReceiveWindow)
	case r.HandshakeTimeout < 0, r.IdleTimeout < 0, r.CloseTimeout < 0:
		return r, fmt.Errorf("transport: Config timeouts must not be negative")
	}
	return r, nil
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

// quic-go's starting receive windows (its defaults for the Initial fields).
const (
	quicInitialStreamWindow = 512 << 10
	quicInitialConnWindow   = 768 << 10
)

const alpn = wire.ALPN

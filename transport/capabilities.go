package transport

import (
	"errors"
	"fmt"
	"strings"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// Modes the reference server, quicsrv, announces in its HELLO (see
// Config.Mode and [Conn.PeerMode]).
const (
	// ModeRelay: a message on a channel goes to the other connections
	// subscribed to its subject, not back to its sender.
	ModeRelay = "relay"
	// ModeEcho: every message goes back to its sender on its channel.
	ModeEcho = "echo"
)

// Capabilities is a set of protocol features a peer announced in its
// HELLO, each one a HELLO extension (PROTOCOL.md). A peer that predates a
// feature leaves it out.
type Capabilities uint32

// The capabilities a HELLO can announce.
const (
	// CapAcks: the peer offers acknowledgements (extension ACKS); they
	// are on when both sides offer them.
	CapAcks Capabilities = 1 << iota
	// CapResume: the server issued a token to resume the session with
	// (extension RESUME_TOKEN).
	CapResume
	// CapHeaders: the peer understands message headers, gap notices and
	// channel options (extension HEADERS).
	CapHeaders
	// CapPing: the peer answers [Conn.Ping] (extension PING).
	CapPing
)

var capNames = []struct {
	c    Capabilities
	name string
}{
	{CapAcks, "acks"},
	{CapResume, "resume"},
	{CapHeaders, "headers"},
	{CapPing, "ping"},
}

// Has reports whether c holds every capability of x.
func (c Capabilities) Has(x Capabilities) bool { return c&x == x }

// String lists the capabilities in c by name, separated by commas, for
// example "acks,headers,ping"; "none" for the empty set.
func (c Capabilities) String() string {
	var names []string
	for _, n := range capNames {
		if c.Has(n.c) {
			names = append(names, n.name)
			c &^= n.c
		}
	}
	if c != 0 {
		names = append(names, fmt.Sprintf("0x%x", uint32(c)))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// capabilitiesOf returns what the HELLO h announces.
func capabilitiesOf(h *wire.Hello) Capabilities {
	var c Capabilities
	if h.Acks {
		c |= CapAcks
	}
	if len(h.ResumeToken) > 0 {
		c |= CapResume
	}
	if h.Headers {
		c |= CapHeaders
	}
	if h.Ping {
		c |= CapPing
	}
	return c
}

// PeerCapabilities returns what the peer announced in its HELLO; none
// before [Conn.Ready] is closed. A capability that needs both sides, such
// as acknowledgements, is in use only if this side offers it too.
func (c *Conn) PeerCapabilities() Capabilities {
	select {
	case <-c.ready:
		return c.peerCaps
	default:
		return 0
	}
}

// PeerMode returns the mode the peer announced in its HELLO (its
// Config.Mode): for quicsrv [ModeRelay] or [ModeEcho], for another
// server whatever its application announces. It is "" when the peer
// announced none (a client, or a peer that predates the MODE extension)
// and before [Conn.Ready] is closed.
func (c *Conn) PeerMode() string {
	select {
	case <-c.ready:
	default:
		return ""
	}
	if r := c.rare.Load(); r != nil {
		return r.peerMode
	}
	return ""
}

// CapabilityError reports an operation that needs a capability the peer
// did not announce in its HELLO: a peer that predates it, or one
// configured without it. Nothing was sent to the peer. It matches
// errors.ErrUnsupported.
type CapabilityError struct {
	Op      string       // the operation, for example "ping"
	Missing Capabilities // what the peer did not announce, for example CapPing
}

func (e *CapabilityError) Error() string {
	return fmt.Sprintf("transport: %s: the peer does not support it: its HELLO did not announce the %s capability (a peer that predates it, or one configured without it)",
		e.Op, e.Missing)
}

// Unwrap returns errors.ErrUnsupported.
func (e *CapabilityError) Unwrap() error { return errors.ErrUnsupported }

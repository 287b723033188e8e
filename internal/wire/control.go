package wire

import (
	"fmt"

	"github.com/quic-go/quic-go/quicvarint"
)

// ControlType identifies a control frame.
type ControlType uint64

// Control frame types. Version 1 peers close the connection on any other type.
const (
	ControlHello    ControlType = 0x01
	ControlSlowDown ControlType = 0x02
	ControlResume   ControlType = 0x03
	ControlGoAway   ControlType = 0x04
)

func (t ControlType) String() string {
	switch t {
	case ControlHello:
		return "HELLO"
	case ControlSlowDown:
		return "SLOW_DOWN"
	case ControlResume:
		return "RESUME"
	case ControlGoAway:
		return "GOAWAY"
	}
	return fmt.Sprintf("UNKNOWN(0x%x)", uint64(t))
}

// MaxControlPayload is the largest control frame payload in bytes.
const MaxControlPayload = 4096

// MaxSessionIDLen is the longest session ID carried in HELLO.
const MaxSessionIDLen = 32

// MaxReasonLen is the longest GOAWAY reason in bytes; longer reasons are cut.
const MaxReasonLen = 1024

// Hello is the payload of a HELLO frame: the sender's protocol version and
// receive limits, and (from the server) the session ID.
type Hello struct {
	Version        uint64
	SessionID      []byte
	MaxMessageSize uint64
	PendingCap     uint64
}

// Control is a decoded control frame. Hello is set for HELLO; Code, Opened
// and Reason for GOAWAY.
type Control struct {
	Type  ControlType
	Hello Hello
	Code  uint64
	// Opened is, in a GOAWAY that closes the connection (code 0), how many
	// channels the sender opened in all, so that the receiver knows when it
	// has seen every one of them.
	Opened uint64
	Reason string
}

// AppendControl appends the encoding of c.
func AppendControl(b []byte, c Control) []byte {
	var p []byte
	switch c.Type {
	case ControlHello:
		p = quicvarint.Append(p, c.Hello.Version)
		p = quicvarint.Append(p, uint64(len(c.Hello.SessionID)))
		p = append(p, c.Hello.SessionID...)
		p = quicvarint.Append(p, c.Hello.MaxMessageSize)
		p = quicvarint.Append(p, c.Hello.PendingCap)
	case ControlGoAway:
		r := c.Reason
		if len(r) > MaxReasonLen {
			r = r[:MaxReasonLen]
		}
		p = quicvarint.Append(p, c.Code)
		p = quicvarint.Append(p, c.Opened)
		p = append(p, r...)
	}
	b = quicvarint.Append(b, uint64(c.Type))
	b = quicvarint.Append(b, uint64(len(p)))
	return append(b, p...)
}

// ParseControl decodes one control frame from b and returns it with the
// number of bytes used.
func ParseControl(b []byte) (Control, int, error) {
	t, n1, err := quicvarint.Parse(b)
	if err != nil {
		return Control{}, 0, ErrShort
	}
	l, n2, err := quicvarint.Parse(b[n1:])
	if err != nil {
		return Control{}, 0, ErrShort
	}
	if l > MaxControlPayload {
		return Control{}, 0, malformedControl("payload of %d bytes exceeds %d", l, MaxControlPayload)
	}
	hdr := n1 + n2
	if uint64(len(b)-hdr) < l {
		return Control{}, 0, ErrShort
	}
	p := b[hdr : hdr+int(l)]
	c := Control{Type: ControlType(t)}
	switch c.Type {
	case ControlHello:
		c.Hello, err = parseHello(p)
	case ControlSlowDown, ControlResume:
		if len(p) != 0 {
			err = malformedControl("%s carries %d unexpected bytes", c.Type, len(p))
		}
	case ControlGoAway:
		var n, n2 int
		c.Code, n, err = quicvarint.Parse(p)
		if err == nil {
			c.Opened, n2, err = quicvarint.Parse(p[n:])
			n += n2
		}
		if err != nil {
			err = malformedControl("GOAWAY is truncated")
		} else if len(p)-n > MaxReasonLen {
			err = malformedControl("GOAWAY reason of %d bytes exceeds %d", len(p)-n, MaxReasonLen)
		} else {
			c.Reason = string(p[n:])
		}
	default:
		err = malformedControl("unknown control frame type 0x%x", t)
	}
	if err != nil {
		return Control{}, 0, err
	}
	return c, hdr + int(l), nil
}

func parseHello(p []byte) (Hello, error) {
	var h Hello
	next := func() (uint64, bool) {
		v, n, err := quicvarint.Parse(p)
		if err != nil {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	var ok bool
	if h.Version, ok = next(); !ok {
		return Hello{}, malformedControl("HELLO is truncated")
	}
	idLen, ok := next()
	if !ok || idLen > MaxSessionIDLen || idLen > uint64(len(p)) {
		return Hello{}, malformedControl("HELLO session ID is longer than %d bytes or truncated", MaxSessionIDLen)
	}
	h.SessionID = append([]byte(nil), p[:idLen]...)
	p = p[idLen:]
	if h.MaxMessageSize, ok = next(); !ok {
		return Hello{}, malformedControl("HELLO is truncated")
	}
	if h.PendingCap, ok = next(); !ok {
		return Hello{}, malformedControl("HELLO is truncated")
	}
	// Trailing bytes are extensions from later versions and are ignored.
	return h, nil
}

func malformedControl(format string, args ...any) error {
	return &MalformedError{What: "control frame", Reason: fmt.Sprintf(format, args...)}
}

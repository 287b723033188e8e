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
	// ControlAck acknowledges messages received per channel; only sent
	// when both HELLOs carried the ACKS extension.
	ControlAck ControlType = 0x05
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
	case ControlAck:
		return "ACK"
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
// receive limits, and (from the server) the session ID. PendingBytes and
// SendBuffer travel as HELLO extensions; zero means the sender did not
// advertise them (a peer that predates them).
type Hello struct {
	Version        uint64
	SessionID      []byte
	MaxMessageSize uint64
	PendingCap     uint64
	// PendingBytes is the receive-side budget, in bytes, of messages received
	// but not yet handled before the sender signals SLOW_DOWN.
	PendingBytes uint64
	// SendBuffer is how many bytes of messages the sender buffers per channel
	// that it has accepted but not written: what may still arrive on a
	// channel after the peer's SLOW_DOWN reached it.
	SendBuffer uint64
	// Acks is the ACKS extension: the sender offers acknowledgements
	// (ACK frames); they are on when both HELLOs carry it.
	Acks bool
}

// HELLO extension IDs. Extensions follow the fixed HELLO fields as
// `ID (i), Length (i), Value (..)`; a receiver skips IDs it does not know.
const (
	HelloExtPendingBytes uint64 = 0x01
	HelloExtSendBuffer   uint64 = 0x02
	HelloExtAcks         uint64 = 0x03
)

// AcksRevision is the value of the ACKS HELLO extension: the revision of
// the acknowledgement protocol the sender speaks.
const AcksRevision = 1

// Control is a decoded control frame. Hello is set for HELLO; Code, Opened
// and Reason for GOAWAY; Acks for ACK.
type Control struct {
	Type  ControlType
	Hello Hello
	Code  uint64
	// Opened is, in a GOAWAY that closes the connection (code 0), how many
	// channels the sender opened in all, so that the receiver knows when it
	// has seen every one of them.
	Opened uint64
	Reason string
	Acks   []AckEntry
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
		p = appendHelloExt(p, HelloExtPendingBytes, c.Hello.PendingBytes)
		p = appendHelloExt(p, HelloExtSendBuffer, c.Hello.SendBuffer)
		p = appendHelloAcks(p, c.Hello.Acks)
	case ControlGoAway:
		r := c.Reason
		if len(r) > MaxReasonLen {
			r = r[:MaxReasonLen]
		}
		p = quicvarint.Append(p, c.Code)
		p = quicvarint.Append(p, c.Opened)
		p = append(p, r...)
	case ControlAck:
		return AppendAck(b, c.Acks)
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
	case ControlAck:
		c.Acks, err = parseAck(p)
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
	if err := parseHelloExts(p, &h); err != nil {
		return Hello{}, err
	}
	return h, nil
}

// appendHelloExt appends an extension whose value is one varint; a zero
// value is not advertised.
func appendHelloExt(p []byte, id, v uint64) []byte {
	if v == 0 {
		return p
	}
	p = quicvarint.Append(p, id)
	p = quicvarint.Append(p, uint64(quicvarint.Len(v)))
	return quicvarint.Append(p, v)
}

// parseHelloExts decodes the extensions after HELLO's fixed fields. Unknown
// IDs are skipped, so that later versions can add extensions that this one
// ignores; a truncated extension, a known one whose value is not exactly one
// varint, or a known one given twice is malformed.
func parseHelloExts(p []byte, h *Hello) error {
	var seen [4]bool
	var acks uint64 // any revision from 1 on offers acknowledgements
	defer func() { h.Acks = acks != 0 }()
	for len(p) > 0 {
		id, n1, err := quicvarint.Parse(p)
		if err != nil {
			return malformedControl("HELLO extension is truncated")
		}
		l, n2, err := quicvarint.Parse(p[n1:])
		if err != nil || l > uint64(len(p)-n1-n2) {
			return malformedControl("HELLO extension 0x%x is truncated", id)
		}
		val := p[n1+n2 : n1+n2+int(l)]
		p = p[n1+n2+int(l):]
		var dst *uint64
		switch id {
		case HelloExtPendingBytes:
			dst = &h.PendingBytes
		case HelloExtSendBuffer:
			dst = &h.SendBuffer
		case HelloExtAcks:
			dst = &acks
		default:
			continue
		}
		if seen[id] {
			return malformedControl("HELLO extension 0x%x is given twice", id)
		}
		seen[id] = true
		v, n, err := quicvarint.Parse(val)
		if err != nil || n != len(val) {
			return malformedControl("HELLO extension 0x%x does not hold exactly one integer", id)
		}
		*dst = v
	}
	return nil
}

func malformedControl(format string, args ...any) error {
	return &MalformedError{What: "control frame", Reason: fmt.Sprintf(format, args...)}
}

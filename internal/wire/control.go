package wire

import (
	"encoding/binary"
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
	// ControlResumeState carries, on a resumed connection, how many
	// messages the sender received per channel over the session. It may
	// only be sent when both HELLOs carried the ACKS extension.
	ControlResumeState ControlType = 0x06
	// ControlPing asks the peer to answer with a PONG that carries the
	// same opaque value; only sent to a peer whose HELLO carried the PING
	// extension.
	ControlPing ControlType = 0x07
	// ControlPong answers a PING with its opaque value.
	ControlPong ControlType = 0x08
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
	case ControlResumeState:
		return "RESUME_STATE"
	case ControlPing:
		return "PING"
	case ControlPong:
		return "PONG"
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
	// Acks says the sender offers acknowledgements (extension ACKS).
	Acks bool
	// ResumeToken is, from a client, the token of the session it resumes
	// (SessionID then holds that session's ID) and, from a server, the
	// token to present next time (extension RESUME_TOKEN, 1 to
	// MaxResumeTokenLen bytes). Nil when absent.
	ResumeToken []byte
	// Headers says the sender understands message headers, gap notices
	// and channel options (extension HEADERS).
	Headers bool
	// Ping says the sender answers PING frames (extension PING).
	Ping bool
	// Mode is what the sender does with the messages it receives, for
	// example "relay" or "echo" (extension MODE, 1 to MaxModeLen bytes of
	// visible ASCII; see [ValidateMode]). Empty when absent.
	Mode string
}

// HELLO extension IDs. Extensions follow the fixed HELLO fields as
// `ID (i), Length (i), Value (..)`; a receiver skips IDs it does not know.
const (
	HelloExtPendingBytes uint64 = 0x01
	HelloExtSendBuffer   uint64 = 0x02
	HelloExtAcks         uint64 = 0x03
	HelloExtResumeToken  uint64 = 0x04
	// HelloExtHeaders (empty value) says the sender understands message
	// headers, gap notices and channel options.
	HelloExtHeaders uint64 = 0x05
	// HelloExtPing (empty value) says the sender answers PING frames.
	HelloExtPing uint64 = 0x06
	// HelloExtMode carries the sender's mode (see [Hello.Mode]).
	HelloExtMode uint64 = 0x07
)

// MaxModeLen is the longest MODE value in bytes.
const MaxModeLen = 64

// ValidateMode checks that mode can travel in the MODE extension: 1 to
// MaxModeLen bytes of visible ASCII (0x21 to 0x7e).
func ValidateMode(mode string) error {
	if len(mode) == 0 || len(mode) > MaxModeLen {
		return fmt.Errorf("mode of %d bytes is outside 1..%d", len(mode), MaxModeLen)
	}
	for i := 0; i < len(mode); i++ {
		if mode[i] < 0x21 || mode[i] > 0x7e {
			return fmt.Errorf("mode %q has byte 0x%02x at %d, outside visible ASCII", mode, mode[i], i)
		}
	}
	return nil
}

// PingLen is the length of a PING or PONG payload: its opaque value.
const PingLen = 8

// AcksRevision is the value of the ACKS extension: the revision of the
// acknowledgement and resumption protocol the sender speaks.
const AcksRevision = 1

// MaxResumeTokenLen is the longest RESUME_TOKEN value in bytes.
const MaxResumeTokenLen = 64

// ResumeEntry is one channel's entry in RESUME_STATE: its name and how
// many messages the sender received on it over the whole session.
type ResumeEntry struct {
	Name     string
	Received uint64
}

// Control is a decoded control frame. Hello is set for HELLO; Code, Opened
// and Reason for GOAWAY; Final and Entries for RESUME_STATE; Acks for ACK;
// Opaque for PING and PONG.
type Control struct {
	Type  ControlType
	Hello Hello
	Code  uint64
	// Opened is, in a GOAWAY that closes the connection (code 0), how many
	// channels the sender opened in all, so that the receiver knows when it
	// has seen every one of them.
	Opened uint64
	Reason string
	// Final marks the last RESUME_STATE frame of the sender's state.
	Final bool
	// Entries are the channels a RESUME_STATE frame names.
	Entries []ResumeEntry
	// Acks are the entries of an ACK frame.
	Acks []AckEntry
	// Opaque is the value of a PING, which its PONG echoes.
	Opaque uint64
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
		if len(c.Hello.ResumeToken) > 0 {
			p = quicvarint.Append(p, HelloExtResumeToken)
			p = quicvarint.Append(p, uint64(len(c.Hello.ResumeToken)))
			p = append(p, c.Hello.ResumeToken...)
		}
		p = appendHelloFlag(p, HelloExtHeaders, c.Hello.Headers)
		p = appendHelloFlag(p, HelloExtPing, c.Hello.Ping)
		if c.Hello.Mode != "" {
			p = quicvarint.Append(p, HelloExtMode)
			p = quicvarint.Append(p, uint64(len(c.Hello.Mode)))
			p = append(p, c.Hello.Mode...)
		}
	case ControlPing, ControlPong:
		p = binary.BigEndian.AppendUint64(p, c.Opaque)
	case ControlResumeState:
		p = appendResumeStatePayload(p, c.Final, c.Entries)
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
	var c Control
	n, err := ParseControlInto(b, &c)
	if err != nil {
		return Control{}, 0, err
	}
	return c, n, nil
}

// ParseControlInto is ParseControl parsing into *c, which it overwrites:
// c is left zero on an error. Its frame holds no copy of a Control, so that
// a reader that waits under it keeps a small stack.
func ParseControlInto(b []byte, c *Control) (int, error) {
	*c = Control{}
	t, n1, err := quicvarint.Parse(b)
	if err != nil {
		return 0, ErrShort
	}
	l, n2, err := quicvarint.Parse(b[n1:])
	if err != nil {
		return 0, ErrShort
	}
	if l > MaxControlPayload {
		return 0, malformedControl("payload of %d bytes exceeds %d", l, MaxControlPayload)
	}
	hdr := n1 + n2
	if uint64(len(b)-hdr) < l {
		return 0, ErrShort
	}
	c.Type = ControlType(t)
	p := b[hdr : hdr+int(l)]
	if c.Type == ControlAck { // the frequent one, apart from the others' larger frame
		c.Acks, err = parseAck(p)
	} else {
		err = c.parsePayload(p)
	}
	if err != nil {
		*c = Control{}
		return 0, err
	}
	return hdr + int(l), nil
}

// parsePayload parses the payload p of a frame of type c.Type, other than
// ACK, into c.
//
//go:noinline
func (c *Control) parsePayload(p []byte) error {
	var err error
	switch c.Type {
	case ControlHello:
		c.Hello, err = parseHello(p)
	case ControlSlowDown, ControlResume:
		if len(p) != 0 {
			err = malformedControl("%s carries %d unexpected bytes", c.Type, len(p))
		}
	case ControlResumeState:
		c.Final, c.Entries, err = parseResumeState(p)
	case ControlGoAway:
		err = c.parseGoAway(p)
	case ControlPing, ControlPong:
		if len(p) != PingLen {
			return malformedControl("%s carries %d bytes, want %d", c.Type, len(p), PingLen)
		}
		c.Opaque = binary.BigEndian.Uint64(p)
	default:
		err = malformedControl("unknown control frame type 0x%x", uint64(c.Type))
	}
	return err
}

// parseGoAway parses a GOAWAY's payload p into c.
func (c *Control) parseGoAway(p []byte) error {
	var n, n2 int
	var err error
	c.Code, n, err = quicvarint.Parse(p)
	if err == nil {
		c.Opened, n2, err = quicvarint.Parse(p[n:])
		n += n2
	}
	switch {
	case err != nil:
		return malformedControl("GOAWAY is truncated")
	case len(p)-n > MaxReasonLen:
		return malformedControl("GOAWAY reason of %d bytes exceeds %d", len(p)-n, MaxReasonLen)
	}
	c.Reason = string(p[n:])
	return nil
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

// appendHelloFlag appends an extension with an empty value when on.
func appendHelloFlag(p []byte, id uint64, on bool) []byte {
	if !on {
		return p
	}
	p = quicvarint.Append(p, id)
	return quicvarint.Append(p, 0)
}

// parseHelloExts decodes the extensions after HELLO's fixed fields. Unknown
// IDs are skipped, so that later versions can add extensions that this one
// ignores; a truncated extension, a known one given twice, or a known one
// whose value is not what it must be (exactly one integer; for ACKS one
// that is not 0; for RESUME_TOKEN 1 to MaxResumeTokenLen bytes; for MODE
// what ValidateMode accepts) is malformed.
func parseHelloExts(p []byte, h *Hello) error {
	var seen [HelloExtMode + 1]bool
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
		if id == 0 || id >= uint64(len(seen)) {
			continue
		}
		if seen[id] {
			return malformedControl("HELLO extension 0x%x is given twice", id)
		}
		seen[id] = true
		if err := setHelloExt(h, id, val); err != nil {
			return err
		}
	}
	return nil
}

// setHelloExt stores the value of the known extension id in h.
func setHelloExt(h *Hello, id uint64, val []byte) error {
	switch id {
	case HelloExtResumeToken, HelloExtHeaders, HelloExtPing, HelloExtMode:
		return setHelloBytesExt(h, id, val)
	}
	v, n, err := quicvarint.Parse(val)
	if err != nil || n != len(val) {
		return malformedControl("HELLO extension 0x%x does not hold exactly one integer", id)
	}
	switch id {
	case HelloExtPendingBytes:
		h.PendingBytes = v
	case HelloExtSendBuffer:
		h.SendBuffer = v
	case HelloExtAcks:
		if v == 0 {
			return malformedControl("HELLO extension ACKS gives revision 0")
		}
		h.Acks = true
	}
	return nil
}

// setHelloBytesExt stores the value of a known extension that is not an
// integer: RESUME_TOKEN, MODE, and the empty HEADERS and PING (a value
// there is left to a later revision, and ignored).
func setHelloBytesExt(h *Hello, id uint64, val []byte) error {
	switch id {
	case HelloExtResumeToken:
		if len(val) == 0 || len(val) > MaxResumeTokenLen {
			return malformedControl("HELLO extension RESUME_TOKEN of %d bytes is outside 1..%d", len(val), MaxResumeTokenLen)
		}
		h.ResumeToken = append([]byte(nil), val...)
	case HelloExtHeaders:
		h.Headers = true
	case HelloExtPing:
		h.Ping = true
	case HelloExtMode:
		// MODE is informational: a value outside today's rules (a later
		// peer may widen them) is ignored, not a malformed HELLO.
		if ValidateMode(string(val)) == nil {
			h.Mode = string(val)
		}
	}
	return nil
}

func malformedControl(format string, args ...any) error {
	return &MalformedError{What: "control frame", Reason: fmt.Sprintf(format, args...)}
}

// AppendResumeState appends the RESUME_STATE frames that carry entries,
// as many as the payload limit needs, the last one with Final set; no
// entries make one empty final frame. Every name must be valid (see
// [ValidateName]) and every count below 2^62.
func AppendResumeState(b []byte, entries []ResumeEntry) []byte {
	for {
		n, size := 0, 1
		for n < len(entries) && size+resumeEntryLen(entries[n]) <= MaxControlPayload {
			size += resumeEntryLen(entries[n])
			n++
		}
		final := n == len(entries)
		b = AppendControl(b, Control{Type: ControlResumeState, Final: final, Entries: entries[:n]})
		if final {
			return b
		}
		entries = entries[n:]
	}
}

func resumeEntryLen(e ResumeEntry) int {
	return 1 + len(e.Name) + quicvarint.Len(e.Received)
}

func appendResumeStatePayload(p []byte, final bool, entries []ResumeEntry) []byte {
	var f byte
	if final {
		f = 1
	}
	p = append(p, f)
	for _, e := range entries {
		p = append(p, byte(len(e.Name)))
		p = append(p, e.Name...)
		p = quicvarint.Append(p, e.Received)
	}
	return p
}

// parseResumeState decodes a RESUME_STATE payload: the Final byte (0 or
// 1), then entries of a 1..255-byte UTF-8 name and a count. A frame that is
// not the last must name at least one channel.
func parseResumeState(p []byte) (bool, []ResumeEntry, error) {
	if len(p) == 0 {
		return false, nil, malformedControl("RESUME_STATE is empty")
	}
	if p[0] > 1 {
		return false, nil, malformedControl("RESUME_STATE Final byte 0x%02x is neither 0 nor 1", p[0])
	}
	final := p[0] == 1
	var entries []ResumeEntry
	for p = p[1:]; len(p) > 0; {
		name, n, err := ParseChannelHeader(p)
		if err != nil {
			return false, nil, malformedControl("RESUME_STATE entry %d: channel name is empty, truncated or not UTF-8", len(entries))
		}
		v, vn, err := quicvarint.Parse(p[n:])
		if err != nil {
			return false, nil, malformedControl("RESUME_STATE entry %d (channel %q) is truncated", len(entries), name)
		}
		entries = append(entries, ResumeEntry{Name: name, Received: v})
		p = p[n+vn:]
	}
	if !final && len(entries) == 0 {
		return false, nil, malformedControl("RESUME_STATE that is not the last names no channel")
	}
	return final, entries, nil
}

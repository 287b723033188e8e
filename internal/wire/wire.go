// Package wire encodes and decodes the quicmsg/1 wire format described in
// PROTOCOL.md: stream preambles, message frames on channel streams and control
// frames on the control stream.
//
// Every decoder works on a byte slice and reports [ErrShort] when the slice
// holds only a prefix of a valid item, so callers can read more and try again.
// Decoders never allocate more than the limits they are given.
package wire

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/quic-go/quic-go/quicvarint"
)

// ALPN is the TLS application protocol negotiated by quicmsg/1 peers.
const ALPN = "quicmsg/1"

// Version is the protocol version carried in HELLO.
const Version = 1

// Stream types: the first byte of every stream.
const (
	StreamControl byte = 0x00
	StreamChannel byte = 0x01
	// StreamChannelOpts opens a channel whose header carries options
	// (see [AppendChannelHeaderWith]); sent only to a peer that offered
	// the HEADERS extension.
	StreamChannelOpts byte = 0x02
)

// MaxNameLen is the longest channel name in bytes.
const MaxNameLen = 255

// Message frame types.
const (
	// FrameMessage carries one application message.
	FrameMessage byte = 0x00
	// FrameMessageSeq (reserved) carries a message with a sequence number.
	FrameMessageSeq byte = 0x01
	// FrameAck (reserved) acknowledges sequence numbers.
	FrameAck byte = 0x02
)

// Message flags.
const (
	// FlagReplaySafe marks a message the sender declared safe to replay,
	// the only kind allowed in 0-RTT data.
	FlagReplaySafe byte = 0x01
	// FlagHeaders marks a message whose payload starts with a header
	// block (see [ParseHeaderBlock]).
	FlagHeaders byte = 0x02
	// FlagGap marks a gap notice: its payload is Missed and Reason
	// (see [ParseGap]), and it carries no other flag.
	FlagGap byte = 0x04

	knownFlags = FlagReplaySafe | FlagHeaders | FlagGap
)

// MessageOverhead is the largest frame header for a message of at most 16 MiB:
// type, flags and a 4-byte varint length.
const MessageOverhead = 2 + 4

// ErrShort reports that the input ends before the item does.
var ErrShort = errors.New("wire: need more data")

// MalformedError reports input that violates the wire format.
type MalformedError struct {
	What   string // "channel header", "message frame", "control frame"
	Reason string
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("wire: malformed %s: %s", e.What, e.Reason)
}

// TooLargeError reports a message frame whose length exceeds the receiver's limit.
type TooLargeError struct {
	Size  uint64
	Limit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("wire: message of %d bytes exceeds the limit of %d bytes", e.Size, e.Limit)
}

// AppendChannelHeader appends the preamble of a channel stream.
// The name must be valid (see [ValidateName]).
func AppendChannelHeader(b []byte, name string) []byte {
	b = append(b, StreamChannel, byte(len(name)))
	return append(b, name...)
}

// ValidateName reports whether name can name a channel: 1 to 255 bytes of UTF-8.
func ValidateName(name string) error {
	switch {
	case len(name) == 0:
		return &MalformedError{What: "channel name", Reason: "empty"}
	case len(name) > MaxNameLen:
		return &MalformedError{What: "channel name", Reason: fmt.Sprintf("%d bytes, the limit is %d", len(name), MaxNameLen)}
	case !utf8.ValidString(name):
		return &MalformedError{What: "channel name", Reason: "not valid UTF-8"}
	}
	return nil
}

// ParseChannelHeader decodes the rest of a channel preamble, after the stream
// type byte: a length byte and the name. It returns the name and the bytes used.
func ParseChannelHeader(b []byte) (string, int, error) {
	if len(b) < 1 {
		return "", 0, ErrShort
	}
	n := int(b[0])
	if n == 0 {
		return "", 0, &MalformedError{What: "channel header", Reason: "empty name"}
	}
	if len(b) < 1+n {
		return "", 0, ErrShort
	}
	name := string(b[1 : 1+n])
	if !utf8.ValidString(name) {
		return "", 0, &MalformedError{What: "channel header", Reason: "name is not valid UTF-8"}
	}
	return name, 1 + n, nil
}

// AppendMessage appends a message frame carrying payload.
func AppendMessage(b []byte, flags byte, payload []byte) []byte {
	b = append(b, FrameMessage, flags)
	b = quicvarint.Append(b, uint64(len(payload)))
	return append(b, payload...)
}

// MessageLen is the encoded size of a message frame with a payload of n bytes.
func MessageLen(n int) int { return 2 + quicvarint.Len(uint64(n)) + n }

// ParseMessageHeader decodes a message frame header. It returns the flags, the
// payload length and the header length. A payload longer than limit is a
// [*TooLargeError]; unknown types or flags are a [*MalformedError].
func ParseMessageHeader(b []byte, limit int) (flags byte, size int, n int, err error) {
	if len(b) < 3 {
		return 0, 0, 0, ErrShort
	}
	switch b[0] {
	case FrameMessage:
	case FrameMessageSeq, FrameAck:
		return 0, 0, 0, &MalformedError{What: "message frame", Reason: fmt.Sprintf("frame type 0x%02x is reserved for a later version", b[0])}
	default:
		return 0, 0, 0, &MalformedError{What: "message frame", Reason: fmt.Sprintf("unknown frame type 0x%02x", b[0])}
	}
	flags = b[1]
	if flags&^knownFlags != 0 {
		return 0, 0, 0, &MalformedError{What: "message frame", Reason: fmt.Sprintf("unknown flags 0x%02x", flags&^knownFlags)}
	}
	l, vn, perr := quicvarint.Parse(b[2:])
	if perr != nil {
		return 0, 0, 0, ErrShort
	}
	if flags&FlagGap != 0 {
		// Bounded by MaxGapLen, not by the limit on messages.
		if err := checkGapFrame(flags, l); err != nil {
			return 0, 0, 0, err
		}
		return flags, int(l), 2 + vn, nil
	}
	if l > uint64(limit) {
		return 0, 0, 0, &TooLargeError{Size: l, Limit: limit}
	}
	return flags, int(l), 2 + vn, nil
}

// AppendFrameHeader appends the header of a message frame with flags whose
// payload is size bytes; the payload follows.
func AppendFrameHeader(b []byte, flags byte, size int) []byte {
	b = append(b, FrameMessage, flags)
	return quicvarint.Append(b, uint64(size))
}

// AppendVarint appends v as a QUIC variable-length integer.
func AppendVarint(b []byte, v uint64) []byte { return quicvarint.Append(b, v) }

// VarintSize is the encoded size of v as a QUIC variable-length integer.
func VarintSize(v uint64) int { return quicvarint.Len(v) }

// VarintLen is the size of the variable-length integer that b starts with,
// from its first byte (b must not be empty).
func VarintLen(b []byte) int { return 1 << (b[0] >> 6) }

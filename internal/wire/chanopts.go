package wire

import (
	"fmt"

	"github.com/quic-go/quic-go/quicvarint"
)

// Channel option IDs, in the options of a CHANNEL_OPTS header. A receiver
// skips IDs it does not know.
const (
	// ChannelOptGroup names the channel's queue group.
	ChannelOptGroup uint64 = 0x01
	// ChannelOptPriority carries the channel's RFC 9218 priority in one
	// byte: the urgency (0..7) in the low three bits, 0x08 for
	// incremental; the other bits are zero.
	ChannelOptPriority uint64 = 0x02
)

// MaxUrgency is the least urgent RFC 9218 urgency; 0 is the most urgent.
const MaxUrgency = 7

// priorityIncremental is the incremental bit of a PRIORITY option's value.
const priorityIncremental = 0x08

// MaxChannelOptionsLen is the largest Options field of a channel header.
const MaxChannelOptionsLen = 1024

// MaxGroupLen is the longest queue group name in bytes.
const MaxGroupLen = 255

// ChannelOptions are the options a CHANNEL_OPTS header carries.
type ChannelOptions struct {
	Group    string   // queue group; "" for none
	Priority Priority // send priority; the zero value for none
}

// Priority is an RFC 9218 priority.
type Priority struct {
	Set         bool  // false: no PRIORITY option
	Urgency     uint8 // 0 (most urgent) .. MaxUrgency
	Incremental bool
}

// IsZero reports whether o holds no option: such a channel is opened with
// a plain channel header.
func (o ChannelOptions) IsZero() bool { return o == ChannelOptions{} }

// ValidateGroup reports whether g can name a queue group: 1 to MaxGroupLen
// bytes of visible ASCII (0x21 to 0x7e) other than '.', '*' and '>'.
func ValidateGroup(g string) error {
	if len(g) == 0 || len(g) > MaxGroupLen {
		return malformedOpts("group name of %d bytes is outside 1..%d", len(g), MaxGroupLen)
	}
	for i := 0; i < len(g); i++ {
		if c := g[i]; c < 0x21 || c > 0x7e || c == '.' || c == '*' || c == '>' {
			return malformedOpts("group name %q holds byte 0x%02x: visible ASCII other than '.', '*', '>'", g, c)
		}
	}
	return nil
}

// AppendChannelHeaderWith appends the preamble of a channel stream with
// options o: a plain channel header when o is zero, else a CHANNEL_OPTS
// header. The name and the options must be valid (see [ValidateName],
// [ValidateGroup]).
func AppendChannelHeaderWith(b []byte, name string, o ChannelOptions) []byte {
	if o.IsZero() {
		return AppendChannelHeader(b, name)
	}
	b = append(b, StreamChannelOpts, byte(len(name)))
	b = append(b, name...)
	l := 0
	if o.Group != "" {
		l += quicvarint.Len(ChannelOptGroup) + quicvarint.Len(uint64(len(o.Group))) + len(o.Group)
	}
	if o.Priority.Set {
		l += quicvarint.Len(ChannelOptPriority) + 2
	}
	b = quicvarint.Append(b, uint64(l))
	if o.Group != "" {
		b = quicvarint.Append(b, ChannelOptGroup)
		b = quicvarint.Append(b, uint64(len(o.Group)))
		b = append(b, o.Group...)
	}
	if o.Priority.Set {
		v := o.Priority.Urgency
		if o.Priority.Incremental {
			v |= priorityIncremental
		}
		b = quicvarint.Append(b, ChannelOptPriority)
		b = append(b, 1, v)
	}
	return b
}

// ParseStreamHeader decodes the preamble of a channel stream, from its
// stream type byte: StreamChannel or StreamChannelOpts. It returns the
// name, the options and the bytes used; [ErrShort] while b holds only a
// prefix of it.
func ParseStreamHeader(b []byte) (string, ChannelOptions, int, error) {
	if len(b) == 0 {
		return "", ChannelOptions{}, 0, ErrShort
	}
	if b[0] != StreamChannel && b[0] != StreamChannelOpts {
		return "", ChannelOptions{}, 0, &MalformedError{What: "channel header", Reason: fmt.Sprintf("stream type 0x%02x where a channel was expected", b[0])}
	}
	name, n, err := ParseChannelHeader(b[1:])
	if err != nil || b[0] == StreamChannel {
		return name, ChannelOptions{}, 1 + n, err
	}
	o, on, err := ParseChannelOptions(b[1+n:])
	if err != nil {
		return "", ChannelOptions{}, 0, err
	}
	return name, o, 1 + n + on, nil
}

// ParseChannelOptions decodes Options Length (i) and the options of a
// CHANNEL_OPTS header from the start of b and returns them with the bytes
// used. Options over MaxChannelOptionsLen, a truncated or repeated option,
// an invalid group and an invalid priority are a [*MalformedError];
// unknown options are skipped.
func ParseChannelOptions(b []byte) (ChannelOptions, int, error) {
	l, n, err := quicvarint.Parse(b)
	if err != nil {
		return ChannelOptions{}, 0, ErrShort
	}
	if l > MaxChannelOptionsLen {
		return ChannelOptions{}, 0, malformedOpts("options of %d bytes exceed %d", l, MaxChannelOptionsLen)
	}
	if uint64(len(b)-n) < l {
		return ChannelOptions{}, 0, ErrShort
	}
	o, err := parseOptions(b[n : n+int(l)])
	if err != nil {
		return ChannelOptions{}, 0, err
	}
	return o, n + int(l), nil
}

// parseOptions decodes the options p, of at most MaxChannelOptionsLen bytes.
func parseOptions(p []byte) (ChannelOptions, error) {
	var o ChannelOptions
	seenGroup := false
	for len(p) > 0 {
		id, n1, err := quicvarint.Parse(p)
		if err != nil {
			return ChannelOptions{}, malformedOpts("option ID is cut off by the end of the options")
		}
		l, n2, err := quicvarint.Parse(p[n1:])
		if err != nil || l > uint64(len(p)-n1-n2) {
			return ChannelOptions{}, malformedOpts("option 0x%x is cut off by the end of the options", id)
		}
		val := p[n1+n2 : n1+n2+int(l)]
		p = p[n1+n2+int(l):]
		switch id {
		case ChannelOptGroup:
			if seenGroup {
				return ChannelOptions{}, malformedOpts("option GROUP given twice")
			}
			seenGroup = true
			o.Group = string(val)
			err = ValidateGroup(o.Group)
		case ChannelOptPriority:
			if o.Priority.Set {
				return ChannelOptions{}, malformedOpts("option PRIORITY given twice")
			}
			o.Priority, err = parsePriority(val)
		}
		if err != nil {
			return ChannelOptions{}, err
		}
	}
	return o, nil
}

// parsePriority decodes the value of a PRIORITY option.
func parsePriority(val []byte) (Priority, error) {
	if len(val) != 1 {
		return Priority{}, malformedOpts("option PRIORITY of %d bytes where 1 was expected", len(val))
	}
	if val[0]&^(priorityIncremental|MaxUrgency) != 0 {
		return Priority{}, malformedOpts("option PRIORITY value 0x%02x sets bits other than the urgency (0..%d) and incremental (0x%02x)", val[0], MaxUrgency, priorityIncremental)
	}
	return Priority{Set: true, Urgency: val[0] & MaxUrgency, Incremental: val[0]&priorityIncremental != 0}, nil
}

func malformedOpts(format string, args ...any) error {
	return &MalformedError{What: "channel options", Reason: fmt.Sprintf(format, args...)}
}

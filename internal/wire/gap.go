package wire

import (
	"fmt"

	"github.com/quic-go/quic-go/quicvarint"
)

// MaxGapLen is the largest payload of a gap notice: two varints.
const MaxGapLen = 16

// AppendGap appends a gap notice: a message frame with FlagGap whose
// payload is Missed (i), Reason (i). missed must be at least 1 and both
// below 2^62.
func AppendGap(b []byte, missed, reason uint64) []byte {
	b = append(b, FrameMessage, FlagGap)
	b = quicvarint.Append(b, uint64(quicvarint.Len(missed)+quicvarint.Len(reason)))
	b = quicvarint.Append(b, missed)
	return quicvarint.Append(b, reason)
}

// GapLen is the encoded size of a gap notice.
func GapLen(missed, reason uint64) int {
	n := quicvarint.Len(missed) + quicvarint.Len(reason)
	return 2 + quicvarint.Len(uint64(n)) + n
}

// ParseGap decodes the payload of a gap notice. A payload that does not
// hold exactly two varints, or whose Missed is 0, is a [*MalformedError].
func ParseGap(p []byte) (missed, reason uint64, err error) {
	missed, n1, err := quicvarint.Parse(p)
	if err != nil {
		return 0, 0, malformedGap("Missed is cut off by the end of the payload")
	}
	reason, n2, err := quicvarint.Parse(p[n1:])
	if err != nil {
		return 0, 0, malformedGap("Reason is cut off by the end of the payload")
	}
	if extra := len(p) - n1 - n2; extra > 0 {
		return 0, 0, malformedGap("%d bytes after Reason", extra)
	}
	if missed == 0 {
		return 0, 0, malformedGap("Missed is 0")
	}
	return missed, reason, nil
}

// checkGapFrame checks what the frame header of a gap notice says: no
// other flag, and a payload of at most MaxGapLen bytes.
func checkGapFrame(flags byte, size uint64) error {
	if flags != FlagGap {
		return malformedGap("GAP combined with flags 0x%02x", flags&^FlagGap)
	}
	if size > MaxGapLen {
		return malformedGap("payload of %d bytes exceeds %d", size, MaxGapLen)
	}
	return nil
}

func malformedGap(format string, args ...any) error {
	return &MalformedError{What: "gap notice", Reason: fmt.Sprintf(format, args...)}
}

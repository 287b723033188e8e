package wire

import "github.com/quic-go/quic-go/quicvarint"

// AckEntry is one entry of an ACK frame: the cumulative number of messages
// the sender of the frame received (returned to its application) on the
// channel whose stream has ID Stream.
type AckEntry struct {
	Stream uint64
	Count  uint64
}

// MaxAckEntryLen is the largest encoding of one ACK entry.
const MaxAckEntryLen = 16

// appendHelloAcks appends the ACKS extension when on is set.
func appendHelloAcks(p []byte, on bool) []byte {
	if !on {
		return p
	}
	return appendHelloExt(p, HelloExtAcks, AcksRevision)
}

// AppendAck appends an ACK frame holding entries, which must fit in one
// frame (at most MaxControlPayload / MaxAckEntryLen entries always do). It
// allocates nothing when b has room.
func AppendAck(b []byte, entries []AckEntry) []byte {
	l := 0
	for _, e := range entries {
		l += quicvarint.Len(e.Stream) + quicvarint.Len(e.Count)
	}
	b = quicvarint.Append(b, uint64(ControlAck))
	b = quicvarint.Append(b, uint64(l))
	for _, e := range entries {
		b = quicvarint.Append(b, e.Stream)
		b = quicvarint.Append(b, e.Count)
	}
	return b
}

// parseAck decodes an ACK frame's payload: one or more entries.
func parseAck(p []byte) ([]AckEntry, error) {
	if len(p) == 0 {
		return nil, malformedControl("ACK has no entry")
	}
	var entries []AckEntry
	for len(p) > 0 {
		id, n1, err := quicvarint.Parse(p)
		if err != nil {
			return nil, malformedControl("ACK entry is truncated")
		}
		count, n2, err := quicvarint.Parse(p[n1:])
		if err != nil {
			return nil, malformedControl("ACK entry for stream %d is truncated", id)
		}
		entries = append(entries, AckEntry{Stream: id, Count: count})
		p = p[n1+n2:]
	}
	return entries, nil
}

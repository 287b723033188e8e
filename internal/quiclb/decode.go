package quiclb

import "fmt"

// Decoded is what a balancer reads from a connection ID in the plaintext
// layout.
type Decoded struct {
	// ConfigRotation selects the balancer's configuration: 0 to
	// MaxConfigRotation.
	ConfigRotation uint8
	// ServerID is the issuing server's ID, a copy of its bytes in the
	// connection ID.
	ServerID []byte
}

// ConfigRotationOf returns the config rotation bits of a connection ID's
// first octet: a balancer with several configurations picks by it the
// server ID length to pass to [Decode]. 0b111 marks an unroutable ID.
func ConfigRotationOf(first byte) uint8 { return first >> 5 }

// DescribedLen returns the connection ID length that a first octet
// describes, in bytes. A balancer needs it for a short header packet, whose
// destination connection ID has no length field: the ID is the
// DescribedLen(pkt[1]) bytes from pkt[1] on.
func DescribedLen(first byte) int { return int(first&lenBits) + 1 }

// Decode reads the config rotation and the server ID from cid, a
// connection ID in the plaintext layout whose server ID is serverIDLen
// bytes long. It fails with a [*LimitError] when serverIDLen is out of
// range or cid is too short or too long for it, with [ErrUnroutable] for
// config rotation 0b111, and with an error wrapping [ErrLengthMismatch]
// when cid's first octet describes another length: a balancer then routes
// the packet by its fallback rule. Decode only reads cid.
func Decode(cid []byte, serverIDLen int) (Decoded, error) {
	if serverIDLen < MinServerIDLen || serverIDLen > MaxServerIDLen {
		return Decoded{}, &LimitError{Field: FieldServerID, Value: serverIDLen, Min: MinServerIDLen, Max: MaxServerIDLen}
	}
	shortest := 1 + serverIDLen + MinNonceLen
	if len(cid) < shortest || len(cid) > MaxConnectionIDLen {
		return Decoded{}, &LimitError{Field: FieldConnectionID, Value: len(cid), Min: shortest, Max: MaxConnectionIDLen}
	}
	cr := ConfigRotationOf(cid[0])
	if cr == unroutable {
		return Decoded{}, ErrUnroutable
	}
	if n := DescribedLen(cid[0]); n != len(cid) {
		return Decoded{}, fmt.Errorf("%w: its first octet says %d bytes, it has %d", ErrLengthMismatch, n, len(cid))
	}
	return Decoded{ConfigRotation: cr, ServerID: append([]byte(nil), cid[1:1+serverIDLen]...)}, nil
}

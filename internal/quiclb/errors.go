package quiclb

import (
	"errors"
	"fmt"
)

var (
	// ErrNotHex is returned by [ParseServerID] for a value that is not an
	// even number of hexadecimal digits.
	ErrNotHex = errors.New("quiclb: server ID must be hexadecimal digits, two per byte")
	// ErrUnroutable is returned by [Decode] for a connection ID whose config
	// rotation bits are 0b111: its issuer had no routable configuration, and
	// a balancer routes its packets by its fallback rule.
	ErrUnroutable = errors.New("quiclb: connection ID is marked unroutable (config rotation 0b111)")
	// ErrLengthMismatch is returned by [Decode] when the length that a
	// connection ID's first octet describes is not its length.
	ErrLengthMismatch = errors.New("quiclb: connection ID length differs from the length its first octet describes")
)

// Fields of the layout that a [LimitError] names.
const (
	FieldServerID       = "server ID"
	FieldNonce          = "nonce"
	FieldConnectionID   = "connection ID"
	FieldConfigRotation = "config rotation"
)

// LimitError reports a value outside what the plaintext layout allows: a
// server ID, nonce or connection ID length, or a config rotation.
type LimitError struct {
	Field    string // FieldServerID, FieldNonce, FieldConnectionID or FieldConfigRotation
	Value    int    // the length in bytes, or the config rotation, that was given
	Min, Max int    // the allowed range, inclusive
}

func (e *LimitError) Error() string {
	if e.Field == FieldConfigRotation {
		return fmt.Sprintf("quiclb: config rotation %d: want %d to %d (%d marks unroutable connection IDs)",
			e.Value, e.Min, e.Max, unroutable)
	}
	return fmt.Sprintf("quiclb: %s of %d bytes: want %d to %d bytes", e.Field, e.Value, e.Min, e.Max)
}

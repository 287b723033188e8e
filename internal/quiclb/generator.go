package quiclb

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/quic-go/quic-go"
)

// Limits and defaults of the plaintext layout.
const (
	// MinServerIDLen and MaxServerIDLen bound a server ID, in bytes.
	MinServerIDLen = 1
	MaxServerIDLen = 15
	// MinNonceLen is the shortest nonce the draft allows, in bytes.
	MinNonceLen = 4
	// DefaultNonceLen is the nonce length of a zero Config.NonceLen, in
	// bytes: 64 random bits, so that two connection IDs of one server that
	// are in use at the same time are practically never equal (about one
	// chance in 2^25 with a million of them).
	DefaultNonceLen = 8
	// MaxConnectionIDLen is the longest connection ID of QUIC version 1, in
	// bytes: first octet, server ID and nonce together.
	MaxConnectionIDLen = 20
	// MaxConfigRotation is the highest config rotation a server may use;
	// the next value, 0b111, marks unroutable connection IDs.
	MaxConfigRotation = 6

	unroutable = 0b111
	lenBits    = 0b1_1111 // the first octet's length self-description
)

// Config is a server's part of a QUIC-LB configuration.
type Config struct {
	// ServerID identifies this server to the balancer: 1 to
	// MaxServerIDLen bytes, unique among the servers behind it, of the
	// length the balancer's configuration names for ConfigRotation.
	// Required.
	ServerID []byte
	// NonceLen is the length of the random part of each connection ID, in
	// bytes: at least MinNonceLen, and at most what keeps the connection
	// ID within MaxConnectionIDLen. Default DefaultNonceLen, shortened to
	// the 19 - len(ServerID) bytes left when fewer remain (at least 4).
	NonceLen int
	// ConfigRotation tells the balancer which of its configurations
	// applies to the connection ID: 0 to MaxConfigRotation. It lets a
	// configuration (server ID length, server IDs) change while
	// connection IDs of the old one are still in use. Default 0.
	ConfigRotation uint8
}

// Generator issues connection IDs in the plaintext layout: first octet,
// server ID, random nonce. It implements quic-go's
// [quic.ConnectionIDGenerator]; set it as quic.Transport's
// ConnectionIDGenerator (in quicmsg, transport.Config's). It is safe for
// concurrent use.
type Generator struct {
	prefix []byte // first octet and server ID, immutable
	length int    // of every connection ID, in bytes
}

var _ quic.ConnectionIDGenerator = (*Generator)(nil)

// New returns a Generator for c. It fails with a [*LimitError] that names
// the field when c's server ID, nonce or total length, or its config
// rotation, is out of range.
func New(c Config) (*Generator, error) {
	sid := len(c.ServerID)
	if sid < MinServerIDLen || sid > MaxServerIDLen {
		return nil, &LimitError{Field: FieldServerID, Value: sid, Min: MinServerIDLen, Max: MaxServerIDLen}
	}
	if c.ConfigRotation > MaxConfigRotation {
		return nil, &LimitError{Field: FieldConfigRotation, Value: int(c.ConfigRotation), Min: 0, Max: MaxConfigRotation}
	}
	room := MaxConnectionIDLen - 1 - sid
	nonce := c.NonceLen
	if nonce == 0 {
		nonce = min(DefaultNonceLen, room)
	}
	if nonce < MinNonceLen {
		return nil, &LimitError{Field: FieldNonce, Value: nonce, Min: MinNonceLen, Max: room}
	}
	length := 1 + sid + nonce
	if length > MaxConnectionIDLen {
		return nil, &LimitError{Field: FieldConnectionID, Value: length, Min: 1 + sid + MinNonceLen, Max: MaxConnectionIDLen}
	}
	prefix := make([]byte, 1+sid)
	prefix[0] = c.ConfigRotation<<5 | byte(length-1)
	copy(prefix[1:], c.ServerID)
	return &Generator{prefix: prefix, length: length}, nil
}

// GenerateConnectionID returns a new connection ID: the first octet, the
// server ID and a nonce from crypto/rand. It does not fail.
func (g *Generator) GenerateConnectionID() (quic.ConnectionID, error) {
	var b [MaxConnectionIDLen]byte
	n := copy(b[:], g.prefix)
	// crypto/rand.Read does not return errors: it ends the program when the
	// system's source fails, which no connection ID could survive anyway.
	_, _ = rand.Read(b[n:g.length])
	return quic.ConnectionIDFromBytes(b[:g.length]), nil
}

// ConnectionIDLen returns the length of every connection ID g issues, in
// bytes.
func (g *Generator) ConnectionIDLen() int { return g.length }

// ServerID returns a copy of the server ID that g puts into connection IDs.
func (g *Generator) ServerID() []byte { return append([]byte(nil), g.prefix[1:]...) }

// ParseServerID parses a server ID written in hexadecimal, two digits per
// byte and an optional 0x in front ("0a1b", "0x0a1b"), as quicsrv's
// -server-id takes it. It fails with an error that wraps [ErrNotHex], or
// with a [*LimitError] for FieldServerID when the ID is not 1 to
// MaxServerIDLen bytes long.
func ParseServerID(s string) ([]byte, error) {
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	id, err := hex.DecodeString(digits)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrNotHex, s, err)
	}
	if len(id) < MinServerIDLen || len(id) > MaxServerIDLen {
		return nil, &LimitError{Field: FieldServerID, Value: len(id), Min: MinServerIDLen, Max: MaxServerIDLen}
	}
	return id, nil
}

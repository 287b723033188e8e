package certs

import (
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// SessionKeysPEMType is the PEM block type of a session keys file.
const SessionKeysPEMType = "QUICMSG SESSION KEYS"

// SessionKeys are the secrets a server keeps across restarts so that its
// clients' sessions survive them: the TLS session ticket key (clients resume,
// with 0-RTT, after a restart) and the QUIC stateless reset key (clients of a
// restarted server learn at once that their connection is gone).
type SessionKeys struct {
	Ticket         [32]byte
	StatelessReset [32]byte
}

// LoadOrCreateSessionKeys reads the session keys in file, or creates the
// file with fresh random keys (mode 0600) if it does not exist. A file that
// exists but is not a session keys file is an error naming it.
func LoadOrCreateSessionKeys(file string) (*SessionKeys, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		var k SessionKeys
		if _, err := rand.Read(k.Ticket[:]); err != nil {
			return nil, err
		}
		if _, err := rand.Read(k.StatelessReset[:]); err != nil {
			return nil, err
		}
		b := make([]byte, 0, 64)
		b = append(append(b, k.Ticket[:]...), k.StatelessReset[:]...)
		out := pem.EncodeToMemory(&pem.Block{Type: SessionKeysPEMType, Bytes: b})
		if err := writeFileAtomic(file, out, KeyFileMode); err != nil {
			return nil, &FileError{Op: "write", File: file, Err: err}
		}
		return &k, nil
	}
	if err != nil {
		return nil, &FileError{Op: "read", File: file, Err: err}
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, &FileError{Op: "parse", File: file, Err: ErrNotPEM}
	}
	if block.Type != SessionKeysPEMType || len(block.Bytes) != 64 {
		return nil, &FileError{Op: "parse", File: file,
			Err: fmt.Errorf("want a %q block of 64 bytes, got %q of %d bytes", SessionKeysPEMType, block.Type, len(block.Bytes))}
	}
	var k SessionKeys
	copy(k.Ticket[:], block.Bytes[:32])
	copy(k.StatelessReset[:], block.Bytes[32:])
	return &k, nil
}

package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/quicmsg/quicmsg/transport"
)

// resumeKey returns the key of -resume-key-file: read from the file, which
// holds it in hex (64 digits), or created there with a random key (mode
// 0600) if the file does not exist. Without -resume-key-file it returns nil:
// the listener then draws a random key of its own, and says so in the log.
func resumeKey(file string, log *slog.Logger) (*transport.ResumeKey, error) {
	if file == "" {
		log.Info("resume tokens are signed with a random key: after a restart, clients are told that their token is invalid (keep a key with -resume-key-file for them to be told that their session expired)")
		return nil, nil
	}
	var k transport.ResumeKey
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := rand.Read(k[:]); err != nil {
			return nil, err
		}
		if err := writeNewFile(file, []byte(hex.EncodeToString(k[:])+"\n")); err != nil {
			return nil, fmt.Errorf("-resume-key-file: %w", err)
		}
		log.Info("resume key written", "file", file)
		return &k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("-resume-key-file: %w", err)
	}
	digits := bytes.TrimSpace(b)
	if len(digits) != 2*len(k) {
		return nil, fmt.Errorf("-resume-key-file %s: want %d hex digits (a %d-byte key), as quicsrv writes when the file is missing; it holds %d bytes", file, 2*len(k), len(k), len(digits))
	}
	if _, err := hex.Decode(k[:], digits); err != nil {
		return nil, fmt.Errorf("-resume-key-file %s: want %d hex digits (a %d-byte key), as quicsrv writes when the file is missing", file, 2*len(k), len(k))
	}
	return &k, nil
}

// writeNewFile creates file with data, mode 0600, failing if it exists.
func writeNewFile(file string, data []byte) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

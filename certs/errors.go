package certs

import (
	"errors"
	"time"
)

// Sentinel errors. They are always returned wrapped, usually in a [*FileError]
// or [*ValidityError]; test for them with [errors.Is].
var (
	// ErrNotPEM reports that a file contains no PEM block at all.
	ErrNotPEM = errors.New("no PEM data found")

	// ErrNoCertificates reports that PEM data holds no CERTIFICATE block,
	// or that a certificate pool would be empty.
	ErrNoCertificates = errors.New("no CERTIFICATE PEM block found")

	// ErrNoPrivateKey reports that PEM data holds no PRIVATE KEY block.
	ErrNoPrivateKey = errors.New("no PRIVATE KEY PEM block found")

	// ErrUnsupportedKey reports a private key of a type that cannot be used,
	// for example a non-ECDSA key for a certificate authority passed to
	// [GenerateLeaf].
	ErrUnsupportedKey = errors.New("unsupported private key type")

	// ErrKeyMismatch reports that a private key does not belong to the
	// certificate it is paired with.
	ErrKeyMismatch = errors.New("private key does not match certificate")

	// ErrExpired reports a certificate whose NotAfter time has passed.
	ErrExpired = errors.New("certificate expired")

	// ErrNotYetValid reports a certificate whose NotBefore time is in the
	// future.
	ErrNotYetValid = errors.New("certificate not yet valid")

	// ErrInvalidPin reports a public key pin that cannot be parsed.
	ErrInvalidPin = errors.New("invalid public key pin")

	// ErrInvalidOptions reports contradictory or incomplete options passed to
	// a constructor such as [ServerConfig], [ClientConfig] or [GenerateLeaf].
	ErrInvalidOptions = errors.New("invalid options")
)

// FileError records a failure to use a certificate or key file.
// Missing files satisfy errors.Is(err, fs.ErrNotExist).
type FileError struct {
	// Op is the failed operation: "read", "parse", "verify", "write",
	// "mkdir" or "lock".
	Op string
	// File is the path as given by the caller.
	File string
	// Err is the underlying error.
	Err error
}

// Error returns a message of the form "certs: <op> <file>: <err>".
func (e *FileError) Error() string {
	return "certs: " + e.Op + " " + e.File + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *FileError) Unwrap() error { return e.Err }

// ValidityError reports a certificate used outside its validity period.
// It unwraps to [ErrExpired] or [ErrNotYetValid].
type ValidityError struct {
	// Err is ErrExpired or ErrNotYetValid.
	Err error
	// NotBefore and NotAfter are the certificate's validity bounds.
	NotBefore, NotAfter time.Time
	// Now is the time the certificate was checked at.
	Now time.Time
}

// Error describes the validity bound that was violated.
func (e *ValidityError) Error() string {
	now := e.Now.UTC().Format(time.RFC3339)
	if errors.Is(e.Err, ErrNotYetValid) {
		return "certificate not valid before " + e.NotBefore.UTC().Format(time.RFC3339) + " (now " + now + ")"
	}
	return "certificate expired at " + e.NotAfter.UTC().Format(time.RFC3339) + " (now " + now + ")"
}

// Unwrap returns ErrExpired or ErrNotYetValid.
func (e *ValidityError) Unwrap() error { return e.Err }

// PinMismatchError is returned by the verification of a [ClientConfig]
// when the server's leaf public key does not match the configured pin.
// Both pins are in the canonical form returned by [PublicKeyPin].
type PinMismatchError struct {
	// Want is the configured pin.
	Want string
	// Got is the pin of the certificate the peer presented.
	Got string
}

// Error reports both pins.
func (e *PinMismatchError) Error() string {
	return "certs: public key pin mismatch: got " + e.Got + ", want " + e.Want
}

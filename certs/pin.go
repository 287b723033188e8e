package certs

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// PinPrefix prefixes the canonical form of public key pins.
const PinPrefix = "sha256/"

// PublicKeyPin returns the pin of cert's public key: PinPrefix followed by
// the standard base64 encoding of the SHA-256 digest of the DER-encoded
// SubjectPublicKeyInfo, for example
// "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".
func PublicKeyPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return PinPrefix + base64.StdEncoding.EncodeToString(sum[:])
}

// PinFile returns the [PublicKeyPin] of the first certificate in the PEM file
// certFile. It does not check the validity period.
func PinFile(certFile string) (string, error) {
	certs, err := readCertificates(certFile)
	if err != nil {
		return "", err
	}
	return PublicKeyPin(certs[0]), nil
}

// ParsePin parses a public key pin and returns it in the canonical form of
// [PublicKeyPin]. It accepts an optional "sha256/" or "sha256//" prefix
// (case-insensitive) followed by the 32-byte digest in standard base64
// (padded or not) or in hexadecimal (64 digits, optionally colon separated).
// Errors wrap [ErrInvalidPin].
func ParsePin(pin string) (string, error) {
	sum, err := decodePin(pin)
	if err != nil {
		return "", err
	}
	return PinPrefix + base64.StdEncoding.EncodeToString(sum), nil
}

func decodePin(pin string) ([]byte, error) {
	s := strings.TrimSpace(pin)
	hasPrefix := len(s) >= len(PinPrefix) && strings.EqualFold(s[:len(PinPrefix)], PinPrefix)
	if hasPrefix {
		s = s[len(PinPrefix):]
	}
	sum, err := decodeDigest(s)
	if err != nil && hasPrefix && strings.HasPrefix(s, "/") {
		// curl's "sha256//<base64>". Base64 may itself start with "/", so
		// the slash is dropped only if the digest does not decode with it.
		if sum2, err2 := decodeDigest(s[1:]); err2 == nil {
			sum, err = sum2, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("certs: %w %q: %v", ErrInvalidPin, pin, err)
	}
	return sum, nil
}

// decodeDigest decodes a SHA-256 digest in base64 or hexadecimal.
func decodeDigest(s string) ([]byte, error) {
	var (
		sum []byte
		err error
	)
	switch {
	case len(s) == 64 || (len(s) == 95 && strings.Count(s, ":") == 31):
		sum, err = hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	case len(s) == 44:
		sum, err = base64.StdEncoding.DecodeString(s)
	case len(s) == 43:
		sum, err = base64.RawStdEncoding.DecodeString(s)
	default:
		return nil, errors.New("want a SHA-256 digest in base64 or hex")
	}
	if err == nil && len(sum) != sha256.Size {
		err = fmt.Errorf("digest is %d bytes, want %d", len(sum), sha256.Size)
	}
	return sum, err
}

// verifyPin returns a tls.Config.VerifyConnection function that requires
// the peer's leaf public key to match want. If checkTime is set it also
// checks the leaf's validity period, for use when chain verification is
// skipped.
func verifyPin(want []byte, checkTime bool) func(tls.ConnectionState) error {
	wantPin := PinPrefix + base64.StdEncoding.EncodeToString(want)
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("certs: peer sent no certificate to check pin %s against", wantPin)
		}
		leaf := cs.PeerCertificates[0]
		got := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
		if subtle.ConstantTimeCompare(got[:], want) != 1 {
			return &PinMismatchError{Want: wantPin, Got: PublicKeyPin(leaf)}
		}
		if checkTime {
			if err := checkValidity(leaf, time.Now()); err != nil {
				return fmt.Errorf("certs: peer certificate %q: %w", leaf.Subject.CommonName, err)
			}
		}
		return nil
	}
}

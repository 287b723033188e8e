package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// LoadKeyPair reads a PEM certificate chain (leaf first) and its PEM private
// key, like [tls.LoadX509KeyPair], but reports failures as a [*FileError]
// and rejects a leaf that is expired ([ErrExpired]) or not yet valid
// ([ErrNotYetValid]) at the time of the call. The returned certificate has
// its Leaf field set.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	return loadKeyPair(certFile, keyFile, time.Now())
}

func loadKeyPair(certFile, keyFile string, now time.Time) (tls.Certificate, error) {
	chain, err := readCertificates(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := readPrivateKey(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf := chain[0]
	if !publicKeyMatches(leaf, key) {
		return tls.Certificate{}, &FileError{Op: "verify", File: keyFile,
			Err: fmt.Errorf("%w in %s", ErrKeyMismatch, certFile)}
	}
	if err := checkValidity(leaf, now); err != nil {
		return tls.Certificate{}, &FileError{Op: "verify", File: certFile, Err: err}
	}
	c := tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, cert := range chain {
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	return c, nil
}

// LoadCAPool reads one or more PEM files of CA certificates into a new pool.
// Each file must contain at least one certificate; every CERTIFICATE block
// must parse. Other PEM block types are ignored. Calling it without files
// returns an error wrapping [ErrNoCertificates].
func LoadCAPool(files ...string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("certs: LoadCAPool: %w: no files given", ErrNoCertificates)
	}
	pool := x509.NewCertPool()
	for _, f := range files {
		certs, err := readCertificates(f)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool, nil
}

// readFile reads name, reporting errors as a *FileError. The *fs.PathError
// of the os package is unwrapped so the message names the file once; the
// remaining error still matches fs.ErrNotExist and friends.
func readFile(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &FileError{Op: "read", File: name, Err: err}
	}
	return b, nil
}

// readPEM reads the PEM file name and parses it with parse. It returns the
// parsed value and the file's content; a parse failure is a *FileError.
func readPEM[T any](name string, parse func([]byte) (T, error)) (T, []byte, error) {
	var zero T
	data, err := readFile(name)
	if err != nil {
		return zero, nil, err
	}
	v, err := parse(data)
	if err != nil {
		return zero, nil, &FileError{Op: "parse", File: name, Err: err}
	}
	return v, data, nil
}

// readCertificates returns every certificate in the PEM file name, in order.
func readCertificates(name string) ([]*x509.Certificate, error) {
	certs, _, err := readPEM(name, parseCertificatesPEM)
	return certs, err
}

// readPrivateKey returns the first private key in the PEM file name.
func readPrivateKey(name string) (crypto.Signer, error) {
	key, _, err := readPEM(name, parsePrivateKeyPEM)
	return key, err
}

// decodePEM returns the PEM blocks in data, in order, or ErrNotPEM if there
// are none.
func decodePEM(data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			break
		}
		blocks, data = append(blocks, block), rest
	}
	if len(blocks) == 0 {
		return nil, ErrNotPEM
	}
	return blocks, nil
}

// parseCertificatesPEM returns the certificates of the CERTIFICATE blocks
// in data; other blocks are skipped.
func parseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	blocks, err := decodePEM(data)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for _, block := range blocks {
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, ErrNoCertificates
	}
	return certs, nil
}

// parsePrivateKeyPEM returns the key of the first "PRIVATE KEY" or
// "... PRIVATE KEY" block in data.
func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	blocks, err := decodePEM(data)
	if err != nil {
		return nil, err
	}
	for _, block := range blocks {
		if block.Type == "PRIVATE KEY" || strings.HasSuffix(block.Type, " PRIVATE KEY") {
			return parsePrivateKeyDER(block.Bytes)
		}
	}
	return nil, ErrNoPrivateKey
}

// parsePrivateKeyDER accepts PKCS #8, SEC 1 (EC) and PKCS #1 (RSA) keys,
// like tls.X509KeyPair.
func parsePrivateKeyDER(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%w %T", ErrUnsupportedKey, k)
		}
		return s, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("private key is not PKCS #8, SEC 1 or PKCS #1 DER")
}

func publicKeyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(key.Public())
}

// checkValidity returns a *ValidityError if now is outside c's validity
// period.
func checkValidity(c *x509.Certificate, now time.Time) error {
	switch {
	case now.Before(c.NotBefore):
		return &ValidityError{Err: ErrNotYetValid, NotBefore: c.NotBefore, NotAfter: c.NotAfter, Now: now}
	case now.After(c.NotAfter):
		return &ValidityError{Err: ErrExpired, NotBefore: c.NotBefore, NotAfter: c.NotAfter, Now: now}
	}
	return nil
}

// readKeyPair reads a certificate and an ECDSA private key into a KeyPair,
// checking that they match but not the validity period.
func readKeyPair(certFile, keyFile string) (*KeyPair, error) {
	certs, certPEM, err := readPEM(certFile, parseCertificatesPEM)
	if err != nil {
		return nil, err
	}
	signer, keyPEM, err := readPEM(keyFile, parsePrivateKeyPEM)
	if err != nil {
		return nil, err
	}
	key, ok := signer.(*ecdsa.PrivateKey)
	if !ok {
		return nil, &FileError{Op: "parse", File: keyFile, Err: fmt.Errorf("%w %T, want ECDSA", ErrUnsupportedKey, signer)}
	}
	if !publicKeyMatches(certs[0], key) {
		return nil, &FileError{Op: "verify", File: keyFile, Err: fmt.Errorf("%w in %s", ErrKeyMismatch, certFile)}
	}
	return &KeyPair{Cert: certs[0], Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

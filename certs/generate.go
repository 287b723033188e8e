package certs

import (
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

const (
	// DefaultCAValidity is the validity period of certificate authorities
	// created by [GenerateCA] when none is given: ten years.
	DefaultCAValidity = 10 * 365 * 24 * time.Hour

	// DefaultLeafValidity is the validity period of leaf certificates created
	// by [GenerateLeaf] when none is given: one year. That is below the
	// 398-day limit some TLS clients apply to server certificates, and long
	// enough that development certificates rarely need renewing.
	DefaultLeafValidity = 365 * 24 * time.Hour

	// Backdate is subtracted from the current time to form the NotBefore of
	// generated certificates when none is given, to tolerate clock skew
	// between peers.
	Backdate = 5 * time.Minute

	// CertFileMode is the permission of certificate files written by
	// [KeyPair.WriteFiles].
	CertFileMode fs.FileMode = 0o644

	// KeyFileMode is the permission of private key files written by
	// [KeyPair.WriteFiles].
	KeyFileMode fs.FileMode = 0o600
)

// KeyPair is a certificate together with its ECDSA P-256 private key, in
// parsed and PEM form. KeyPairs are created by [GenerateCA] and
// [GenerateLeaf]. Use [KeyPair.TLSCertificate] to obtain a [tls.Certificate].
type KeyPair struct {
	// Cert is the parsed certificate.
	Cert *x509.Certificate
	// Key is the private key for Cert.
	Key *ecdsa.PrivateKey
	// CertPEM is Cert as a PEM CERTIFICATE block.
	CertPEM []byte
	// KeyPEM is Key as a PEM PKCS #8 PRIVATE KEY block.
	KeyPEM []byte
}

// LeafOptions configures [GenerateLeaf].
type LeafOptions struct {
	// Hosts are the subject alternative names. Each entry is an IP address
	// if net.ParseIP accepts it and a DNS name otherwise. Server
	// certificates need at least one.
	Hosts []string
	// CommonName is the subject common name. It defaults to the first host,
	// or "quicmsg client" for client certificates without hosts.
	CommonName string
	// Client selects a client certificate (extended key usage ClientAuth)
	// instead of a server certificate (ServerAuth).
	Client bool
	// NotBefore is the start of the validity period. The zero value means
	// the current time minus Backdate.
	NotBefore time.Time
	// ValidFor is the length of the validity period starting at NotBefore.
	// Zero means DefaultLeafValidity.
	ValidFor time.Duration
}

// GenerateCA creates a self-signed ECDSA P-256 certificate authority that
// may sign leaf certificates but no intermediate CAs. A validFor of zero
// means DefaultCAValidity; the period starts Backdate before now.
func GenerateCA(commonName string, validFor time.Duration) (*KeyPair, error) {
	if validFor < 0 {
		return nil, fmt.Errorf("certs: GenerateCA: %w: negative validity %v", ErrInvalidOptions, validFor)
	}
	if validFor == 0 {
		validFor = DefaultCAValidity
	}
	notBefore := time.Now().Add(-Backdate)
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	kp, err := createKeyPair(tmpl, nil)
	if err != nil {
		return nil, fmt.Errorf("certs: GenerateCA: %w", err)
	}
	return kp, nil
}

// GenerateLeaf creates an ECDSA P-256 server or client certificate signed
// by ca. If ca is nil the certificate is self-signed, which suits setups
// that authenticate the server by public key pin only.
func GenerateLeaf(ca *KeyPair, opts LeafOptions) (*KeyPair, error) {
	if err := opts.check(ca); err != nil {
		return nil, fmt.Errorf("certs: GenerateLeaf: %w", err)
	}
	kp, err := createKeyPair(opts.template(), ca)
	if err != nil {
		return nil, fmt.Errorf("certs: GenerateLeaf: %w", err)
	}
	return kp, nil
}

// check rejects options, or a CA, that GenerateLeaf cannot use.
func (o *LeafOptions) check(ca *KeyPair) error {
	switch {
	case o.ValidFor < 0:
		return fmt.Errorf("%w: negative validity %v", ErrInvalidOptions, o.ValidFor)
	case !o.Client && len(o.Hosts) == 0:
		return fmt.Errorf("%w: server certificate without hosts", ErrInvalidOptions)
	case ca != nil && (ca.Cert == nil || ca.Key == nil):
		return fmt.Errorf("%w: CA without certificate or key", ErrInvalidOptions)
	case slices.Contains(o.Hosts, ""):
		return fmt.Errorf("%w: empty host", ErrInvalidOptions)
	}
	return nil
}

// template returns the certificate o describes, with its defaults applied.
func (o *LeafOptions) template() *x509.Certificate {
	notBefore := o.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-Backdate)
	}
	validFor := cmp.Or(o.ValidFor, DefaultLeafValidity)
	usage := x509.ExtKeyUsageServerAuth
	if o.Client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: o.commonName()},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validFor),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
	}
	for _, h := range o.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl
}

// commonName returns CommonName, or its default: the first host, or
// "quicmsg client" without hosts.
func (o *LeafOptions) commonName() string {
	switch {
	case o.CommonName != "":
		return o.CommonName
	case len(o.Hosts) > 0:
		return o.Hosts[0]
	}
	return "quicmsg client"
}

// createKeyPair generates a key and signs tmpl with parent, or self-signs
// it if parent is nil.
func createKeyPair(tmpl *x509.Certificate, parent *KeyPair) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	parentCert, signer := tmpl, key
	if parent != nil {
		parentCert, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// TLSCertificate returns kp as a [tls.Certificate] with Leaf set.
func (kp *KeyPair) TLSCertificate() tls.Certificate {
	return tls.Certificate{
		Certificate: [][]byte{kp.Cert.Raw},
		PrivateKey:  kp.Key,
		Leaf:        kp.Cert,
	}
}

// Pin returns the public key pin of kp's certificate; see [PublicKeyPin].
func (kp *KeyPair) Pin() string { return PublicKeyPin(kp.Cert) }

// WriteFiles writes the private key to keyFile with mode KeyFileMode, then
// the certificate to certFile with mode CertFileMode. Each file is written
// to a temporary file in the same directory and renamed into place, so
// concurrent readers see either the old or the new content, never a mix.
// Errors are reported as a [*FileError].
func (kp *KeyPair) WriteFiles(certFile, keyFile string) error {
	if err := writeFileAtomic(keyFile, kp.KeyPEM, KeyFileMode); err != nil {
		return &FileError{Op: "write", File: keyFile, Err: err}
	}
	if err := writeFileAtomic(certFile, kp.CertPEM, CertFileMode); err != nil {
		return &FileError{Op: "write", File: certFile, Err: err}
	}
	return nil
}

func writeFileAtomic(name string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

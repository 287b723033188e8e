package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"slices"
	"time"
)

// MinVersion is the minimum and only TLS version of configurations built by
// [ServerConfig] and [ClientConfig]. QUIC requires TLS 1.3.
const MinVersion = tls.VersionTLS13

// ServerOptions configures [ServerConfig]. Exactly one certificate source
// must be set: CertFile and KeyFile, Certificate, or Reloader.
type ServerOptions struct {
	// CertFile and KeyFile name PEM files loaded with LoadKeyPair.
	CertFile, KeyFile string
	// Certificate is an already loaded certificate.
	Certificate *tls.Certificate
	// Reloader serves a certificate that can be replaced at run time.
	Reloader *Reloader

	// ClientCAFile names a PEM file of CAs for client certificates.
	// Setting it, or ClientCAs, turns on mutual TLS: clients must present
	// a certificate that verifies against these CAs.
	ClientCAFile string
	// ClientCAs is a pool of CAs for client certificates. It is mutually
	// exclusive with ClientCAFile.
	ClientCAs *x509.CertPool

	// NextProtos lists the supported ALPN protocols in order of preference.
	NextProtos []string
}

// ServerConfig returns a TLS 1.3 server configuration. Certificates loaded
// from files or given as Certificate are rejected if expired or not yet
// valid. The returned config's MinVersion is MinVersion; callers must not
// lower it.
func ServerConfig(opts ServerOptions) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion: MinVersion,
		NextProtos: slices.Clone(opts.NextProtos),
	}

	files := opts.CertFile != "" || opts.KeyFile != ""
	n := 0
	for _, set := range []bool{files, opts.Certificate != nil, opts.Reloader != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("certs: ServerConfig: %w: need exactly one of CertFile/KeyFile, Certificate and Reloader", ErrInvalidOptions)
	}
	switch {
	case files:
		if opts.CertFile == "" || opts.KeyFile == "" {
			return nil, fmt.Errorf("certs: ServerConfig: %w: CertFile and KeyFile must be set together", ErrInvalidOptions)
		}
		cert, err := LoadKeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	case opts.Certificate != nil:
		cert, err := checkCertificate(*opts.Certificate)
		if err != nil {
			return nil, fmt.Errorf("certs: ServerConfig: Certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	default:
		cfg.GetCertificate = opts.Reloader.GetCertificate
	}

	pool, err := caPool("ServerConfig", "ClientCAFile", opts.ClientCAFile, "ClientCAs", opts.ClientCAs)
	if err != nil {
		return nil, err
	}
	if pool != nil {
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientOptions configures [ClientConfig].
//
// The server is authenticated by exactly one of these modes:
//   - CAFile or RootCAs: the certificate chain must verify against these
//     roots and match ServerName.
//   - PinSHA256 alone: chain and name verification are skipped; instead the
//     server's leaf public key must match the pin and the leaf must be
//     within its validity period. Suits self-signed certificates.
//   - CAFile or RootCAs and PinSHA256: both checks must pass.
//   - none of them: the chain must verify against the system roots.
//   - InsecureSkipVerify alone: no authentication at all.
type ClientOptions struct {
	// ServerName is used to verify the server's certificate and is sent
	// in the SNI extension. If empty, tls.Dial and quic-go derive it from
	// the address dialed.
	ServerName string

	// CAFile names a PEM file of root CAs for verifying the server.
	CAFile string
	// RootCAs is a pool of root CAs; mutually exclusive with CAFile.
	RootCAs *x509.CertPool

	// CertFile and KeyFile name a client certificate and key for mutual
	// TLS, loaded with LoadKeyPair.
	CertFile, KeyFile string
	// Certificate is an already loaded client certificate; mutually
	// exclusive with CertFile and KeyFile.
	Certificate *tls.Certificate

	// PinSHA256 is the expected public key pin of the server's leaf
	// certificate, in any form accepted by ParsePin, typically
	// "sha256/<base64>" as returned by PublicKeyPin.
	PinSHA256 string

	// InsecureSkipVerify disables all server authentication, making the
	// connection open to man-in-the-middle attacks. Use it only in tests.
	// It cannot be combined with CAFile or RootCAs; if PinSHA256 is set
	// the pin is still enforced. TLS 1.3 is still required.
	InsecureSkipVerify bool

	// NextProtos lists the supported ALPN protocols in order of preference.
	NextProtos []string

	// KeyLogWriter, if set, receives TLS secrets in NSS key log format,
	// allowing anyone with access to it to decrypt the traffic. For
	// debugging only.
	KeyLogWriter io.Writer
}

// ClientConfig returns a TLS 1.3 client configuration; see [ClientOptions]
// for the authentication modes. A pin mismatch fails the handshake with a
// [*PinMismatchError]. The returned config's MinVersion is MinVersion;
// callers must not lower it.
func ClientConfig(opts ClientOptions) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:   MinVersion,
		ServerName:   opts.ServerName,
		NextProtos:   slices.Clone(opts.NextProtos),
		KeyLogWriter: opts.KeyLogWriter,
	}

	roots, err := caPool("ClientConfig", "CAFile", opts.CAFile, "RootCAs", opts.RootCAs)
	if err != nil {
		return nil, err
	}
	if opts.InsecureSkipVerify && roots != nil {
		return nil, fmt.Errorf("certs: ClientConfig: %w: InsecureSkipVerify contradicts CAFile/RootCAs", ErrInvalidOptions)
	}
	cfg.RootCAs = roots

	if opts.PinSHA256 != "" {
		pin, err := decodePin(opts.PinSHA256)
		if err != nil {
			return nil, err
		}
		pinOnly := roots == nil
		// Without roots the pin replaces chain verification.
		cfg.InsecureSkipVerify = pinOnly
		cfg.VerifyConnection = verifyPin(pin, pinOnly)
	} else if opts.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true
	}

	files := opts.CertFile != "" || opts.KeyFile != ""
	switch {
	case files && opts.Certificate != nil:
		return nil, fmt.Errorf("certs: ClientConfig: %w: CertFile/KeyFile and Certificate are mutually exclusive", ErrInvalidOptions)
	case files:
		if opts.CertFile == "" || opts.KeyFile == "" {
			return nil, fmt.Errorf("certs: ClientConfig: %w: CertFile and KeyFile must be set together", ErrInvalidOptions)
		}
		cert, err := LoadKeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	case opts.Certificate != nil:
		cert, err := checkCertificate(*opts.Certificate)
		if err != nil {
			return nil, fmt.Errorf("certs: ClientConfig: Certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// caPool returns the pool from file or pool, nil if neither is set.
func caPool(fn, fileField, file, poolField string, pool *x509.CertPool) (*x509.CertPool, error) {
	switch {
	case file != "" && pool != nil:
		return nil, fmt.Errorf("certs: %s: %w: %s and %s are mutually exclusive", fn, ErrInvalidOptions, fileField, poolField)
	case file != "":
		return LoadCAPool(file)
	}
	return pool, nil
}

// checkCertificate makes sure c has a key and a parsed leaf that is valid now.
func checkCertificate(c tls.Certificate) (tls.Certificate, error) {
	if len(c.Certificate) == 0 || c.PrivateKey == nil {
		return c, fmt.Errorf("%w: certificate chain or private key missing", ErrInvalidOptions)
	}
	if c.Leaf == nil {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return c, err
		}
		c.Leaf = leaf
	}
	return c, checkValidity(c.Leaf, time.Now())
}

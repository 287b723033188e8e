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

	n := 0
	for _, set := range []bool{opts.CertFile != "" || opts.KeyFile != "", opts.Certificate != nil, opts.Reloader != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("certs: ServerConfig: %w: need exactly one of CertFile/KeyFile, Certificate and Reloader", ErrInvalidOptions)
	}
	if opts.Reloader != nil {
		cfg.GetCertificate = opts.Reloader.GetCertificate
	} else {
		chain, err := certificate("ServerConfig", opts.CertFile, opts.KeyFile, opts.Certificate)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = chain
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

	if err := verifyServer(cfg, opts); err != nil {
		return nil, err
	}
	chain, err := certificate("ClientConfig", opts.CertFile, opts.KeyFile, opts.Certificate)
	if err != nil {
		return nil, err
	}
	cfg.Certificates = chain
	return cfg, nil
}

// verifyServer sets up cfg to authenticate the server in the mode opts
// selects; see [ClientOptions].
func verifyServer(cfg *tls.Config, opts ClientOptions) error {
	roots, err := caPool("ClientConfig", "CAFile", opts.CAFile, "RootCAs", opts.RootCAs)
	if err != nil {
		return err
	}
	if opts.InsecureSkipVerify && roots != nil {
		return fmt.Errorf("certs: ClientConfig: %w: InsecureSkipVerify contradicts CAFile/RootCAs", ErrInvalidOptions)
	}
	cfg.RootCAs = roots
	if opts.PinSHA256 == "" {
		cfg.InsecureSkipVerify = opts.InsecureSkipVerify
		return nil
	}
	pin, err := decodePin(opts.PinSHA256)
	if err != nil {
		return err
	}
	// Without roots the pin replaces chain verification.
	pinOnly := roots == nil
	cfg.InsecureSkipVerify = pinOnly
	cfg.VerifyConnection = verifyPin(pin, pinOnly)
	return nil
}

// certificate returns the certificate loaded from certFile and keyFile or
// checked from c, nil if none is set. fn names the caller in errors.
func certificate(fn, certFile, keyFile string, c *tls.Certificate) ([]tls.Certificate, error) {
	files := certFile != "" || keyFile != ""
	switch {
	case files && c != nil:
		return nil, fmt.Errorf("certs: %s: %w: CertFile/KeyFile and Certificate are mutually exclusive", fn, ErrInvalidOptions)
	case files && (certFile == "" || keyFile == ""):
		return nil, fmt.Errorf("certs: %s: %w: CertFile and KeyFile must be set together", fn, ErrInvalidOptions)
	case files:
		cert, err := LoadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		return []tls.Certificate{cert}, nil
	case c != nil:
		cert, err := checkCertificate(*c)
		if err != nil {
			return nil, fmt.Errorf("certs: %s: Certificate: %w", fn, err)
		}
		return []tls.Certificate{cert}, nil
	}
	return nil, nil
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

package certs

import (
	"crypto/tls"
	"sync/atomic"
)

// Reloader serves a certificate and key loaded from files and replaces them
// when Reload is called, for example on SIGHUP or from a file watcher, so
// that renewed certificates take effect without restarting the server.
// Its methods are safe for concurrent use.
type Reloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// NewReloader loads certFile and keyFile with [LoadKeyPair] and returns a
// Reloader serving them.
func NewReloader(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload loads the files again and, if that succeeds, atomically replaces
// the served certificate. On error, for example a half-written or expired
// certificate, the previous certificate stays in use and the error is
// returned.
func (r *Reloader) Reload() error {
	cert, err := LoadKeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert.Store(&cert)
	return nil
}

// Certificate returns the certificate currently served. The caller must not
// modify it.
func (r *Reloader) Certificate() *tls.Certificate { return r.cert.Load() }

// GetCertificate returns the current certificate. It has the signature of
// [tls.Config.GetCertificate]; [ServerConfig] installs it when
// [ServerOptions.Reloader] is set.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

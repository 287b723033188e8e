package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// DefaultDevDir is the directory used by [EnsureDev] and
	// [NewDevClientCert] when dir is empty. It is relative to the working
	// directory, so each project gets its own development CA.
	DefaultDevDir = ".quicmsg/dev-certs"

	// DevDirMode is the permission of a directory created by [EnsureDev].
	DevDirMode fs.FileMode = 0o700

	// DevRenewBefore is how long before expiry [EnsureDev] renews a
	// development certificate.
	DevRenewBefore = 24 * time.Hour

	// DevCAName is the common name of development certificate authorities.
	DevCAName = "quicmsg development CA"

	// DevCAFile is the name of the CA certificate file in a development
	// directory.
	DevCAFile = "ca.pem"
	// DevCAKeyFile is the name of the CA private key file in a development
	// directory.
	DevCAKeyFile = "ca-key.pem"
	// DevCertFile is the name of the server certificate file in a
	// development directory.
	DevCertFile = "server.pem"
	// DevCertKeyFile is the name of the server private key file in a
	// development directory.
	DevCertKeyFile = "server-key.pem"

	devLockFile    = ".lock"
	devLockTimeout = 20 * time.Second
	devLockStale   = 10 * time.Second
)

// DefaultDevHosts returns the hosts [EnsureDev] uses when none are given:
// "localhost", "127.0.0.1" and "::1".
func DefaultDevHosts() []string { return []string{"localhost", "127.0.0.1", "::1"} }

// DevFiles describes the development certificate files managed by
// [EnsureDev]. All paths are absolute.
type DevFiles struct {
	CAFile    string // CA certificate, ca.pem
	CAKeyFile string // CA private key, ca-key.pem
	CertFile  string // server certificate, server.pem
	KeyFile   string // server private key, server-key.pem

	// Generated reports whether EnsureDev wrote any file in this call.
	Generated bool
	// Pin is the public key pin of the server certificate; see PublicKeyPin.
	Pin string
}

// ServerOptions returns options for [ServerConfig] that serve f's server
// certificate without requiring client certificates.
func (f *DevFiles) ServerOptions() ServerOptions {
	return ServerOptions{CertFile: f.CertFile, KeyFile: f.KeyFile}
}

// ClientOptions returns options for [ClientConfig] that trust f's CA.
func (f *DevFiles) ClientOptions(serverName string) ClientOptions {
	return ClientOptions{CAFile: f.CAFile, ServerName: serverName}
}

func devFiles(dir string) *DevFiles {
	return &DevFiles{
		CAFile:    filepath.Join(dir, DevCAFile),
		CAKeyFile: filepath.Join(dir, DevCAKeyFile),
		CertFile:  filepath.Join(dir, DevCertFile),
		KeyFile:   filepath.Join(dir, DevCertKeyFile),
	}
}

// EnsureDev makes sure dir holds a development CA (ca.pem, ca-key.pem) and a
// server certificate signed by it (server.pem, server-key.pem) covering all
// hosts, and returns their paths.
//
// Existing files are reused when they are consistent, valid and not
// expiring within DevRenewBefore, and the server certificate lists every
// host. Otherwise EnsureDev regenerates what is needed: the CA is kept when
// it is still good, so clients that already trust ca.pem keep working, and a
// regenerated server certificate covers the union of the requested hosts and
// those of the previous certificate, so callers asking for different hosts
// do not undo each other. Delete dir to start afresh.
//
// An empty dir means DefaultDevDir; empty hosts means DefaultDevHosts. Each
// host is an IP address if net.ParseIP accepts it and a DNS name otherwise.
// The directory is created with mode DevDirMode, keys are written with
// KeyFileMode and certificates with CertFileMode. Concurrent calls, also
// from different processes, are serialized by a lock file in dir.
//
// The development CA must never be trusted outside development.
func EnsureDev(dir string, hosts []string) (*DevFiles, error) {
	if dir == "" {
		dir = DefaultDevDir
	}
	if len(hosts) == 0 {
		hosts = DefaultDevHosts()
	}
	for _, h := range hosts {
		if strings.TrimSpace(h) == "" {
			return nil, fmt.Errorf("certs: EnsureDev: %w: empty host", ErrInvalidOptions)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("certs: EnsureDev: %w", err)
	}
	files := devFiles(abs)

	// Fast path without the lock: files that are good stay untouched.
	if st := inspectDev(files, hosts, time.Now()); st.pin != "" {
		files.Pin = st.pin
		return files, nil
	}

	if err := os.MkdirAll(abs, DevDirMode); err != nil {
		return nil, &FileError{Op: "mkdir", File: abs, Err: err}
	}
	unlock, err := lockDir(abs)
	if err != nil {
		return nil, err
	}
	defer unlock()

	// Another process may have done the work while we waited.
	st := inspectDev(files, hosts, time.Now())
	if st.pin != "" {
		files.Pin = st.pin
		return files, nil
	}
	ca := st.ca
	if ca == nil {
		if ca, err = GenerateCA(DevCAName, DefaultCAValidity); err != nil {
			return nil, err
		}
		if err := ca.WriteFiles(files.CAFile, files.CAKeyFile); err != nil {
			return nil, err
		}
	}
	leaf, err := GenerateLeaf(ca, LeafOptions{Hosts: unionHosts(hosts, st.oldHosts)})
	if err != nil {
		return nil, err
	}
	if err := leaf.WriteFiles(files.CertFile, files.KeyFile); err != nil {
		return nil, err
	}
	files.Generated = true
	files.Pin = leaf.Pin()
	return files, nil
}

// devState is what inspectDev found.
type devState struct {
	ca       *KeyPair // usable CA, or nil
	oldHosts []string // hosts of the existing server certificate, if any
	pin      string   // pin of a usable server certificate, or ""
}

// inspectDev checks the files for reuse at time now.
func inspectDev(files *DevFiles, hosts []string, now time.Time) devState {
	var st devState
	if certs, err := readCertificates(files.CertFile); err == nil {
		st.oldHosts = certHosts(certs[0])
	}
	ca, err := readKeyPair(files.CAFile, files.CAKeyFile)
	if err != nil || !ca.Cert.IsCA || !usableAt(ca.Cert, now) {
		return st
	}
	st.ca = ca
	leaf, err := loadKeyPair(files.CertFile, files.KeyFile, now)
	if err != nil || !usableAt(leaf.Leaf, now) || leaf.Leaf.CheckSignatureFrom(ca.Cert) != nil ||
		!slices.Contains(leaf.Leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return st
	}
	for _, h := range hosts {
		if !coversHost(leaf.Leaf, h) {
			return st
		}
	}
	st.pin = PublicKeyPin(leaf.Leaf)
	return st
}

// usableAt reports whether c is valid at now and stays valid for
// DevRenewBefore.
func usableAt(c *x509.Certificate, now time.Time) bool {
	return !now.Before(c.NotBefore) && now.Add(DevRenewBefore).Before(c.NotAfter)
}

func coversHost(c *x509.Certificate, host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return slices.ContainsFunc(c.IPAddresses, ip.Equal)
	}
	return slices.ContainsFunc(c.DNSNames, func(n string) bool { return strings.EqualFold(n, host) })
}

func certHosts(c *x509.Certificate) []string {
	hosts := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	return hosts
}

// unionHosts returns want followed by the entries of have it lacks.
func unionHosts(want, have []string) []string {
	out := slices.Clone(want)
	for _, h := range have {
		if !slices.ContainsFunc(out, func(o string) bool { return sameHost(o, h) }) {
			out = append(out, h)
		}
	}
	return out
}

func sameHost(a, b string) bool {
	ipa, ipb := net.ParseIP(a), net.ParseIP(b)
	if ipa != nil || ipb != nil {
		return ipa.Equal(ipb)
	}
	return strings.EqualFold(a, b)
}

// lockDir takes an exclusive lock on dir by creating a lock file, waiting
// up to devLockTimeout. Lock files older than devLockStale are assumed to be
// left over by a crashed process and removed.
func lockDir(dir string) (unlock func(), err error) {
	name := filepath.Join(dir, devLockFile)
	deadline := time.Now().Add(devLockTimeout)
	wait := time.Millisecond
	for {
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, werr := f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				os.Remove(name)
				return nil, &FileError{Op: "write", File: name, Err: werr}
			}
			return func() { os.Remove(name) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, &FileError{Op: "lock", File: name, Err: err}
		}
		if fi, err := os.Stat(name); err == nil && time.Since(fi.ModTime()) > devLockStale {
			os.Remove(name)
			continue
		}
		if time.Now().After(deadline) {
			return nil, &FileError{Op: "lock", File: name, Err: os.ErrDeadlineExceeded}
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// NewDevClientCert issues a client certificate (extended key usage
// ClientAuth) with common name name, signed by the development CA in dir,
// and writes it to client-<name>.pem and client-<name>-key.pem in dir,
// replacing earlier files of that name. It returns the absolute paths.
// Call [EnsureDev] first; if the CA is missing the error matches
// fs.ErrNotExist. An empty dir means DefaultDevDir. name must be a plain
// file name component.
func NewDevClientCert(dir, name string) (certFile, keyFile string, err error) {
	if name == "" || name == "." || strings.ContainsAny(name, `/\`) || !filepath.IsLocal(name) {
		return "", "", fmt.Errorf("certs: NewDevClientCert: %w: bad name %q", ErrInvalidOptions, name)
	}
	if dir == "" {
		dir = DefaultDevDir
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", fmt.Errorf("certs: NewDevClientCert: %w", err)
	}
	files := devFiles(abs)
	ca, err := readKeyPair(files.CAFile, files.CAKeyFile)
	if err != nil {
		return "", "", err
	}
	if err := checkValidity(ca.Cert, time.Now()); err != nil {
		return "", "", &FileError{Op: "verify", File: files.CAFile, Err: err}
	}
	leaf, err := GenerateLeaf(ca, LeafOptions{CommonName: name, Client: true})
	if err != nil {
		return "", "", err
	}
	certFile = filepath.Join(abs, "client-"+name+".pem")
	keyFile = filepath.Join(abs, "client-"+name+"-key.pem")
	if err := leaf.WriteFiles(certFile, keyFile); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

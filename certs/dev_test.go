package certs

import (
	"crypto/x509"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func readAll(t *testing.T, f *DevFiles) [4][]byte {
	t.Helper()
	var out [4][]byte
	for i, name := range []string{f.CAFile, f.CAKeyFile, f.CertFile, f.KeyFile} {
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		out[i] = b
	}
	return out
}

func TestEnsureDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "dev")
	f, err := EnsureDev(dir, nil)
	require.NoError(t, err)
	require.True(t, f.Generated)
	for _, p := range []string{f.CAFile, f.CAKeyFile, f.CertFile, f.KeyFile} {
		require.True(t, filepath.IsAbs(p), p)
		require.Equal(t, dir, filepath.Dir(p))
	}
	require.Equal(t, DevCertFile, filepath.Base(f.CertFile))

	if runtime.GOOS != "windows" {
		modes := map[string]fs.FileMode{
			dir: DevDirMode, f.CAFile: CertFileMode, f.CertFile: CertFileMode,
			f.CAKeyFile: KeyFileMode, f.KeyFile: KeyFileMode,
		}
		for p, want := range modes {
			fi, err := os.Stat(p)
			require.NoError(t, err)
			require.Equal(t, want, fi.Mode().Perm(), p)
		}
	}

	// The files work: the leaf covers the default hosts and chains to the CA.
	cert, err := LoadKeyPair(f.CertFile, f.KeyFile)
	require.NoError(t, err)
	pool, err := LoadCAPool(f.CAFile)
	require.NoError(t, err)
	for _, h := range DefaultDevHosts() {
		_, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: pool})
		require.NoError(t, err, h)
	}
	pin, err := PinFile(f.CertFile)
	require.NoError(t, err)
	require.Equal(t, pin, f.Pin)

	// Second call reuses everything.
	before := readAll(t, f)
	f2, err := EnsureDev(dir, []string{"127.0.0.1", "localhost"})
	require.NoError(t, err)
	require.False(t, f2.Generated)
	require.Equal(t, f.Pin, f2.Pin)
	require.Equal(t, before, readAll(t, f2))

	// A new host regenerates the leaf but keeps the CA, and keeps old hosts.
	f3, err := EnsureDev(dir, []string{"example.test"})
	require.NoError(t, err)
	require.True(t, f3.Generated)
	require.NotEqual(t, f.Pin, f3.Pin)
	after := readAll(t, f3)
	require.Equal(t, before[0], after[0], "CA certificate kept")
	require.Equal(t, before[1], after[1], "CA key kept")
	require.NotEqual(t, before[2], after[2], "server certificate regenerated")
	cert, err = LoadKeyPair(f3.CertFile, f3.KeyFile)
	require.NoError(t, err)
	for _, h := range append(DefaultDevHosts(), "example.test") {
		_, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: pool})
		require.NoError(t, err, h)
	}

	// Default hosts are still covered, so this reuses.
	f4, err := EnsureDev(dir, nil)
	require.NoError(t, err)
	require.False(t, f4.Generated)
}

func TestEnsureDevRepairs(t *testing.T) {
	dir := t.TempDir()
	f, err := EnsureDev(dir, nil)
	require.NoError(t, err)
	before := readAll(t, f)

	// A corrupt server key regenerates the leaf only.
	require.NoError(t, os.WriteFile(f.KeyFile, []byte("junk"), 0o600))
	f2, err := EnsureDev(dir, nil)
	require.NoError(t, err)
	require.True(t, f2.Generated)
	after := readAll(t, f2)
	require.Equal(t, before[0], after[0])
	_, err = LoadKeyPair(f2.CertFile, f2.KeyFile)
	require.NoError(t, err)

	// A missing CA regenerates everything.
	require.NoError(t, os.Remove(f.CAFile))
	f3, err := EnsureDev(dir, nil)
	require.NoError(t, err)
	require.True(t, f3.Generated)
	require.NotEqual(t, before[0], readAll(t, f3)[0])

	// A leaf expiring within DevRenewBefore is renewed.
	ca, err := readKeyPair(f3.CAFile, f3.CAKeyFile)
	require.NoError(t, err)
	short := mustLeaf(t, ca, LeafOptions{Hosts: DefaultDevHosts(), ValidFor: DevRenewBefore / 2})
	require.NoError(t, short.WriteFiles(f3.CertFile, f3.KeyFile))
	f4, err := EnsureDev(dir, nil)
	require.NoError(t, err)
	require.True(t, f4.Generated)
	require.NotEqual(t, short.Pin(), f4.Pin)

	// A leaf from another CA is replaced.
	foreign := mustLeaf(t, mustCA(t), LeafOptions{Hosts: DefaultDevHosts()})
	require.NoError(t, foreign.WriteFiles(f4.CertFile, f4.KeyFile))
	f5, err := EnsureDev(dir, nil)
	require.NoError(t, err)
	require.True(t, f5.Generated)
}

func TestEnsureDevConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	const n = 8
	var (
		wg      sync.WaitGroup
		results [n]*DevFiles
		errs    [n]error
	)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = EnsureDev(dir, nil) })
	}
	wg.Wait()
	generated := 0
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, results[0].Pin, results[i].Pin)
		if results[i].Generated {
			generated++
		}
	}
	require.Equal(t, 1, generated)
	f, err := EnsureDev(dir, nil)
	require.NoError(t, err)
	require.False(t, f.Generated)
	_, err = os.Stat(filepath.Join(dir, devLockFile))
	require.ErrorIs(t, err, fs.ErrNotExist, "lock released")
}

func TestEnsureDevStaleLock(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, devLockFile)
	require.NoError(t, os.WriteFile(lock, nil, 0o600))
	old := time.Now().Add(-2 * devLockStale)
	require.NoError(t, os.Chtimes(lock, old, old))
	f, err := EnsureDev(dir, nil)
	require.NoError(t, err)
	require.True(t, f.Generated)
}

func TestEnsureDevBadHost(t *testing.T) {
	_, err := EnsureDev(t.TempDir(), []string{"localhost", " "})
	require.ErrorIs(t, err, ErrInvalidOptions)
}

func TestNewDevClientCert(t *testing.T) {
	dir := t.TempDir()
	_, _, err := NewDevClientCert(dir, "alice")
	require.ErrorIs(t, err, fs.ErrNotExist, "no CA yet")

	f, err := EnsureDev(dir, nil)
	require.NoError(t, err)
	certFile, keyFile, err := NewDevClientCert(dir, "alice")
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "client-alice.pem"), certFile)
	cert, err := LoadKeyPair(certFile, keyFile)
	require.NoError(t, err)
	require.Equal(t, "alice", cert.Leaf.Subject.CommonName)
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, cert.Leaf.ExtKeyUsage)
	pool, err := LoadCAPool(f.CAFile)
	require.NoError(t, err)
	_, err = cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err)

	for _, bad := range []string{"", ".", "..", "a/b", `a\b`, "../x"} {
		_, _, err := NewDevClientCert(dir, bad)
		require.ErrorIs(t, err, ErrInvalidOptions, bad)
	}
}

func TestGenerateLeafOptions(t *testing.T) {
	_, err := GenerateLeaf(nil, LeafOptions{})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = GenerateLeaf(nil, LeafOptions{Hosts: []string{"x"}, ValidFor: -time.Second})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = GenerateCA("x", -time.Second)
	require.ErrorIs(t, err, ErrInvalidOptions)

	kp := mustLeaf(t, nil, LeafOptions{Hosts: []string{"h.test", "10.0.0.1", "::1"}})
	require.Equal(t, "h.test", kp.Cert.Subject.CommonName)
	require.Equal(t, []string{"h.test"}, kp.Cert.DNSNames)
	require.Len(t, kp.Cert.IPAddresses, 2)
	require.WithinDuration(t, time.Now().Add(DefaultLeafValidity), kp.Cert.NotAfter, 2*Backdate)

	client := mustLeaf(t, nil, LeafOptions{Client: true})
	require.Equal(t, "quicmsg client", client.Cert.Subject.CommonName)

	ca, err := GenerateCA("ca", 0)
	require.NoError(t, err)
	require.True(t, ca.Cert.IsCA)
	require.WithinDuration(t, time.Now().Add(DefaultCAValidity), ca.Cert.NotAfter, 2*Backdate)
}

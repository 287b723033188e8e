package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadKeyPair(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t)
	leaf := mustLeaf(t, ca, LeafOptions{Hosts: []string{"localhost"}})
	certFile, keyFile := writePair(t, dir, "server", leaf)

	cert, err := LoadKeyPair(certFile, keyFile)
	require.NoError(t, err)
	require.NotNil(t, cert.Leaf)
	require.Equal(t, leaf.Cert.Raw, cert.Leaf.Raw)
	require.Equal(t, [][]byte{leaf.Cert.Raw}, cert.Certificate)

	// A chain file (leaf then CA) keeps its order.
	chainFile := filepath.Join(dir, "chain.pem")
	require.NoError(t, os.WriteFile(chainFile, append(append([]byte{}, leaf.CertPEM...), ca.CertPEM...), 0o644))
	cert, err = LoadKeyPair(chainFile, keyFile)
	require.NoError(t, err)
	require.Equal(t, [][]byte{leaf.Cert.Raw, ca.Cert.Raw}, cert.Certificate)
}

func TestLoadKeyPairErrors(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t)
	good := mustLeaf(t, ca, LeafOptions{Hosts: []string{"localhost"}})
	goodCert, goodKey := writePair(t, dir, "good", good)
	other := mustLeaf(t, ca, LeafOptions{Hosts: []string{"localhost"}})
	_, otherKey := writePair(t, dir, "other", other)
	expired := mustLeaf(t, ca, LeafOptions{Hosts: []string{"localhost"},
		NotBefore: time.Now().Add(-48 * time.Hour), ValidFor: time.Hour})
	expiredCert, expiredKey := writePair(t, dir, "expired", expired)
	future := mustLeaf(t, ca, LeafOptions{Hosts: []string{"localhost"},
		NotBefore: time.Now().Add(time.Hour), ValidFor: time.Hour})
	futureCert, futureKey := writePair(t, dir, "future", future)

	notPEM := filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello, world\n"), 0o644))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name      string
		cert, key string
		file      string // expected FileError.File
		want      error
	}{
		{"missing cert", missing, goodKey, missing, fs.ErrNotExist},
		{"missing key", goodCert, missing, missing, fs.ErrNotExist},
		{"cert not PEM", notPEM, goodKey, notPEM, ErrNotPEM},
		{"key not PEM", goodCert, notPEM, notPEM, ErrNotPEM},
		{"key in cert file", goodKey, goodKey, goodKey, ErrNoCertificates},
		{"cert in key file", goodCert, goodCert, goodCert, ErrNoPrivateKey},
		{"key mismatch", goodCert, otherKey, otherKey, ErrKeyMismatch},
		{"expired", expiredCert, expiredKey, expiredCert, ErrExpired},
		{"not yet valid", futureCert, futureKey, futureCert, ErrNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadKeyPair(tt.cert, tt.key)
			require.ErrorIs(t, err, tt.want)
			var fe *FileError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tt.file, fe.File)
			require.Contains(t, err.Error(), "certs: ")
			require.Contains(t, err.Error(), tt.file)
		})
	}

	_, err := LoadKeyPair(expiredCert, expiredKey)
	var ve *ValidityError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, expired.Cert.NotAfter, ve.NotAfter)
	require.Contains(t, err.Error(), "certificate expired at "+expired.Cert.NotAfter.UTC().Format(time.RFC3339))
	require.False(t, errors.Is(err, ErrNotYetValid))

	_, err = LoadKeyPair(futureCert, futureKey)
	require.Contains(t, err.Error(), "certificate not valid before")
}

func TestLoadKeyPairFormats(t *testing.T) {
	// SEC 1 ("EC PRIVATE KEY") keys, as written by openssl, work too, and
	// so do self-signed certificates.
	dir := t.TempDir()
	leaf := mustLeaf(t, nil, LeafOptions{Hosts: []string{"localhost"}})
	certFile, _ := writePair(t, dir, "self", leaf)
	ecKeyFile := filepath.Join(dir, "ec-key.pem")
	require.NoError(t, os.WriteFile(ecKeyFile, ecPEM(t, leaf), 0o600))
	cert, err := LoadKeyPair(certFile, ecKeyFile)
	require.NoError(t, err)
	_, err = tls.X509KeyPair(leaf.CertPEM, ecPEM(t, leaf))
	require.NoError(t, err)
	require.True(t, cert.Leaf.Equal(leaf.Cert))
}

func TestLoadCAPool(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2 := mustCA(t), mustCA(t)
	f1, _ := writePair(t, dir, "ca1", ca1)
	f2, _ := writePair(t, dir, "ca2", ca2)
	pool, err := LoadCAPool(f1, f2)
	require.NoError(t, err)
	want := x509.NewCertPool()
	want.AddCert(ca1.Cert)
	want.AddCert(ca2.Cert)
	require.True(t, pool.Equal(want))

	_, err = LoadCAPool()
	require.ErrorIs(t, err, ErrNoCertificates)

	_, err = LoadCAPool(f1, filepath.Join(dir, "nope.pem"))
	require.ErrorIs(t, err, fs.ErrNotExist)
	var fe *FileError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "read", fe.Op)

	bad := filepath.Join(dir, "bad.pem")
	require.NoError(t, os.WriteFile(bad, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644))
	_, err = LoadCAPool(bad)
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "parse", fe.Op)
	require.Equal(t, bad, fe.File)
}

func ecPEM(t *testing.T, kp *KeyPair) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(kp.Key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

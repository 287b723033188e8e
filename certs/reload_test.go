package certs

import (
	"crypto/tls"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReloader(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t)
	first := mustLeaf(t, ca, LeafOptions{Hosts: []string{"localhost"}})
	certFile, keyFile := writePair(t, dir, "server", first)

	r, err := NewReloader(certFile, keyFile)
	require.NoError(t, err)
	got, err := r.GetCertificate(nil)
	require.NoError(t, err)
	require.True(t, got.Leaf.Equal(first.Cert))

	srv := mustServer(t, ServerOptions{Reloader: r})
	caFile, _ := writePair(t, dir, "ca", ca)
	cli := mustClient(t, ClientOptions{CAFile: caFile, ServerName: "localhost"})
	res := handshake(t, srv, cli)
	require.NoError(t, res.client)
	require.Equal(t, first.Pin(), PublicKeyPin(res.state.PeerCertificates[0]))

	// Swap in a new certificate.
	second := mustLeaf(t, ca, LeafOptions{Hosts: []string{"localhost"}})
	require.NoError(t, second.WriteFiles(certFile, keyFile))
	require.NoError(t, r.Reload())
	require.True(t, r.Certificate().Leaf.Equal(second.Cert))
	res = handshake(t, srv, cli)
	require.NoError(t, res.client)
	require.Equal(t, second.Pin(), PublicKeyPin(res.state.PeerCertificates[0]))

	// Bad input keeps the old certificate: garbage, mismatched key, expired.
	require.NoError(t, os.WriteFile(certFile, []byte("garbage"), 0o644))
	require.ErrorIs(t, r.Reload(), ErrNotPEM)
	require.True(t, r.Certificate().Leaf.Equal(second.Cert))

	require.NoError(t, os.WriteFile(certFile, first.CertPEM, 0o644))
	require.ErrorIs(t, r.Reload(), ErrKeyMismatch)
	require.True(t, r.Certificate().Leaf.Equal(second.Cert))

	expired := mustLeaf(t, ca, LeafOptions{Hosts: []string{"localhost"}, NotBefore: time.Now().Add(-2 * time.Hour), ValidFor: time.Hour})
	require.NoError(t, expired.WriteFiles(certFile, keyFile))
	require.ErrorIs(t, r.Reload(), ErrExpired)
	require.True(t, r.Certificate().Leaf.Equal(second.Cert))

	res = handshake(t, srv, cli)
	require.NoError(t, res.client)
	require.Equal(t, second.Pin(), PublicKeyPin(res.state.PeerCertificates[0]))

	_, err = NewReloader(certFile, keyFile)
	require.ErrorIs(t, err, ErrExpired)
}

func TestReloaderConcurrent(t *testing.T) {
	dir := t.TempDir()
	kp := mustLeaf(t, nil, LeafOptions{Hosts: []string{"localhost"}})
	certFile, keyFile := writePair(t, dir, "server", kp)
	r, err := NewReloader(certFile, keyFile)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				c, _ := r.GetCertificate(&tls.ClientHelloInfo{})
				if c == nil {
					t.Error("nil certificate")
				}
			}
		})
		wg.Go(func() {
			for range 5 {
				if err := r.Reload(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

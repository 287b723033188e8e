package udpproxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"
)

// selfSignedTLS returns a server and a client TLS 1.3 config sharing a fresh
// self-signed ECDSA certificate for 127.0.0.1.
func selfSignedTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "udpproxy test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
		NextProtos:   []string{"test"},
		MinVersion:   tls.VersionTLS13,
	}
	client = &tls.Config{
		RootCAs:    pool,
		ServerName: "127.0.0.1",
		NextProtos: []string{"test"},
		MinVersion: tls.VersionTLS13,
	}
	return server, client
}

func TestQUICThroughProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	serverTLS, clientTLS := selfSignedTLS(t)
	ln, err := quic.ListenAddr("127.0.0.1:0", serverTLS, &quic.Config{MaxIdleTimeout: 10 * time.Second})
	require.NoError(t, err)
	defer ln.Close()

	p, err := New(ln.Addr().String(), WithSeed(7))
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()
	p.SetDelay(Both, 10*time.Millisecond)
	p.SetDropRate(Both, 0.02)

	// Echo server: echo the first stream of the first connection.
	serverErr := make(chan error, 1)
	go func() {
		serverErr <- func() error {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return err
			}
			defer conn.CloseWithError(0, "")
			str, err := conn.AcceptStream(ctx)
			if err != nil {
				return err
			}
			if _, err := io.Copy(str, str); err != nil {
				return err
			}
			if err := str.Close(); err != nil {
				return err
			}
			// Keep the connection open until the client has closed it, so
			// the echoed tail is not cut off.
			<-conn.Context().Done()
			return nil
		}()
	}()

	conn, err := quic.DialAddr(ctx, p.Addr().String(), clientTLS, &quic.Config{MaxIdleTimeout: 10 * time.Second})
	require.NoError(t, err)
	str, err := conn.OpenStreamSync(ctx)
	require.NoError(t, err)
	for i := range 10 {
		msg := []byte(fmt.Sprintf("message %d: %s", i, make([]byte, 4000*i)))
		_, err := str.Write(msg)
		require.NoError(t, err)
		got := make([]byte, len(msg))
		_, err = io.ReadFull(str, got)
		require.NoError(t, err)
		require.Equal(t, msg, got)
	}
	require.NoError(t, str.Close())
	rest, err := io.ReadAll(str)
	require.NoError(t, err)
	require.Empty(t, rest)
	// Heal the link so the CONNECTION_CLOSE reaches the server.
	p.SetDropRate(Both, 0)
	require.NoError(t, conn.CloseWithError(0, ""))
	require.NoError(t, <-serverErr)

	s := p.Stats()
	require.Positive(t, s.ToServer.Forwarded)
	require.Positive(t, s.ToClient.Forwarded)
	require.Positive(t, s.ToServer.Delayed)
	require.Positive(t, s.ToClient.Delayed)
	t.Logf("stats: %+v", s)
}

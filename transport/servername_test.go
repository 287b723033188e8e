package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/certs"
)

// A client whose tls.Config names no server is verified against the host
// it dials, as crypto/tls and quic.DialAddr do: a certificate with only a
// DNS name works when dialled by that name, with Dial and with DialEarly.
func TestDialVerifiesTheHostDialledWhenServerNameIsEmpty(t *testing.T) {
	ca, err := certs.GenerateCA("servername test CA", time.Hour)
	require.NoError(t, err)
	leaf, err := certs.GenerateLeaf(ca, certs.LeafOptions{Hosts: []string{"localhost"}, ValidFor: time.Hour})
	require.NoError(t, err)
	ln, err := Listen("localhost:0", &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	addr := fmt.Sprintf("localhost:%d", ln.Addr().(*net.UDPAddr).Port)
	ctx := testCtx(t)
	for name, dial := range map[string]func() (*Conn, error){
		"Dial":      func() (*Conn, error) { return Dial(ctx, addr, &tls.Config{RootCAs: roots}, nil) },
		"DialEarly": func() (*Conn, error) { return DialEarly(ctx, addr, &tls.Config{RootCAs: roots}, nil) },
	} {
		c, err := dial()
		require.NoError(t, err, name)
		require.NoError(t, c.WaitReady(ctx), name)
		require.NoError(t, c.CloseWithError(CodeNoError, ""))
	}
}

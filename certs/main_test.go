package certs

import (
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustCA(t *testing.T) *KeyPair {
	t.Helper()
	ca, err := GenerateCA("test CA", time.Hour)
	require.NoError(t, err)
	return ca
}

func mustLeaf(t *testing.T, ca *KeyPair, opts LeafOptions) *KeyPair {
	t.Helper()
	kp, err := GenerateLeaf(ca, opts)
	require.NoError(t, err)
	return kp
}

// writePair writes kp as <name>.pem and <name>-key.pem in dir.
func writePair(t *testing.T, dir, name string, kp *KeyPair) (certFile, keyFile string) {
	t.Helper()
	certFile = filepath.Join(dir, name+".pem")
	keyFile = filepath.Join(dir, name+"-key.pem")
	require.NoError(t, kp.WriteFiles(certFile, keyFile))
	return certFile, keyFile
}

type handshakeResult struct {
	server, client error
	state          tls.ConnectionState // client side, valid if client == nil
}

// handshake runs a TLS handshake over loopback TCP. The server writes "ok"
// after its handshake and the client reads it, so a client certificate
// rejected by the server (reported after the client's handshake completes in
// TLS 1.3) shows up as a client error too.
func handshake(t *testing.T, srvCfg, cliCfg *tls.Config) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()

	deadline := time.Now().Add(5 * time.Second)
	srvDone := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvDone <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		tc := tls.Server(c, srvCfg)
		if err := tc.Handshake(); err != nil {
			srvDone <- err
			return
		}
		_, err = tc.Write([]byte("ok"))
		srvDone <- err
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(deadline)
	tc := tls.Client(c, cliCfg)
	var res handshakeResult
	res.client = tc.Handshake()
	if res.client == nil {
		var buf [2]byte
		_, res.client = io.ReadFull(tc, buf[:])
		res.state = tc.ConnectionState()
	}
	if res.client != nil {
		c.Close() // unblock the server
	}
	res.server = <-srvDone
	return res
}

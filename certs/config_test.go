package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type testPKI struct {
	dir              string
	ca               *KeyPair
	caFile           string
	srvCert, srvKey  string
	server           *KeyPair
	cliCert, cliKey  string
	selfSigned       *KeyPair
	selfCert, selfKy string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), ca: mustCA(t)}
	p.caFile, _ = writePair(t, p.dir, "ca", p.ca)
	p.server = mustLeaf(t, p.ca, LeafOptions{Hosts: []string{"localhost", "127.0.0.1"}})
	p.srvCert, p.srvKey = writePair(t, p.dir, "server", p.server)
	p.cliCert, p.cliKey = writePair(t, p.dir, "client", mustLeaf(t, p.ca, LeafOptions{Client: true, CommonName: "alice"}))
	p.selfSigned = mustLeaf(t, nil, LeafOptions{Hosts: []string{"self.test"}})
	p.selfCert, p.selfKy = writePair(t, p.dir, "self", p.selfSigned)
	return p
}

func mustServer(t *testing.T, opts ServerOptions) *tls.Config {
	t.Helper()
	cfg, err := ServerConfig(opts)
	require.NoError(t, err)
	require.Equal(t, uint16(tls.VersionTLS13), cfg.MinVersion)
	return cfg
}

func mustClient(t *testing.T, opts ClientOptions) *tls.Config {
	t.Helper()
	cfg, err := ClientConfig(opts)
	require.NoError(t, err)
	require.Equal(t, uint16(tls.VersionTLS13), cfg.MinVersion)
	return cfg
}

func TestHandshakeVerified(t *testing.T) {
	p := newTestPKI(t)
	srv := mustServer(t, ServerOptions{CertFile: p.srvCert, KeyFile: p.srvKey, NextProtos: []string{"quicmsg"}})
	res := handshake(t, srv, mustClient(t, ClientOptions{CAFile: p.caFile, ServerName: "localhost", NextProtos: []string{"quicmsg"}}))
	require.NoError(t, res.client)
	require.NoError(t, res.server)
	require.Equal(t, uint16(tls.VersionTLS13), res.state.Version)
	require.Equal(t, "quicmsg", res.state.NegotiatedProtocol)

	// RootCAs works like CAFile, and CA + pin both passing is fine.
	pool, err := LoadCAPool(p.caFile)
	require.NoError(t, err)
	res = handshake(t, srv, mustClient(t, ClientOptions{RootCAs: pool, ServerName: "127.0.0.1", PinSHA256: p.server.Pin()}))
	require.NoError(t, res.client)
	require.NoError(t, res.server)
}

func TestHandshakeUnknownCA(t *testing.T) {
	p := newTestPKI(t)
	srv := mustServer(t, ServerOptions{CertFile: p.srvCert, KeyFile: p.srvKey})

	// No CA: system roots, which do not know the test CA.
	res := handshake(t, srv, mustClient(t, ClientOptions{ServerName: "localhost"}))
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, res.client, &unknown)
	require.Error(t, res.server)

	// Right pin, wrong CA: chain verification still applies.
	other := mustCA(t)
	otherFile, _ := writePair(t, p.dir, "other-ca", other)
	res = handshake(t, srv, mustClient(t, ClientOptions{CAFile: otherFile, ServerName: "localhost", PinSHA256: p.server.Pin()}))
	require.ErrorAs(t, res.client, &unknown)

	// Wrong name.
	res = handshake(t, srv, mustClient(t, ClientOptions{CAFile: p.caFile, ServerName: "evil.test"}))
	var hostErr x509.HostnameError
	require.ErrorAs(t, res.client, &hostErr)
}

func TestHandshakePin(t *testing.T) {
	p := newTestPKI(t)
	srv := mustServer(t, ServerOptions{CertFile: p.selfCert, KeyFile: p.selfKy})

	// Pin only: self-signed certificate, no name needed; every pin form.
	sum := p.selfSigned.Pin()[len(PinPrefix):]
	for _, pin := range []string{p.selfSigned.Pin(), "sha256//" + sum, sum} {
		res := handshake(t, srv, mustClient(t, ClientOptions{PinSHA256: pin}))
		require.NoError(t, res.client, pin)
		require.NoError(t, res.server, pin)
	}

	// Pin mismatch.
	res := handshake(t, srv, mustClient(t, ClientOptions{PinSHA256: p.server.Pin(), ServerName: "self.test"}))
	var pm *PinMismatchError
	require.ErrorAs(t, res.client, &pm)
	require.Equal(t, p.server.Pin(), pm.Want)
	require.Equal(t, p.selfSigned.Pin(), pm.Got)
	require.Error(t, res.server)

	// CA + wrong pin: the chain verifies but the pin does not match.
	srv2 := mustServer(t, ServerOptions{CertFile: p.srvCert, KeyFile: p.srvKey})
	res = handshake(t, srv2, mustClient(t, ClientOptions{CAFile: p.caFile, ServerName: "localhost", PinSHA256: p.selfSigned.Pin()}))
	require.ErrorAs(t, res.client, &pm)

	// InsecureSkipVerify with a pin still enforces the pin.
	res = handshake(t, srv, mustClient(t, ClientOptions{InsecureSkipVerify: true, PinSHA256: p.server.Pin()}))
	require.ErrorAs(t, res.client, &pm)
	res = handshake(t, srv, mustClient(t, ClientOptions{InsecureSkipVerify: true}))
	require.NoError(t, res.client)
}

func TestHandshakePinExpired(t *testing.T) {
	// Pin-only mode checks the validity period that chain verification
	// would otherwise check. ServerConfig refuses expired certificates, so
	// build the server config by hand.
	expired := mustLeaf(t, nil, LeafOptions{Hosts: []string{"x.test"}, NotBefore: time.Now().Add(-2 * time.Hour), ValidFor: time.Hour})
	srv := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{expired.TLSCertificate()}}
	res := handshake(t, srv, mustClient(t, ClientOptions{PinSHA256: expired.Pin()}))
	require.ErrorIs(t, res.client, ErrExpired)
	var ve *ValidityError
	require.ErrorAs(t, res.client, &ve)

	_, err := ServerConfig(ServerOptions{Certificate: new(expired.TLSCertificate())})
	require.ErrorIs(t, err, ErrExpired)
}

func TestHandshakeMutualTLS(t *testing.T) {
	p := newTestPKI(t)
	srv := mustServer(t, ServerOptions{CertFile: p.srvCert, KeyFile: p.srvKey, ClientCAFile: p.caFile})
	require.Equal(t, tls.RequireAndVerifyClientCert, srv.ClientAuth)

	// No client certificate.
	res := handshake(t, srv, mustClient(t, ClientOptions{CAFile: p.caFile, ServerName: "localhost"}))
	require.Error(t, res.server)
	require.Error(t, res.client)

	// Client certificate from another CA.
	foreign := mustLeaf(t, mustCA(t), LeafOptions{Client: true})
	res = handshake(t, srv, mustClient(t, ClientOptions{CAFile: p.caFile, ServerName: "localhost", Certificate: new(foreign.TLSCertificate())}))
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, res.server, &unknown)
	require.Error(t, res.client)

	// Valid client certificate.
	res = handshake(t, srv, mustClient(t, ClientOptions{CAFile: p.caFile, ServerName: "localhost", CertFile: p.cliCert, KeyFile: p.cliKey}))
	require.NoError(t, res.client)
	require.NoError(t, res.server)
	require.Len(t, res.state.PeerCertificates, 1)

	// ClientCAs pool works like ClientCAFile.
	pool, err := LoadCAPool(p.caFile)
	require.NoError(t, err)
	srv = mustServer(t, ServerOptions{CertFile: p.srvCert, KeyFile: p.srvKey, ClientCAs: pool})
	require.Equal(t, tls.RequireAndVerifyClientCert, srv.ClientAuth)
}

func TestHandshakeRefusesTLS12(t *testing.T) {
	p := newTestPKI(t)
	srv := mustServer(t, ServerOptions{CertFile: p.srvCert, KeyFile: p.srvKey})
	cli := mustClient(t, ClientOptions{CAFile: p.caFile, ServerName: "localhost"})
	require.NoError(t, handshake(t, srv, cli).client, "control")
	cli.MinVersion, cli.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	res := handshake(t, srv, cli)
	require.Error(t, res.client)
	require.Error(t, res.server)
}

func TestKeyLogWriter(t *testing.T) {
	p := newTestPKI(t)
	var buf bytes.Buffer
	srv := mustServer(t, ServerOptions{CertFile: p.srvCert, KeyFile: p.srvKey})
	res := handshake(t, srv, mustClient(t, ClientOptions{CAFile: p.caFile, ServerName: "localhost", KeyLogWriter: &buf}))
	require.NoError(t, res.client)
	require.Contains(t, buf.String(), "CLIENT_HANDSHAKE_TRAFFIC_SECRET")
}

func TestConfigOptionErrors(t *testing.T) {
	p := newTestPKI(t)
	cert := p.server.TLSCertificate()
	pool, err := LoadCAPool(p.caFile)
	require.NoError(t, err)

	for name, opts := range map[string]ServerOptions{
		"no certificate":    {},
		"two sources":       {CertFile: p.srvCert, KeyFile: p.srvKey, Certificate: &cert},
		"cert without key":  {CertFile: p.srvCert},
		"client CA twice":   {Certificate: &cert, ClientCAFile: p.caFile, ClientCAs: pool},
		"empty certificate": {Certificate: &tls.Certificate{}},
	} {
		_, err := ServerConfig(opts)
		require.ErrorIs(t, err, ErrInvalidOptions, name)
	}
	for name, opts := range map[string]ClientOptions{
		"CA twice":             {CAFile: p.caFile, RootCAs: pool},
		"insecure with CA":     {CAFile: p.caFile, InsecureSkipVerify: true},
		"key without cert":     {KeyFile: p.cliKey},
		"cert file and struct": {CertFile: p.cliCert, KeyFile: p.cliKey, Certificate: &cert},
	} {
		_, err := ClientConfig(opts)
		require.ErrorIs(t, err, ErrInvalidOptions, name)
	}
	_, err = ClientConfig(ClientOptions{PinSHA256: "sha256/nope"})
	require.ErrorIs(t, err, ErrInvalidPin)

	_, err = ServerConfig(ServerOptions{CertFile: p.srvCert, KeyFile: p.cliKey})
	require.ErrorIs(t, err, ErrKeyMismatch)
	_, err = ClientConfig(ClientOptions{CAFile: p.dir + "/missing.pem"})
	var fe *FileError
	require.ErrorAs(t, err, &fe)
}

package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/certs"
)

// issueClientCert runs quicsrv -dev-client-cert name in devDir and returns
// the files it printed.
func issueClientCert(t *testing.T, devDir, name string) (certFile, keyFile, caFile string) {
	t.Helper()
	p := start(t, quicsrvBin, "-dev-certs", devDir, "-dev-client-cert", name)
	require.Equal(t, 0, p.wait(t))
	m := regexp.MustCompile(`^client certificate: (.+)\nclient key: (.+)\nsigned by \(use with -client-ca\): (.+)\n$`).FindStringSubmatch(p.stdout.String())
	require.NotNil(t, m, "unexpected output %q", p.stdout.String())
	return m[1], m[2], m[3]
}

func TestMutualTLSRefusesAClientWithoutACertificateAndAcceptsOneWithIt(t *testing.T) {
	devDir := t.TempDir()
	cert, key, ca := issueClientCert(t, devDir, "alice")
	require.Equal(t, filepath.Join(devDir, "client-alice.pem"), cert)
	s := startServerIn(t, devDir, "-client-ca", ca)
	require.Contains(t, s.stdout.String(), "mutual TLS: clients need a certificate signed by "+ca)

	r := runQuiccli(t, s.client("send", "chat", "no certificate")...)
	require.Equal(t, 3, r.code, "cannot connect: %s", r.stderr)
	require.Contains(t, r.stderr, "requires a client certificate (mutual TLS); pass -cert and -key")

	otherCert, otherKey, _ := issueClientCert(t, t.TempDir(), "mallory")
	r = runQuiccli(t, s.client("-cert", otherCert, "-key", otherKey, "send", "chat", "wrong CA")...)
	require.Equal(t, 3, r.code, "cannot connect: %s", r.stderr)
	require.Contains(t, r.stderr, "refused the client certificate "+otherCert)

	listener := s.quiccli(t, "-cert", cert, "-key", key, "listen", "-count", "1", "chat")
	s.waitSubscriptions(t, 1)
	requireQuiccli(t, s.client("-cert", cert, "-key", key, "send", "chat", "with a certificate")...)
	require.Equal(t, 0, listener.wait(t))
	require.Equal(t, "with a certificate\n", listener.stdout.String(), "only the message sent with a certificate arrived")

	s.waitMetric(t, 2, "quicmsg_listener_handshake_failures_total")
	require.Equal(t, 2.0, metricValue(s.scrape(t), "quicmsg_sessions_accepted_total"), "only the clients with a certificate")
}

// writeSelfSigned writes a new self-signed server certificate for 127.0.0.1
// to certFile and keyFile and returns it.
func writeSelfSigned(t *testing.T, certFile, keyFile string) *certs.KeyPair {
	t.Helper()
	kp, err := certs.GenerateLeaf(nil, certs.LeafOptions{Hosts: []string{"127.0.0.1", "localhost"}})
	require.NoError(t, err)
	require.NoError(t, kp.WriteFiles(certFile, keyFile))
	return kp
}

func TestCertificateReloadReachesNewClientsWhileAnOldListenerKeepsReceiving(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	first := writeSelfSigned(t, certFile, keyFile)
	s := startServer(t, "-cert", certFile, "-key", keyFile, "-reload-interval", "0")
	require.Equal(t, first.Pin(), s.pin)
	require.Contains(t, s.stdout.String(), "certificate: "+certFile)
	// Self-signed: clients authenticate the server by its key pin alone.
	pinned := func(pin string, args ...string) []string {
		return append([]string{"-addr", s.addr, "-pin", pin}, args...)
	}

	old := start(t, quiccliBin, pinned(first.Pin(), "listen", "-count", "2", "chat")...)
	s.waitSubscriptions(t, 1)
	requireQuiccli(t, pinned(first.Pin(), "send", "chat", "before the reload")...)
	old.waitLines(t, 1)

	second := writeSelfSigned(t, certFile, keyFile)
	require.NotEqual(t, first.Pin(), second.Pin())
	s.signal(t, syscall.SIGHUP)
	s.waitOutput(t, "the reload to be logged", func(_, stderr string) bool {
		return strings.Contains(stderr, "certificate reloaded") && strings.Contains(stderr, second.Pin())
	})

	r := runQuiccli(t, pinned(first.Pin(), "send", "chat", "to the old key")...)
	require.Equal(t, 3, r.code, "a new client gets the new certificate: %s", r.stderr)
	require.Contains(t, r.stderr, "has pin "+second.Pin()+", not "+first.Pin())
	requireQuiccli(t, pinned(second.Pin(), "send", "chat", "after the reload")...)

	require.Equal(t, 0, old.wait(t))
	require.Equal(t, "before the reload\nafter the reload\n", old.stdout.String(),
		"the session made before the reload carries on")
	require.NotContains(t, old.stderr.String(), "lost the connection")
}

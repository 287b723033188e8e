package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/transport"
)

// freeUDPAddr returns an address of 127.0.0.1 on which nothing listens.
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := pc.LocalAddr().String()
	require.NoError(t, pc.Close())
	return addr
}

// withoutDevCA makes the default development CA file absent.
func withoutDevCA(t *testing.T) {
	old := devCAFile
	devCAFile = filepath.Join(t.TempDir(), "no-ca.pem")
	t.Cleanup(func() { devCAFile = old })
}

func TestNoServerAsksWhetherQuicsrvIsRunning(t *testing.T) {
	addr := freeUDPAddr(t)
	for _, cmd := range [][]string{{"send", "chat", "hi"}, {"listen", "chat"}, {"ping"}, {"bench"}} {
		got := runCLI(t, nil, append([]string{"-addr", addr, "-insecure", "-timeout", "300ms"}, cmd...)...)
		require.Equal(t, exitConnect, got.code, cmd)
		require.Equal(t, "no answer from "+addr+" within 300ms; is quicsrv running?", got.err.Error(), cmd)
		require.ErrorIs(t, got.err, transport.ErrNoAnswer)
	}
}

func TestUntrustedServerCertificateSaysPassCA(t *testing.T) {
	ts := startServer(t, serverOptions{})
	other, err := certs.GenerateCA("some other CA", time.Hour)
	require.NoError(t, err)
	otherCA := writeCA(t, other)

	got := runCLI(t, nil, "-addr", ts.addr, "-ca", otherCA, "send", "chat", "hi")
	require.Equal(t, exitConnect, got.code)
	require.ErrorIs(t, got.err, transport.ErrUntrusted)
	require.Equal(t, "the certificate of the server at "+ts.addr+" is not trusted by "+otherCA+"; pass -ca <file printed by quicsrv> (or -pin <pin printed by quicsrv>)", got.err.Error())
}

func TestInsecureIsRefusedUnlessGivenAndWarnsWhenGiven(t *testing.T) {
	withoutDevCA(t)
	ts := startServer(t, serverOptions{})

	// No -ca, no development CA: the system roots do not know the test CA,
	// and quiccli does not fall back to skipping verification.
	got := runCLI(t, nil, "-addr", ts.addr, "ping", "-count", "1")
	require.Equal(t, exitConnect, got.code)
	require.ErrorIs(t, got.err, transport.ErrUntrusted)
	require.Contains(t, got.err.Error(), "is not trusted by the system roots; pass -ca <file printed by quicsrv>")

	got = runCLI(t, nil, "-addr", ts.addr, "-insecure", "ping", "-count", "1", "-interval", "0")
	require.NoError(t, got.err)
	require.Contains(t, got.stderr, "WARNING: -insecure: the certificate of "+ts.addr+" is NOT verified")

	got = runCLI(t, nil, "-addr", ts.addr, "-insecure", "-ca", ts.caFile, "ping")
	require.Equal(t, exitUsage, got.code)
	require.Contains(t, got.err.Error(), "-insecure and -ca exclude each other")
	got = runCLI(t, nil, "-addr", ts.addr, "-insecure", "-pin", ts.pin, "ping")
	require.Equal(t, exitUsage, got.code)
}

func TestPinAuthenticatesTheServerAndAMismatchShowsBothPins(t *testing.T) {
	withoutDevCA(t)
	ts := startServer(t, serverOptions{})
	got := runCLI(t, nil, "-addr", ts.addr, "-pin", ts.pin, "ping", "-count", "1")
	require.NoError(t, got.err, got.stderr)

	other, err := certs.GenerateCA("other key", time.Hour)
	require.NoError(t, err)
	got = runCLI(t, nil, "-addr", ts.addr, "-pin", other.Pin(), "ping", "-count", "1")
	require.Equal(t, exitConnect, got.code)
	var pm *certs.PinMismatchError
	require.ErrorAs(t, got.err, &pm)
	require.Equal(t, "the key of the server at "+ts.addr+" has pin "+ts.pin+", not "+other.Pin()+" given with -pin; pass the pin quicsrv prints", got.err.Error())
}

func TestMutualTLSNeedsAClientCertificate(t *testing.T) {
	ca, _ := testPKI(t)
	caFile := writeCA(t, ca)
	ts := startServer(t, serverOptions{relay: true, clientCAFile: caFile})

	for _, cmd := range [][]string{{"send", "chat", "hi"}, {"ping"}} {
		got := runCLI(t, nil, ts.args(cmd...)...)
		require.Equal(t, exitConnect, got.code, "%v: %v", cmd, got.err)
		require.Equal(t, "the server at "+ts.addr+" requires a client certificate (mutual TLS); pass -cert and -key", got.err.Error(), cmd)
	}

	leaf, err := certs.GenerateLeaf(ca, certs.LeafOptions{Client: true, ValidFor: time.Hour})
	require.NoError(t, err)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	require.NoError(t, leaf.WriteFiles(cert, key))
	got := runCLI(t, nil, ts.args("-cert", cert, "-key", key, "send", "chat", "hi")...)
	require.NoError(t, got.err, got.stderr)

	got = runCLI(t, nil, ts.args("-cert", cert, "send", "chat", "hi")...)
	require.Equal(t, exitUsage, got.code)
	require.Equal(t, "-cert and -key go together", got.err.Error())
}

func TestWrongProtocolIsNamed(t *testing.T) {
	_, leaf := testPKI(t)
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{leaf.TLSCertificate()},
		NextProtos:   []string{"h3"},
	}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, ln.Close()) })
	ca, _ := testPKI(t)

	got := runCLI(t, nil, "-addr", ln.Addr().String(), "-ca", writeCA(t, ca), "ping")
	require.Equal(t, exitConnect, got.code)
	require.ErrorIs(t, got.err, transport.ErrProtocol)
	require.Equal(t, "the server at "+ln.Addr().String()+" does not speak the quicmsg/1 protocol; is -addr the address of a quicsrv?", got.err.Error())
}

func TestMessageTooLargeNamesTheLimitAndSendsNothing(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true, maxMessageSize: 1000})
	_, wait := startCLI(t, nil, ts.args("listen", "-count", "2", "chat")...)
	ts.waitSubscribers(t, "chat", 1)

	got := runCLI(t, nil, ts.args("send", "chat", "fits", strings.Repeat("x", 2000))...)
	require.Equal(t, exitError, got.code)
	var tl *transport.MessageTooLargeError
	require.ErrorAs(t, got.err, &tl)
	require.Equal(t, 1000, tl.Limit)
	require.Equal(t, "message 2 is 2000 bytes, larger than the server's limit of 1000 bytes (quicsrv -max-message-size); nothing was sent", got.err.Error())

	// From stdin, the lines before the long one are delivered.
	got = runCLI(t, strings.NewReader("before\n"+strings.Repeat("y", 1001)+"\nafter\n"), ts.args("send", "chat")...)
	require.Equal(t, exitError, got.code)
	require.ErrorIs(t, got.err, errLineTooLong)
	require.Equal(t, "line 2 is 1001 bytes: line too long, more than the server's limit of 1000 bytes (quicsrv -max-message-size); the 1 lines before it were sent", got.err.Error())

	require.NoError(t, runCLI(t, nil, ts.args("send", "chat", "end")...).err)
	listened := wait()
	require.Equal(t, "before\nend\n", listened.stdout, "nothing of the refused argument list arrived")
}

func TestUsageErrorsExitWithStatus2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"fly"}, `unknown command "fly"`},
		{[]string{"send"}, "send needs a CHANNEL"},
		{[]string{"listen"}, "listen needs at least one CHANNEL"},
		{[]string{"chat", "a", "b"}, "chat needs exactly one CHANNEL"},
		{[]string{"ping", "extra"}, "ping takes no arguments"},
		{[]string{"bench", "-mode", "fast"}, `-mode must be oneway, echo or request, not "fast"`},
		{[]string{"bench", "-size", "4"}, "-size must be between 9 and"},
		{[]string{"bench", "-conns", "100", "-channels", "100"}, "-conns x -channels must be at most 1000"},
		{[]string{"listen", "-count", "-1", "x"}, "-count must not be negative"},
		{[]string{"-retries", "0", "send", "x", "y"}, "-retries must be positive"},
		{[]string{"send", strings.Repeat("n", 256), "m"}, "want 1 to 255 bytes of UTF-8"},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
		{[]string{"ping", "-nope"}, "flag provided but not defined: -nope"},
	} {
		got := runCLI(t, nil, tc.args...)
		require.Equal(t, exitUsage, got.code, "%q: %v", tc.args, got.err)
		require.Contains(t, got.err.Error(), tc.want, tc.args)
	}
}

func TestHelpExitsZeroAndDocumentsCommandsAndFlags(t *testing.T) {
	got := runCLI(t, nil, "-h")
	require.ErrorIs(t, got.err, flag.ErrHelp)
	require.Equal(t, exitOK, got.code)
	for _, want := range []string{"send CHANNEL [MESSAGE...]", "listen CHANNEL...", "chat CHANNEL", "ping", "bench", "-addr", "-ca", "-cert", "-key", "-pin", "-insecure", "-json", "-timeout", "-retries", "Exit status", "QUICMSG_ADDR", "context"} {
		require.Contains(t, got.stderr, want)
	}

	got = runCLI(t, nil, "bench", "-h")
	require.Equal(t, exitOK, got.code)
	for _, want := range []string{"-conns", "-channels", "-size", "-count", "-duration", "-rate", "-mode", "DELIVERED"} {
		require.Contains(t, got.stderr, want)
	}
	require.NotContains(t, got.stderr, "-insecure", "the command's help lists its own flags")
}

func TestGlobalFlagsMayFollowTheCommand(t *testing.T) {
	ts := startServer(t, serverOptions{})
	got := runCLI(t, nil, "ping", "-addr", ts.addr, "-ca", ts.caFile, "-count", "1", "-json")
	require.NoError(t, got.err, got.stderr)
	require.Contains(t, got.stdout, `"type":"summary"`)
}

func TestSendInterruptedWhileConnectingExits130(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := runCLIContext(ctx, nil, "-addr", freeUDPAddr(t), "-insecure", "send", "x", "y")
	require.Equal(t, exitInterrupted, got.code)
	require.True(t, errors.Is(got.err, context.Canceled), got.err)
}

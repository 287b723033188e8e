package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/transport"
)

// jsonLines parses every line of out as a JSON object; the test fails on
// the first one that is not.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "not a JSON line: %q", sc.Text())
		lines = append(lines, m)
	}
	require.NoError(t, sc.Err())
	return lines
}

// withMsg returns the lines whose msg is msg.
func withMsg(lines []map[string]any, msg string) []map[string]any {
	var r []map[string]any
	for _, l := range lines {
		if l["msg"] == msg {
			r = append(r, l)
		}
	}
	return r
}

// otherCAClient is a client certificate signed by a CA the server does
// not know.
func otherCAClient(t *testing.T, serverCA string) *tls.Config {
	t.Helper()
	ca, err := certs.GenerateCA("another CA", time.Hour)
	require.NoError(t, err)
	leaf, err := certs.GenerateLeaf(ca, certs.LeafOptions{CommonName: "mallory", Client: true, ValidFor: time.Hour})
	require.NoError(t, err)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	require.NoError(t, leaf.WriteFiles(cert, key))
	pair, err := tls.LoadX509KeyPair(cert, key)
	require.NoError(t, err)
	conf, err := certs.ClientConfig(certs.ClientOptions{CAFile: serverCA, ServerName: "localhost"})
	require.NoError(t, err)
	// A client offers only a certificate from a CA the server names; this
	// one offers its own anyway, as a misconfigured client would.
	conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	return conf
}

func TestRefusedHandshakesAreLoggedAtInfoWithTheirReason(t *testing.T) {
	dir := t.TempDir()
	dev, err := certs.EnsureDev(dir, nil)
	require.NoError(t, err)
	ts := startServerIn(t, dir, "-client-ca", dev.CAFile, "-mode", "echo", "-log-level", "info")

	_, err = transport.Dial(testCtx(t), ts.addr, ts.clientTLS(t), nil)
	require.ErrorIs(t, err, transport.ErrUntrusted)
	ts.waitLog(t, `level=INFO msg="handshake refused" reason="no client certificate" tls_alert="tls: certificate required" conn_id=\w+ err="tls: client didn't provide a certificate" suppressed=0 refused_total=1`)

	_, err = transport.Dial(testCtx(t), ts.addr, otherCAClient(t, dev.CAFile), nil)
	require.ErrorIs(t, err, transport.ErrUntrusted)
	ts.waitLog(t, `level=INFO msg="handshake refused" reason="client certificate not trusted" tls_alert="tls: unknown certificate authority" .*err="tls: failed to verify certificate: x509: certificate signed by unknown authority" client_cert="CN=mallory" client_cert_issuer="CN=another CA" suppressed=0 refused_total=2`)
}

func TestRefusedHandshakeLogIsRateLimitedAndCountsWhatItLeavesOut(t *testing.T) {
	var buf bytes.Buffer
	h := newHandshakeLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	now := time.Unix(1000, 0)
	h.now = func() time.Time { return now }
	refusal := func() error {
		return &quic.TransportError{ErrorCode: quic.TransportErrorCode(0x100 + alertCertificateRequired)}
	}
	for range 3 * refusedLogPerSecond {
		h.connEnded(refusal(), quic.ConnectionID{})
	}
	now = now.Add(time.Second)
	h.connEnded(refusal(), quic.ConnectionID{})
	h.connEnded(refusal(), quic.ConnectionID{})
	now = now.Add(time.Second)
	for range refusedLogPerSecond + 5 {
		h.connEnded(refusal(), quic.ConnectionID{})
	}
	h.close()

	lines := jsonLines(t, buf.String())
	logged := withMsg(lines, "handshake refused")
	require.Len(t, logged, 2*refusedLogPerSecond+2, "at most refusedLogPerSecond a second")
	require.EqualValues(t, 2*refusedLogPerSecond, logged[refusedLogPerSecond]["suppressed"], "the first line of the next second counts those left out")
	require.EqualValues(t, 0, logged[refusedLogPerSecond+1]["suppressed"])
	last := withMsg(lines, "handshakes refused and not logged (rate limit)")
	require.Len(t, last, 1, "close reports those left out after the last line")
	require.EqualValues(t, 5, last[0]["suppressed"])
	require.EqualValues(t, 4*refusedLogPerSecond+7, last[0]["refused_total"])
}

func TestJSONLogsAreJSONThroughStartSessionRefusalReloadAndShutdown(t *testing.T) {
	dir := t.TempDir()
	dev, err := certs.EnsureDev(dir, nil)
	require.NoError(t, err)
	certFile, keyFile, err := certs.NewDevClientCert(dir, "alice")
	require.NoError(t, err)
	path := writeConfig(t, "mode = \"echo\"\nlog-level = \"debug\"\nlog-format = \"json\"\nmax-sessions = 10\n")
	ts := startServerArgs(t, dir, []string{"-addr", "127.0.0.1:0", "-dev-certs", dir, "-config", path,
		"-client-ca", dev.CAFile, "-keylog", filepath.Join(t.TempDir(), "keys.log")})

	conf, err := certs.ClientConfig(certs.ClientOptions{CAFile: dev.CAFile, ServerName: "localhost", CertFile: certFile, KeyFile: keyFile})
	require.NoError(t, err)
	c := dial(t, ts.addr, conf)
	ch := openChannel(t, c, "chat")
	send(t, ch, "hi")
	require.Equal(t, "hi", receive(t, ch))
	require.NoError(t, c.Close())
	ts.waitLog(t, `"msg":"session ended"`)

	_, err = transport.Dial(testCtx(t), ts.addr, ts.clientTLS(t), nil)
	require.Error(t, err)
	ts.waitLog(t, `"msg":"handshake refused"`)

	require.NoError(t, os.WriteFile(path, []byte("mode = \"echo\"\nlog-level = \"info\"\nlog-format = \"json\"\nmax-sessions = 20\n"), 0o600))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	ts.waitLog(t, `"msg":"config file reloaded"`)
	require.NoError(t, ts.stop(t))

	lines := jsonLines(t, ts.stderr.String())
	for _, msg := range []string{"quicsrv started", "session started", "session ended", "handshake refused",
		"setting changed", "config file reloaded", "certificate reloaded", "stopped"} {
		require.NotEmpty(t, withMsg(lines, msg), "no %q line", msg)
	}
	require.Empty(t, ts.stdout.String(), "with JSON logs the first lines are in the log, not on stdout")
	started := withMsg(lines, "quicsrv started")[0]
	require.Equal(t, ts.pin, started["pin"])
	require.Equal(t, dev.CAFile, started["client_ca"])
	keylog := withMsg(lines, "WARNING: -keylog: TLS secrets of every connection are appended to this file: anyone who has it can decrypt the traffic; use it for debugging only, and delete it afterwards")
	require.Len(t, keylog, 1, "the key-log warning is a JSON line")
	ended := withMsg(lines, "session ended")[0]
	require.IsType(t, float64(0), ended["duration"], "durations are seconds")
	require.Less(t, ended["duration"].(float64), waitTimeout.Seconds(), "seconds, not nanoseconds")
	for _, l := range withMsg(lines, "shutting down: GOAWAY sent to every session") {
		require.EqualValues(t, 10, l["timeout"], "-shutdown-timeout in seconds")
	}
}

func TestFlagErrorsAreJSONWithJSONLogs(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"-log-format", "json", "-max-sessions", "many"}, io.Discard, &stderr)
	require.Error(t, err)
	var reported reportedError
	require.True(t, errors.As(err, &reported), "main does not print it again")
	lines := jsonLines(t, stderr.String())
	require.Len(t, lines, 1)
	require.Equal(t, "ERROR", lines[0]["level"])
	require.Contains(t, lines[0]["err"], "max-sessions")

	stderr.Reset()
	path := writeConfig(t, "log-format = \"json\"\nmode = \"broadcast\"\n")
	err = run(context.Background(), []string{"-config", path}, io.Discard, &stderr)
	require.ErrorContains(t, err, path+":2: mode")
	require.Len(t, jsonLines(t, stderr.String()), 1, "the file's log-format counts once it is read")

	stderr.Reset()
	err = run(context.Background(), []string{"-max-sessions", "many"}, io.Discard, &stderr)
	require.False(t, errors.As(err, &reported), "text logs: main prints the error")
	require.Contains(t, stderr.String(), "Usage: quicsrv")
}

func TestStandardLogOutputGoesThroughTheLogger(t *testing.T) {
	var buf testenv.Buffer
	restore := captureStdLog(newLogger(logJSON, new(slog.LevelVar), &buf))
	log.Print("from a library")
	restore()
	lines := jsonLines(t, buf.String())
	require.Len(t, lines, 1)
	require.Equal(t, "from a library", lines[0]["msg"])
}

// startedJSON reads the address, pin, CA file and metrics URL from a JSON
// "quicsrv started" line on stderr, and reports whether there was one.
func (ts *testServer) startedJSON() bool {
	for line := range strings.Lines(ts.stderr.String()) {
		var m struct{ Msg, Addr, Pin, CAFile, Metrics string }
		if json.Unmarshal([]byte(line), &m) != nil || m.Msg != "quicsrv started" {
			continue
		}
		var ca struct {
			CAFile string `json:"ca_file"`
		}
		_ = json.Unmarshal([]byte(line), &ca)
		ts.addr, ts.pin, ts.caFile = m.Addr, m.Pin, ca.CAFile
		ts.metricsURL = strings.TrimSuffix(m.Metrics, "/metrics")
		return true
	}
	return false
}

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// jsonLog is what an e2e test reads of a quicsrv JSON log line.
type jsonLog struct {
	Msg    string `json:"msg"`
	Level  string `json:"level"`
	Key    string `json:"key"`
	Old    string `json:"old"`
	New    string `json:"new"`
	Reason string `json:"reason"`
	Addr   string `json:"addr"`
}

// parseJSONLines parses every line of out as a JSON object.
func parseJSONLines(t *testing.T, what, out string) []jsonLog {
	t.Helper()
	var logs []jsonLog
	for line := range strings.Lines(out) {
		var l jsonLog
		require.NoError(t, json.Unmarshal([]byte(line), &l), "%s: not a JSON line: %q", what, line)
		logs = append(logs, l)
	}
	return logs
}

func hasLog(logs []jsonLog, match func(jsonLog) bool) bool {
	for _, l := range logs {
		if match(l) {
			return true
		}
	}
	return false
}

// TestConfigFileReloadAndJSONLogs runs quicsrv from a config file with
// JSON logs through start, a session, a refused handshake, a reload on
// SIGHUP and a shutdown, and parses every line it wrote, on stdout and
// stderr, as JSON.
func TestConfigFileReloadAndJSONLogs(t *testing.T) {
	devDir := t.TempDir()
	cert, key, ca := issueClientCert(t, devDir, "alice")
	config := filepath.Join(t.TempDir(), "quicsrv.toml")
	write := func(text string) { require.NoError(t, os.WriteFile(config, []byte(text), 0o600)) }
	write("mode = \"relay\"\nlog-format = \"json\"\nlog-level = \"info\"\nmax-sessions = 100\nclient-ca = \"" + ca + "\"\n")
	s := start(t, quicsrvBin, "-addr", "127.0.0.1:0", "-dev-certs", devDir, "-config", config)
	s.waitOutput(t, "the start line", func(_, stderr string) bool { return strings.Contains(stderr, `"msg":"quicsrv started"`) })
	var addr string
	for _, l := range parseJSONLines(t, "stderr", s.stderr.String()) {
		if l.Msg == "quicsrv started" {
			addr = l.Addr
		}
	}
	client := func(args ...string) []string {
		return append([]string{"-addr", addr, "-ca", filepath.Join(devDir, "ca.pem")}, args...)
	}

	requireQuiccli(t, client("-cert", cert, "-key", key, "send", "chat", "with a certificate")...)
	r := runQuiccli(t, client("send", "chat", "without")...)
	require.Equal(t, 3, r.code, "refused: %s", r.stderr)
	s.waitOutput(t, "the refusal logged", func(_, stderr string) bool { return strings.Contains(stderr, `"msg":"handshake refused"`) })

	write("mode = \"echo\"\nlog-format = \"json\"\nlog-level = \"debug\"\nmax-sessions = 200\nclient-ca = \"" + ca + "\"\n")
	s.signal(t, syscall.SIGHUP)
	s.waitOutput(t, "the reload", func(_, stderr string) bool { return strings.Contains(stderr, `"msg":"config file reloaded"`) })
	requireQuiccli(t, client("-cert", cert, "-key", key, "send", "chat", "after the reload")...)
	s.waitOutput(t, "a debug line", func(_, stderr string) bool { return strings.Contains(stderr, `"level":"DEBUG"`) })

	s.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, s.wait(t))
	require.Empty(t, s.stdout.String(), "with JSON logs nothing is printed as text")
	logs := parseJSONLines(t, "stderr", s.stderr.String())
	for _, want := range []struct {
		what  string
		match func(jsonLog) bool
	}{
		{"session started", func(l jsonLog) bool { return l.Msg == "session started" }},
		{"refused handshake at info", func(l jsonLog) bool {
			return l.Msg == "handshake refused" && l.Level == "INFO" && l.Reason == "no client certificate"
		}},
		{"log-level changed", func(l jsonLog) bool {
			return l.Msg == "setting changed" && l.Key == "log-level" && l.Old == "info" && l.New == "debug"
		}},
		{"max-sessions changed", func(l jsonLog) bool {
			return l.Msg == "setting changed" && l.Key == "max-sessions" && l.Old == "100" && l.New == "200"
		}},
		{"mode needs a restart", func(l jsonLog) bool {
			return l.Level == "WARN" && l.Key == "mode" && strings.Contains(l.Msg, "needs a restart")
		}},
		{"stopped", func(l jsonLog) bool { return l.Msg == "stopped" }},
	} {
		require.True(t, hasLog(logs, want.match), "no log line: %s\n%s", want.what, s.stderr)
	}
}

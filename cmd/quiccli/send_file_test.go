package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// listenJSON decodes listen -json's output into the payloads it printed.
func listenJSON(t *testing.T, got outcome) [][]byte {
	t.Helper()
	require.NoError(t, got.err, got.stderr)
	var payloads [][]byte
	for _, line := range got.lines() {
		var m jsonMessage
		require.NoError(t, json.Unmarshal([]byte(line), &m), "%.200s", line)
		p := []byte(m.Payload)
		if m.Encoding == "base64" {
			var err error
			p, err = base64.StdEncoding.DecodeString(m.Payload)
			require.NoError(t, err)
		}
		require.Len(t, p, m.Size)
		payloads = append(payloads, p)
	}
	return payloads
}

func TestSendFileOfOneMiBArrivesByteForByte(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	data := make([]byte, 1<<20) // the server's default message limit, exactly
	_, _ = rand.Read(data)
	data[0], data[1], data[2] = '\n', '\r', 0 // what a line reader would cut
	file := filepath.Join(t.TempDir(), "blob.bin")
	require.NoError(t, os.WriteFile(file, data, 0o600))

	_, wait := startCLI(t, nil, ts.args("-json", "listen", "-count", "2", "files")...)
	ts.waitSubscribers(t, "files", 1)
	sent := runCLI(t, nil, ts.args("send", "-f", file, "files")...)
	require.NoError(t, sent.err, sent.stderr)
	require.Equal(t, `sent 1 message (1048576 bytes) on "files" to `+ts.addr+"\n", sent.stdout)
	// -f - reads all of stdin as one message.
	sent = runCLI(t, bytes.NewReader(data[:1000]), ts.args("send", "-f", "-", "files")...)
	require.NoError(t, sent.err, sent.stderr)

	got := listenJSON(t, wait())
	require.Len(t, got, 2)
	require.True(t, bytes.Equal(data, got[0]), "the file arrived altered")
	require.True(t, bytes.Equal(data[:1000], got[1]), "stdin arrived altered")
}

func TestSendCountRepeatsEachMessage(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	_, wait := startCLI(t, nil, ts.args("listen", "-count", "6", "rep")...)
	ts.waitSubscribers(t, "rep", 1)
	sent := runCLI(t, nil, ts.args("send", "-count", "3", "rep", "a", "b")...)
	require.NoError(t, sent.err, sent.stderr)
	require.Equal(t, `sent 6 messages (6 bytes) on "rep" to `+ts.addr+"\n", sent.stdout)
	got := wait()
	require.NoError(t, got.err, got.stderr)
	require.Equal(t, "a\na\na\nb\nb\nb\n", got.stdout)
}

func TestSendFileMistakesAreReportedPlainly(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	dir := t.TempDir()
	big := filepath.Join(dir, "big.bin")
	require.NoError(t, os.WriteFile(big, make([]byte, 1<<20+1), 0o600))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"send", "-f", big, "x", "extra"}, exitUsage, "give either -f or MESSAGE arguments"},
		{[]string{"send", "-count", "0", "x", "m"}, exitUsage, "-count must be at least 1, not 0"},
		{[]string{"send", "-f", filepath.Join(dir, "missing"), "x"}, exitUsage, "-f: open " + filepath.Join(dir, "missing")},
		{[]string{"send", "-f", big, "x"}, exitError, "-f: " + big + " is larger than the server's limit of 1048576 bytes (quicsrv -max-message-size); nothing was sent"},
	} {
		got := runCLI(t, nil, ts.args(tc.args...)...)
		require.Error(t, got.err, "%v", tc.args)
		require.Equal(t, tc.code, got.code, "%v: %v", tc.args, got.err)
		require.Contains(t, got.err.Error(), tc.want, "%v", tc.args)
		require.NotContains(t, got.err.Error(), "\n", "one line")
	}
}

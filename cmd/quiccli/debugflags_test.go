package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// -qlog writes a trace of each connection, -keylog the TLS secrets, with a
// warning.
func TestQlogAndKeyLogOfTheClient(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.log")
	got := runCLI(t, nil, ts.args("-qlog", dir, "-keylog", keys, "ping", "-count", "1")...)
	require.NoError(t, got.err, got.stderr)
	require.Contains(t, got.stderr, "quiccli: WARNING: -keylog writes the TLS secrets of this run to "+keys)

	traces, err := filepath.Glob(filepath.Join(dir, "*_client.sqlog"))
	require.NoError(t, err)
	require.Len(t, traces, 1)
	trace, err := os.ReadFile(traces[0])
	require.NoError(t, err)
	require.Contains(t, string(trace), `"qlog_version"`)
	secrets, err := os.ReadFile(keys)
	require.NoError(t, err)
	require.Contains(t, string(secrets), "CLIENT_TRAFFIC_SECRET_0 ")
	st, err := os.Stat(keys)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

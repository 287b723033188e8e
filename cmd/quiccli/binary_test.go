package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// buildBinary builds quiccli into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	bin := filepath.Join(t.TempDir(), "quiccli")
	cmd := exec.Command(goCmd, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "HOME="+userHome) // the build and module caches
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

// runBinary runs bin in dir with env added to a minimal environment.
func runBinary(t *testing.T, bin, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return o.String(), e.String(), ee.ExitCode()
	}
	require.NoError(t, err)
	return o.String(), e.String(), 0
}

func TestBinaryConfiguredByEnvironmentAndContextFromAnotherDirectory(t *testing.T) {
	bin := buildBinary(t)
	ts := startServer(t, serverOptions{})
	dir, config := t.TempDir(), t.TempDir()
	xdg := "XDG_CONFIG_HOME=" + config

	stdout, stderr, code := runBinary(t, bin, dir, []string{xdg, "QUICMSG_ADDR=" + ts.addr, "QUICMSG_CA=" + ts.caFile},
		"ping", "-count", "1", "-interval", "0")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "1 pings sent, 1 replies")

	_, stderr, code = runBinary(t, bin, dir, []string{xdg}, "context", "add", "t", "-select", "-addr", ts.addr, "-pin", ts.pin)
	require.Equal(t, 0, code, stderr)
	_, stderr, code = runBinary(t, bin, t.TempDir(), []string{xdg}, "ping", "-count", "1", "-interval", "0")
	require.Equal(t, 0, code, stderr)

	stdout, _, code = runBinary(t, bin, dir, nil, "-version")
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(stdout, "quiccli "), stdout)

	_, stderr, code = runBinary(t, bin, dir, nil, "send", "-x", "c")
	require.Equal(t, exitUsage, code)
	require.Equal(t, "quiccli: flag provided but not defined: -x; see 'quiccli help send'\n", stderr)
}

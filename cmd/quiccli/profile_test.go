package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/certs"
)

// elsewhere makes the test run in an empty directory of its own, with a
// configuration directory of its own and no QUICMSG_* variables.
func elsewhere(t *testing.T) (dir, config string) {
	t.Helper()
	dir, config = t.TempDir(), t.TempDir()
	t.Chdir(dir)
	t.Setenv("XDG_CONFIG_HOME", config)
	for _, f := range connFlags {
		t.Setenv(f.env, "")
	}
	return dir, config
}

func pingOnce(t *testing.T, args ...string) outcome {
	t.Helper()
	args = append([]string{"-timeout", "2s"}, args...)
	return runCLI(t, nil, append(args, "ping", "-count", "1", "-interval", "0")...)
}

func TestEnvironmentVariablesConfigureQuiccliFromAnotherDirectory(t *testing.T) {
	ts := startServer(t, serverOptions{})
	elsewhere(t)

	got := pingOnce(t, "-timeout", "300ms")
	require.Equal(t, exitConnect, got.code, "nothing configured: the default address has no server")

	t.Setenv("QUICMSG_ADDR", ts.addr)
	t.Setenv("QUICMSG_CA", ts.caFile)
	got = pingOnce(t)
	require.NoError(t, got.err, got.stderr)
	require.Contains(t, got.stdout, "1 pings sent, 1 replies")

	t.Setenv("QUICMSG_CA", "")
	t.Setenv("QUICMSG_PIN", ts.pin)
	require.NoError(t, pingOnce(t).err, "QUICMSG_PIN alone verifies the server")

	got = pingOnce(t, "-insecure")
	require.NoError(t, got.err, "an explicit -insecure wins over QUICMSG_PIN")
	require.Contains(t, got.stderr, "WARNING: -insecure")

	free := freeUDPAddr(t)
	got = pingOnce(t, "-addr", free, "-timeout", "300ms")
	require.Equal(t, exitConnect, got.code, "-addr wins over QUICMSG_ADDR")
	require.Contains(t, got.err.Error(), "no answer from "+free)
}

func TestEnvironmentErrorsNameTheVariable(t *testing.T) {
	elsewhere(t)
	for _, tc := range []struct{ env, value, want string }{
		{"QUICMSG_ADDR", "127.0.0.1", `-addr "127.0.0.1" (from QUICMSG_ADDR) is not HOST:PORT`},
		{"QUICMSG_CA", "nope.pem", "-ca nope.pem (from QUICMSG_CA): no such file or directory"},
		{"QUICMSG_PIN", "sha256/xyz", `-pin "sha256/xyz" (from QUICMSG_PIN): `},
	} {
		t.Setenv(tc.env, tc.value)
		got := pingOnce(t)
		require.Equal(t, exitUsage, got.code, tc.env)
		require.Contains(t, got.err.Error(), tc.want)
		t.Setenv(tc.env, "")
	}
}

func TestContextAddSelectAndUseFromAnotherDirectory(t *testing.T) {
	ts := startServer(t, serverOptions{})
	dir, config := elsewhere(t)
	caPEM, err := os.ReadFile(ts.caFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), caPEM, 0o644))

	// A relative -ca is stored absolute.
	got := runCLI(t, nil, "context", "add", "prod", "-addr", ts.addr, "-ca", "ca.pem")
	require.NoError(t, got.err, got.stderr)
	file := filepath.Join(config, "quicmsg", "context", "prod.json")
	require.Contains(t, got.stdout, "context prod saved in "+file)
	fi, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(filepath.Dir(file))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), di.Mode().Perm())
	stored, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Contains(t, string(stored), filepath.Join(dir, "ca.pem"))

	t.Chdir(t.TempDir())
	require.Equal(t, exitConnect, pingOnce(t, "-timeout", "300ms").code, "an added context is not used until selected")
	require.NoError(t, runCLI(t, nil, "context", "select", "prod").err)
	got = pingOnce(t)
	require.NoError(t, got.err, got.stderr)

	got = runCLI(t, nil, "context", "ls")
	require.NoError(t, got.err)
	require.Equal(t, "* prod", strings.Join(strings.Fields(got.stdout)[:2], " "))
	got = runCLI(t, nil, "context", "show")
	require.NoError(t, got.err)
	require.Contains(t, got.stdout, "-addr  "+ts.addr)

	// The environment wins over the context, and a flag over both.
	free := freeUDPAddr(t)
	t.Setenv("QUICMSG_ADDR", free)
	got = pingOnce(t, "-timeout", "300ms")
	require.Equal(t, exitConnect, got.code)
	require.Contains(t, got.err.Error(), "no answer from "+free)
	require.NoError(t, pingOnce(t, "-addr", ts.addr).err)
	t.Setenv("QUICMSG_ADDR", "")

	require.NoError(t, runCLI(t, nil, "context", "rm", "prod").err)
	got = runCLI(t, nil, "context", "ls")
	require.NoError(t, got.err)
	require.Empty(t, got.stdout)
	got = runCLI(t, nil, "context", "select", "prod")
	require.Equal(t, exitUsage, got.code)
	require.Equal(t, "no context named prod (have: none); see 'quiccli context ls'", got.err.Error())
}

func TestSelectedContextWinsOverTheDevelopmentCA(t *testing.T) {
	ts := startServer(t, serverOptions{})
	dir, _ := elsewhere(t)
	caPEM, err := os.ReadFile(ts.caFile)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(devCAFile)), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, devCAFile), caPEM, 0o644))
	require.NoError(t, pingOnce(t, "-addr", ts.addr).err, "the development CA of the current directory")

	other, err := certs.GenerateCA("some other CA", 3600e9)
	require.NoError(t, err)
	otherCA := writeCA(t, other)
	require.NoError(t, runCLI(t, nil, "context", "add", "other", "-select", "-ca", otherCA).err)
	got := pingOnce(t, "-addr", ts.addr)
	require.Equal(t, exitConnect, got.code)
	require.Contains(t, got.err.Error(), "is not trusted by "+otherCA+" (from context other)")
}

func TestContextUsageErrors(t *testing.T) {
	elsewhere(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"context"}, "context needs a subcommand"},
		{[]string{"context", "fly"}, `unknown subcommand "fly" of context`},
		{[]string{"context", "add", "x"}, "context add needs at least one of -addr"},
		{[]string{"context", "add", "../x", "-addr", "h:1"}, `context name "../x"`},
		{[]string{"context", "add", "x", "-addr", "h"}, `-addr "h" is not HOST:PORT`},
		{[]string{"context", "add", "x", "-ca", "missing.pem"}, "-ca missing.pem: no such file or directory"},
		{[]string{"context", "show"}, "no context is selected"},
		{[]string{"context", "rm", "x"}, "no context named x"},
	} {
		got := runCLI(t, nil, tc.args...)
		require.Equal(t, exitUsage, got.code, "%q: %v", tc.args, got.err)
		require.Contains(t, got.err.Error(), tc.want, tc.args)
	}
}

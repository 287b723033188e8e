package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/session"
)

// writeConfig writes a config file into a fresh directory.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "quicsrv.toml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

// sampleValues are values for the flags whose default cannot be written
// back (the flag package shows no default for them).
var sampleValues = map[string]string{
	"overflow":      `"disconnect"`,
	"slow-consumer": `"block"`,
	"server-id":     `"0a1b"`,
	"memory-limit":  `"600MiB"`,
	"cluster":       `"nats://127.0.0.1:4222"`,
	"metrics":       `"127.0.0.1:9464"`,
}

// sampleLine is a config file line setting f to a value it takes, with
// the same text as a command-line argument (value).
func sampleLine(t *testing.T, f *flag.Flag) (line, value string) {
	t.Helper()
	if v, ok := sampleValues[f.Name]; ok {
		return fmt.Sprintf("%s = %s", f.Name, v), v[1 : len(v)-1]
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return fmt.Sprintf("%s = %s", f.Name, f.DefValue), f.DefValue
	}
	if _, err := strconv.ParseInt(f.DefValue, 10, 64); err == nil {
		return fmt.Sprintf("%s = %s", f.Name, f.DefValue), f.DefValue
	}
	if f.DefValue == "" { // a file or directory
		return fmt.Sprintf("%s = %q", f.Name, "/tmp/quicsrv-sample"), "/tmp/quicsrv-sample"
	}
	return fmt.Sprintf("%s = %q", f.Name, f.DefValue), f.DefValue
}

// comparable drops what differs between options parsed from a file and
// from the command line for the same settings.
func comparable(o *options) options {
	c := *o
	c.configFile, c.file, c.args, c.cmdline = "", nil, nil, nil
	return c
}

// fileKeys returns the keys a config file may set, by flag name.
func fileKeys(fs *flag.FlagSet) []string {
	var keys []string
	fs.VisitAll(func(f *flag.Flag) {
		if !notInFile[f.Name] {
			keys = append(keys, f.Name)
		}
	})
	return keys
}

func TestEveryFlagHasAConfigFileKey(t *testing.T) {
	fs := newOptions().flagSet()
	keys := fileKeys(fs)
	var all []string
	fs.VisitAll(func(f *flag.Flag) { all = append(all, f.Name) })
	require.Len(t, keys, len(all)-len(notInFile), "every flag but -config, -version and -dev-client-cert is a key")

	var text string
	var args []string
	for _, k := range keys {
		line, value := sampleLine(t, fs.Lookup(k))
		text += line + "\n"
		args = append(args, "-"+k+"="+value)
	}
	fromFile, err := parseFlags([]string{"-config", writeConfig(t, text)}, io.Discard)
	require.NoError(t, err, "a file setting every key:\n%s", text)
	require.Len(t, fromFile.file, len(keys))
	fromFlags, err := parseFlags(args, io.Discard)
	require.NoError(t, err)
	require.Equal(t, comparable(fromFlags), comparable(fromFile), "the file sets what the same flags set")
}

func TestConfigFileLosesToFlagsAndWinsOverDefaults(t *testing.T) {
	path := writeConfig(t, "max-sessions = 5\nmode = \"echo\"\ncluster-required = false\nidle-timeout = \"45s\"\n")
	o, err := parseFlags([]string{"-config", path, "-max-sessions", "7"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 7, o.maxSessions, "the command line wins")
	require.Equal(t, modeEcho, o.mode, "the file wins over the default")
	require.False(t, o.cluster.required)
	require.Equal(t, 45*time.Second, o.idleTimeout)
	require.Equal(t, session.DefaultPendingCap, o.pendingCap, "unset: the default")
}

func TestExampleConfigFileLoads(t *testing.T) {
	o, err := parseFlags([]string{"-config", "quicsrv.example.toml"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:4433", o.addr)
	require.Equal(t, logJSON, o.logFormat)
	// The example lists every key, set or commented out with its default.
	b, err := os.ReadFile("quicsrv.example.toml")
	require.NoError(t, err)
	for _, k := range fileKeys(newOptions().flagSet()) {
		require.Regexp(t, `(?m)^(# )?`+regexp.QuoteMeta(k)+` = `, string(b), "the example lacks %s", k)
	}
}

func TestBadConfigFilesAreRefusedNamingFileLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		text string
		want string // after "config file PATH"
	}{
		{"mode = \"echo\"\n\nmax-sesions = 3\n", `:3: max-sesions: unknown key`},
		{"# limits\nmax-sessions = \"lots\"\n", `:2: max-sessions: invalid value "lots"`},
		{"max-sessions = 1.5\n", `:1: max-sessions: want a string or an integer, not a float`},
		{"cluster-required = \"no\"\n", `:1: cluster-required: want true or false, not a string`},
		{"mode = \"broadcast\"\n", `:1: mode: -mode "broadcast": want relay or echo`},
		{"max-sessions = 5\nsubscriber-queue = -1\n", `:2: subscriber-queue: -subscriber-queue -1 must not be negative`},
		{"overflow = \"ignore\"\n", `:1: overflow: invalid value "ignore"`},
		{"\"idle-timeout\" = \"soon\"\n", `:1: idle-timeout: invalid value "soon"`},
		{"[server]\naddr = \"x\"\n", `:1: server: is a table`},
		{"version = true\n", `:1: version: unknown key`},
		{"addr = \"a\"\naddr = \"b\"\n", `:2: addr: `},
		{"max-sessions = = 3\n", `:1: `},
	} {
		path := writeConfig(t, tc.text)
		_, err := parseFlags([]string{"-config", path}, io.Discard)
		require.Error(t, err, "%q", tc.text)
		require.Contains(t, err.Error(), "config file "+path+tc.want, "%q", tc.text)
	}
	_, err := parseFlags([]string{"-config", filepath.Join(t.TempDir(), "missing.toml")}, io.Discard)
	require.ErrorContains(t, err, "-config: ")
	require.ErrorContains(t, err, "missing.toml")
}

func TestConfigFileErrorBlamesTheCommandLineWhenItSetTheFlag(t *testing.T) {
	path := writeConfig(t, "max-sessions = 5\n")
	_, err := parseFlags([]string{"-config", path, "-mode", "broadcast"}, io.Discard)
	require.EqualError(t, err, `-mode "broadcast": want relay or echo`)
}

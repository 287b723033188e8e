package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/session"
)

func TestResumeFlagsAreParsed(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, session.DefaultResumeWindow, o.resumeWindow)
	require.Equal(t, session.DefaultMaxDetachedSessions, o.maxDetached)
	require.Empty(t, o.resumeKeyFile)

	o, err = parseFlags([]string{"-resume-window", "2m", "-max-detached", "50", "-resume-key-file", "/tmp/k"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 2*time.Minute, o.resumeWindow)
	require.Equal(t, 50, o.maxDetached)
	require.Equal(t, "/tmp/k", o.resumeKeyFile)

	o, err = parseFlags([]string{"-resume-window", "-1s"}, io.Discard)
	require.NoError(t, err, "a negative window turns resumption off")
	require.Negative(t, o.resumeWindow)
}

// A missing -resume-key-file is created with a random key, mode 0600, and
// the next start reads the same key; a file that holds anything else is
// refused, naming the flag.
func TestResumeKeyFileIsCreatedThenReused(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	k, err := resumeKey("", log)
	require.NoError(t, err)
	require.Nil(t, k, "no file: the listener's own random key")

	file := filepath.Join(t.TempDir(), "resume.key")
	k1, err := resumeKey(file, log)
	require.NoError(t, err)
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	k2, err := resumeKey(file, log)
	require.NoError(t, err)
	require.Equal(t, *k1, *k2, "the same key after a restart")

	bad := filepath.Join(t.TempDir(), "bad.key")
	require.NoError(t, os.WriteFile(bad, []byte("short\n"), 0o600))
	_, err = resumeKey(bad, log)
	require.ErrorContains(t, err, "-resume-key-file")
	require.ErrorContains(t, err, "64 hex digits")
	require.NoError(t, os.WriteFile(bad, []byte(string(make([]byte, 64))), 0o600))
	_, err = resumeKey(bad, log)
	require.ErrorContains(t, err, "-resume-key-file")
}

package certs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSessionKeysPersist(t *testing.T) {
	file := filepath.Join(t.TempDir(), "session-keys.pem")
	k1, err := LoadOrCreateSessionKeys(file)
	require.NoError(t, err)
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, KeyFileMode, st.Mode().Perm())
	k2, err := LoadOrCreateSessionKeys(file)
	require.NoError(t, err)
	require.Equal(t, k1, k2, "the same keys after a restart")
	require.NotEqual(t, k1.Ticket, k1.StatelessReset)

	bad := filepath.Join(t.TempDir(), "bad.pem")
	require.NoError(t, os.WriteFile(bad, []byte("junk"), 0o600))
	_, err = LoadOrCreateSessionKeys(bad)
	require.ErrorIs(t, err, ErrNotPEM)
	require.ErrorContains(t, err, "bad.pem")
}

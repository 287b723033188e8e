package keylog

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOpenCreatesAFileOnlyItsOwnerReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.log")
	f, err := Open(path)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	f, err = Open(path) // an existing private file is appended to
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func TestOpenRefusesAFileOthersCanRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.log")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	require.NoError(t, os.Chmod(path, 0o644))
	_, err := Open(path)
	require.ErrorContains(t, err, "has mode 0644: others could read the TLS secrets; chmod 600 it or use a new file")
}

package session

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A container's cgroup memory limit, when there is one, is read in bytes;
// "max" and a missing file mean no limit.
func TestCgroupMemoryMax(t *testing.T) {
	dir := t.TempDir()
	write := func(content string) string {
		p := filepath.Join(dir, "memory.max")
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	v, ok := cgroupMemoryMax(write("1073741824\n"))
	require.True(t, ok)
	require.Equal(t, int64(1<<30), v)
	_, ok = cgroupMemoryMax(write("max\n"))
	require.False(t, ok)
	_, ok = cgroupMemoryMax(filepath.Join(dir, "missing"))
	require.False(t, ok)
}

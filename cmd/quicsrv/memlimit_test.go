package main

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMemoryLimitSizesAreParsedAsGOMEMLIMITWritesThem(t *testing.T) {
	for in, want := range map[string]int64{
		"0":                   0,
		"123":                 123,
		"123B":                123,
		"4KiB":                4 << 10,
		"600MiB":              600 << 20,
		"2GiB":                2 << 30,
		"8388607TiB":          8388607 << 40,
		"9223372036854775807": math.MaxInt64,
	} {
		got, err := parseByteSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "MiB", "600MB", "2G", "-1", "1.5GiB", "8388608TiB", "9223372036854775808"} {
		_, err := parseByteSize(in)
		require.Error(t, err, in)
	}
}

func TestMemoryLimitFlagSetsTheRuntimesLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	startServer(t, "-memory-limit", "600MiB", "-mode", "echo")
	require.Equal(t, int64(600<<20), debug.SetMemoryLimit(-1))
}

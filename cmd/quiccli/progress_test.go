package main

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

func TestProgressFollowsDurationOrCountWhicheverIsFurther(t *testing.T) {
	b := &bench{o: benchOptions{duration: 10 * time.Second}}
	require.InDelta(t, 0.25, b.progress(2500*time.Millisecond, 1e9), 1e-9, "no -count: time only")
	b.o.count = 1000
	require.InDelta(t, 0.5, b.progress(time.Second, 500), 1e-9)
	require.InDelta(t, 0.3, b.progress(3*time.Second, 100), 1e-9)
	require.InDelta(t, 1, b.progress(time.Minute, 0), 1e-9, "capped at 100 %")
}

func TestProgressBarDrawsFractionAndPercentage(t *testing.T) {
	require.Equal(t, "[          ]   0%", progressBar(0, 10))
	require.Equal(t, "[=====     ]  50%", progressBar(0.5, 10))
	require.Equal(t, "[==========] 100%", progressBar(1, 10))
}

func TestNumbersAndDurationsAreFormattedForPeople(t *testing.T) {
	require.Equal(t, "0", thousands(0))
	require.Equal(t, "999", thousands(999))
	require.Equal(t, "1,000", thousands(1000))
	require.Equal(t, "1,234,567", thousands(1234567))
	require.Equal(t, "850ns", shortDuration(850))
	require.Equal(t, "63.0µs", shortDuration(63_000))
	require.Equal(t, "274µs", shortDuration(274_400))
	require.Equal(t, "2.72ms", shortDuration(2_719_743))
	require.Equal(t, "1.50s", shortDuration(int64(1500*time.Millisecond)))
	require.Equal(t, "0.264", millis(264_000))
}

func TestIsTerminalIsFalseForBuffersAndFiles(t *testing.T) {
	require.False(t, isTerminal(&testenv.Buffer{}))
	require.False(t, isTerminal(newSyncWriter(&testenv.Buffer{})))
	f, err := openTemp(t)
	require.NoError(t, err)
	require.False(t, isTerminal(f))
}

func TestDevNullIsNotATerminal(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	require.NoError(t, err)
	defer null.Close()
	require.False(t, isTerminal(null), "a character device, but no terminal")
	require.False(t, isTerminal(newSyncWriter(null)))
}

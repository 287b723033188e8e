package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSeqSetCountsRepeatsWithinAndAcrossReceivers(t *testing.T) {
	a, b, c := &seqSet{}, &seqSet{}, &seqSet{}
	for _, n := range []uint64{0, 1, 2, 200, 1000} {
		a.add(n)
	}
	for _, n := range []uint64{3, 4, 5, 70000} {
		b.add(n)
	}
	dups, unchecked := duplicates([]*seqSet{a, b})
	require.Zero(t, dups, "disjoint sets: every message once")
	require.Zero(t, unchecked)

	a.add(200)   // again at the same receiver
	c.add(4)     // also delivered to b
	c.add(70000) // also delivered to b
	c.add(seqSetMax)
	dups, unchecked = duplicates([]*seqSet{a, b, c})
	require.Equal(t, uint64(3), dups)
	require.Equal(t, uint64(1), unchecked, "numbers past the bound are not checked")
	dups, _ = duplicates(nil)
	require.Zero(t, dups)
}

func TestBenchGroupFlagsAreChecked(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-group", "a.b"}, "-group \"a.b\": want 1 to 255 visible ASCII characters without '.', '*' or '>'"},
		{[]string{"-group", "w", "-size", "16"}, "-group needs -size of at least 17 bytes (kind, send time and sequence number)"},
		{[]string{"-subscribers", "65"}, "-subscribers must be between 1 and 64"},
		{[]string{"-mode", "echo", "-subscribers", "2"}, "-subscribers and -group go with -mode oneway"},
		{[]string{"-inflight", "4"}, "-inflight goes with -mode request"},
		{[]string{"-mode", "request", "-inflight", "0"}, "-inflight must be between 1 and 1024"},
	} {
		got := runCLI(t, nil, append([]string{"bench"}, c.args...)...)
		require.Equal(t, exitUsage, got.code, "%v", c.args)
		require.Equal(t, c.want, got.err.Error(), "%v", c.args)
	}
}

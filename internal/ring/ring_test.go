package ring

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFIFOOrderAcrossGrowthAndWrap(t *testing.T) {
	var r Ring[int]
	var want []int
	next := 0
	// Interleave pushes and pops so that the head wraps around while the
	// ring grows several times.
	for round := range 200 {
		for range round%7 + 1 {
			r.Push(next)
			want = append(want, next)
			next++
		}
		for range round % 5 {
			if r.Len() == 0 {
				break
			}
			require.Equal(t, want[0], r.Peek())
			require.Equal(t, want[0], r.Pop())
			want = want[1:]
		}
		require.Equal(t, len(want), r.Len())
		require.Equal(t, want, slices.Collect(r.All()))
	}
}

func TestPushFrontIsPoppedFirst(t *testing.T) {
	var r Ring[string]
	r.PushFront("b") // into an empty ring
	r.Push("c")
	r.PushFront("a")
	for i := range 40 { // force growth with items in front of the head
		r.Push(string(rune('d' + i%20)))
	}
	require.Equal(t, "a", r.Pop())
	require.Equal(t, "b", r.Pop())
	require.Equal(t, "c", r.Pop())
	require.Equal(t, 40, r.Len())
}

func TestPopClearsTheSlot(t *testing.T) {
	var r Ring[*int]
	v := 1
	r.Push(&v)
	r.Pop()
	for _, p := range r.buf {
		require.Nil(t, p, "a popped item must not be kept reachable")
	}
}

func TestResetDropsABufferGrownForABurst(t *testing.T) {
	var r Ring[int]
	for i := range 1000 {
		r.Push(i)
	}
	r.Reset(64)
	require.Zero(t, r.Len())
	require.Nil(t, r.buf)

	for i := range 10 {
		r.Push(i)
	}
	r.Reset(64)
	require.Equal(t, 16, len(r.buf), "a small buffer (grown for 10 items) is kept for reuse")
	require.Empty(t, slices.Collect(r.All()))
}

func TestAllStopsEarly(t *testing.T) {
	var r Ring[int]
	for i := range 10 {
		r.Push(i)
	}
	var got []int
	for v := range r.All() {
		if v == 3 {
			break
		}
		got = append(got, v)
	}
	require.Equal(t, []int{0, 1, 2}, got)
}

package relay

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRingKeepsOrderAcrossGrowthAndWrap(t *testing.T) {
	var r ring
	next, want := 0, 0
	push := func(k int) {
		for range k {
			r.push(item{channel: strconv.Itoa(next)})
			next++
		}
	}
	pop := func(k int) {
		for range k {
			require.Equal(t, strconv.Itoa(want), r.pop().channel)
			want++
		}
	}
	push(10)
	pop(7) // head moves into the buffer
	push(30)
	pop(20)
	push(100) // grows while wrapped
	pop(113)
	require.Zero(t, r.len())
}

// Under a steady load that never lets the queue empty, the buffer stays at
// the size of the backlog however many items pass through it.
func TestRingStaysAtTheBacklogSize(t *testing.T) {
	var r ring
	for range 100 {
		r.push(item{})
	}
	for range 1_000_000 {
		r.push(item{data: []byte{1}})
		r.pop()
	}
	require.Equal(t, 100, r.len())
	require.LessOrEqual(t, len(r.buf), 128)
}

func TestRingPopReleasesThePayload(t *testing.T) {
	var r ring
	r.push(item{data: make([]byte, 10)})
	r.pop()
	for _, it := range r.buf {
		require.Nil(t, it.data)
	}
	r.push(item{data: make([]byte, 10)})
	r.reset(ringMin)
	require.Equal(t, ringMin, len(r.buf), "a small buffer is kept")
	require.Nil(t, r.buf[1].data)
	for range 100 {
		r.push(item{})
	}
	r.reset(ringMin)
	require.Nil(t, r.buf, "a large buffer is let go")
}

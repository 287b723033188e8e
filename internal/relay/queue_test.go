package relay

import (
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// A queue keeps its items in order across blocks, whatever the mix of
// pushes and pops, and Reset empties it.
func TestQueueKeepsOrderAcrossBlocks(t *testing.T) {
	var q queue
	var want []string
	next, popped := 0, 0
	push := func(n int) {
		for range n {
			ch := strconv.Itoa(next)
			q.Push(item{channel: ch})
			want = append(want, ch)
			next++
		}
	}
	pop := func(n int) {
		for range n {
			require.Equal(t, want[popped], q.Peek().channel)
			require.Equal(t, want[popped], q.Pop().channel)
			popped++
		}
	}
	push(3 * blockSize)
	pop(blockSize + 1)
	push(blockSize - 2)
	pop(blockSize)
	require.Equal(t, len(want)-popped, q.Len())
	var rest []string
	for it := range q.All() {
		rest = append(rest, it.channel)
	}
	require.Equal(t, want[popped:], rest)
	pop(q.Len())
	require.Zero(t, q.Len())
	require.Nil(t, q.head)
	push(blockSize + 5)
	q.Reset()
	popped = len(want)
	require.Zero(t, q.Len())
	require.Empty(t, slices.Collect(q.All()))
	push(1)
	pop(1)
}

package relay

import (
	"iter"
	"sync"
)

// blockSize is how many items one block of a subscriber queue holds.
const blockSize = 256

// block is a piece of a queue: blockSize items and the next block.
type block struct {
	items [blockSize]item
	next  *block
}

// blocks is shared by every subscriber: a queue takes a block when it
// needs room and gives it back, emptied, as soon as it has read it.
var blocks = sync.Pool{New: func() any { return new(block) }}

// queue is a subscriber's items, oldest first: a list of blocks from
// blocks, so that a queue that grows to QueueSize copies nothing and an
// empty queue holds no memory. The zero value is empty. Not safe for
// concurrent use: subscriber.mu guards it.
type queue struct {
	head, tail  *block
	first, last int // the oldest item in head; the place after the newest in tail
	n           int
}

// Len returns how many items the queue holds.
func (q *queue) Len() int { return q.n }

// Push adds it after the newest item.
func (q *queue) Push(it item) {
	if q.tail == nil || q.last == blockSize {
		b := blocks.Get().(*block)
		if q.tail == nil {
			q.head, q.first = b, 0
		} else {
			q.tail.next = b
		}
		q.tail, q.last = b, 0
	}
	q.tail.items[q.last] = it
	q.last++
	q.n++
}

// Peek returns the oldest item, which stays in the queue; the queue must
// not be empty.
func (q *queue) Peek() *item { return &q.head.items[q.first] }

// Pop removes and returns the oldest item; the queue must not be empty.
func (q *queue) Pop() item {
	b := q.head
	it := b.items[q.first]
	b.items[q.first] = item{} // let the payload be collected
	q.first++
	q.n--
	switch {
	case q.n == 0:
		*q = queue{}
		blocks.Put(b)
	case q.first == blockSize:
		q.head, q.first = b.next, 0
		b.next = nil
		blocks.Put(b)
	}
	return it
}

// All yields the items, oldest first.
func (q *queue) All() iter.Seq[item] {
	return func(yield func(item) bool) {
		i := q.first
		for b := q.head; b != nil; b = b.next {
			end := blockSize
			if b == q.tail {
				end = q.last
			}
			for ; i < end; i++ {
				if !yield(b.items[i]) {
					return
				}
			}
			i = 0
		}
	}
}

// Reset empties the queue and gives its blocks back.
func (q *queue) Reset() {
	for b := q.head; b != nil; {
		next := b.next
		clear(b.items[:])
		b.next = nil
		blocks.Put(b)
		b = next
	}
	*q = queue{}
}

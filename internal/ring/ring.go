// Package ring provides the project's one FIFO: a growable ring buffer.
//
// A Ring grows by doubling and never holds more than its owner pushes; bounds
// (how many items or bytes may be queued) are the owner's policy, checked
// before Push. A Ring is not safe for concurrent use: its owner guards it.
package ring

import "iter"

// minCap is the capacity a ring starts with: small, as most rings hold a
// message or two at a time (an idle session keeps its ring), and doubling
// reaches a burst's size in a few steps.
const minCap = 2

// Ring is a FIFO of T. The zero value is an empty ring ready to use.
type Ring[T any] struct {
	buf  []T // len(buf) is zero or a power of two
	head int // index of the oldest item
	n    int // items held
}

// Len returns the number of items held.
func (r *Ring[T]) Len() int { return r.n }

// Push adds v at the back.
func (r *Ring[T]) Push(v T) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = v
	r.n++
}

// PushFront adds v at the front, so that it is the next item Pop returns.
func (r *Ring[T]) PushFront(v T) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.head = (r.head - 1) & (len(r.buf) - 1)
	r.buf[r.head] = v
	r.n++
}

// Peek returns the oldest item without removing it. The ring must not be
// empty.
func (r *Ring[T]) Peek() T { return r.buf[r.head] }

// Pop removes and returns the oldest item. The ring must not be empty.
func (r *Ring[T]) Pop() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero // let what v refers to be collected
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return v
}

// All yields the items from oldest to newest without removing them. The ring
// must not be changed while the sequence runs.
func (r *Ring[T]) All() iter.Seq[T] {
	return func(yield func(T) bool) {
		for i := range r.n {
			if !yield(r.buf[(r.head+i)&(len(r.buf)-1)]) {
				return
			}
		}
	}
}

// Reset empties the ring. It keeps its buffer when that holds at most keep
// items and drops it otherwise, so that a ring grown for a burst does not
// keep the burst's memory.
func (r *Ring[T]) Reset(keep int) {
	if len(r.buf) > keep {
		r.buf = nil
	} else {
		clear(r.buf)
	}
	r.head, r.n = 0, 0
}

func (r *Ring[T]) grow() {
	buf := make([]T, max(minCap, 2*len(r.buf)))
	if r.n > 0 {
		k := copy(buf, r.buf[r.head:])
		copy(buf[k:], r.buf[:r.head])
	}
	r.buf, r.head = buf, 0
}

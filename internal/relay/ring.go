package relay

// ring is a FIFO of items in a circular buffer whose capacity is a power of
// two. It grows with the number of items it holds, never with the number it
// has held, so a queue that is never empty under a steady load stays at the
// size of its backlog.
type ring struct {
	buf  []item
	head int // index of the oldest item
	n    int // items held
}

// ringMin is the capacity a ring starts with.
const ringMin = 16

func (r *ring) len() int { return r.n }

func (r *ring) push(it item) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = it
	r.n++
}

// pop removes and returns the oldest item. The ring must not be empty.
func (r *ring) pop() item {
	it := r.buf[r.head]
	r.buf[r.head] = item{} // let the payload be collected
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return it
}

func (r *ring) grow() {
	buf := make([]item, max(ringMin, 2*len(r.buf)))
	if r.n > 0 {
		k := copy(buf, r.buf[r.head:])
		copy(buf[k:], r.buf[:r.head])
	}
	r.buf, r.head = buf, 0
}

// reset empties the ring; it keeps a buffer of at most keep items.
func (r *ring) reset(keep int) {
	if len(r.buf) > keep {
		r.buf = nil
	} else {
		clear(r.buf)
	}
	r.head, r.n = 0, 0
}

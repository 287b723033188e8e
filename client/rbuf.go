package client

import (
	"context"
	"sync"
)

// reconnectBuffer accounts for the messages a [Client] holds while a channel
// has no connection, across all the client's channels. The messages
// themselves wait in each channel's own queue, in order; the buffer only
// counts them and bounds their total size. It is owned by the Client
// (created in newClient, closed by shutdown); its channels reserve, release
// and put back through it and never touch its counters.
//
// Bound: Config.ReconnectBufferSize bytes. A message is admitted when it
// fits, or when the buffer is empty, so that a message larger than the
// bound still goes through, alone.
//
// Overflow policy: reserve waits for space until its context ends or the
// client closes (Send), or fails at once with [ErrBufferFull] (TrySend).
// putBack never refuses: the messages it returns had already been accepted,
// by a connection that died before writing them, so they may take the
// buffer over its bound; new messages then wait until it is below again.
//
// All methods are safe for concurrent use.
type reconnectBuffer struct {
	limit int             // bytes; immutable
	done  <-chan struct{} // the client's context: ends waits; immutable

	mu     sync.Mutex
	bytes  int           // bytes held
	msgs   int           // messages held
	closed bool          // reserve fails with ErrClosed
	space  chan struct{} // closed and replaced when space frees
}

func newReconnectBuffer(limit int, done <-chan struct{}) *reconnectBuffer {
	return &reconnectBuffer{limit: limit, done: done, space: make(chan struct{})}
}

// reserve takes room for one message of n bytes, waiting for space if
// block. It fails with ErrClosed once the buffer is closed or stop is
// closed (the sending channel closed), ErrBufferFull when full and !block,
// and ctx.Err() when ctx ends first.
func (b *reconnectBuffer) reserve(ctx context.Context, stop <-chan struct{}, n int, block bool) error {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return ErrClosed
		}
		if b.bytes == 0 || b.bytes+n <= b.limit {
			b.bytes += n
			b.msgs++
			b.mu.Unlock()
			return nil
		}
		space := b.space
		b.mu.Unlock()
		if !block {
			return ErrBufferFull
		}
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-b.done:
			return ErrClosed
		case <-stop:
			return ErrClosed
		}
	}
}

// release returns the room taken by msgs messages of n bytes in all, once
// they have left the buffer (sent, or dropped and counted).
func (b *reconnectBuffer) release(msgs, n int) {
	if msgs == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bytes -= n
	b.msgs -= msgs
	close(b.space)
	b.space = make(chan struct{})
}

// putBack takes room for msgs messages of n bytes in all that come back
// from a connection that never wrote them. It never waits or fails (see
// the overflow policy above).
func (b *reconnectBuffer) putBack(msgs, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bytes += n
	b.msgs += msgs
}

// close makes every later reserve fail with ErrClosed.
func (b *reconnectBuffer) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
}

// held returns how many messages, and bytes, the buffer holds.
func (b *reconnectBuffer) held() (msgs, bytes int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.msgs, b.bytes
}

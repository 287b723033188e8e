package udpproxy

import (
	"container/heap"
	"sync"
	"time"
)

// packet is one datagram waiting in a delayQueue.
type packet struct {
	at   time.Time // when it is due
	seq  uint64    // insertion order, breaks ties so equal delays stay FIFO
	data []byte
}

// packetHeap is a min-heap of packets ordered by (at, seq).
type packetHeap []packet

func (h packetHeap) Len() int { return len(h) }
func (h packetHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h packetHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *packetHeap) Push(x any)   { *h = append(*h, x.(packet)) }
func (h *packetHeap) Pop() any {
	old := *h
	n := len(old)
	p := old[n-1]
	old[n-1] = packet{}
	*h = old[:n-1]
	return p
}

// delayQueue is a bounded, time-ordered queue of datagrams for one direction
// of one client. A single goroutine (run) releases datagrams when they are due.
type delayQueue struct {
	limit int
	wake  chan struct{} // capacity 1: "the head may have changed"

	mu   sync.Mutex
	h    packetHeap
	seq  uint64
	dead bool
}

func newDelayQueue(limit int) *delayQueue {
	return &delayQueue{limit: limit, wake: make(chan struct{}, 1)}
}

type pushResult uint8

const (
	pushed pushResult = iota
	pushFull
	pushStopped
)

// push enqueues data to be released at at. Unless it returns pushed, the
// datagram was not enqueued.
func (q *delayQueue) push(data []byte, at time.Time) pushResult {
	q.mu.Lock()
	if q.dead {
		q.mu.Unlock()
		return pushStopped
	}
	if len(q.h) >= q.limit {
		q.mu.Unlock()
		return pushFull
	}
	q.seq++
	heap.Push(&q.h, packet{at: at, seq: q.seq, data: data})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return pushed
}

// run releases datagrams through send in (due time, insertion) order until
// done is closed. Datagrams still queued at that point are discarded.
func (q *delayQueue) run(done <-chan struct{}, send func([]byte)) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer func() {
		timer.Stop()
		q.mu.Lock()
		q.dead = true
		q.h = nil
		q.mu.Unlock()
	}()
	for {
		q.mu.Lock()
		var (
			due  []byte
			wait time.Duration = -1
		)
		if len(q.h) > 0 {
			if d := time.Until(q.h[0].at); d <= 0 {
				due = heap.Pop(&q.h).(packet).data
			} else {
				wait = d
			}
		}
		q.mu.Unlock()

		if due != nil {
			select {
			case <-done:
				return
			default:
			}
			send(due)
			continue
		}
		var timerC <-chan time.Time
		if wait > 0 {
			timer.Reset(wait) // Go ≥ 1.23: Reset needs no drain.
			timerC = timer.C
		}
		select {
		case <-done:
			return
		case <-q.wake:
		case <-timerC:
		}
		timer.Stop()
	}
}

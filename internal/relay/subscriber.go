package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/quicmsg/quicmsg/internal/ring"
	"github.com/quicmsg/quicmsg/transport"
)

// subscriber is one peer's outbound queue and the goroutine that drains it.
// Lock order: Relay.mu before subscriber.mu; the drain goroutine never holds
// mu while it calls the peer or the relay.
type subscriber struct {
	r      *Relay
	peer   Peer
	ctx    context.Context // ends when the subscriber is removed or disconnected
	cancel context.CancelFunc
	wg     sync.WaitGroup // the drain goroutine

	mu       sync.Mutex
	channels map[string]struct{} // changed under Relay.mu and mu both
	queue    ring.Ring[item]
	bytes    int
	running  bool     // a drain goroutine is running
	behind   bool     // Drop policy: overflowed and not yet caught up
	state    subState // active until disconnected or removed
	episode  uint64   // drops since the subscriber fell behind, for the log line

	counters subCounts
}

type subCounts struct {
	delivered, dropped, failed atomic.Uint64
}

type item struct {
	channel string
	data    []byte
}

type subState int

const (
	active subState = iota
	slow            // Disconnect policy tripped: the drain goroutine disconnects
	gone            // removed or disconnected: nothing is queued any more
)

// queueKeep is the largest queue capacity an idle subscriber keeps.
const queueKeep = 64

func newSubscriber(r *Relay, p Peer) *subscriber {
	ctx, cancel := context.WithCancel(r.baseCtx)
	return &subscriber{r: r, peer: p, ctx: ctx, cancel: cancel, channels: make(map[string]struct{})}
}

// enqueue queues msg without waiting and reports whether it did. At a full
// queue it applies the slow consumer policy.
func (s *subscriber) enqueue(channel string, msg []byte) bool {
	r, cfg := s.r, &s.r.cfg
	s.mu.Lock()
	switch s.state {
	case slow:
		s.mu.Unlock()
		s.counters.dropped.Add(1)
		r.dropped.Add(1)
		return false
	case gone:
		s.mu.Unlock()
		s.counters.failed.Add(1)
		r.failed.Add(1)
		return false
	}
	n := s.queue.Len()
	if n >= cfg.QueueSize || (n > 0 && s.bytes+len(msg) > cfg.QueueBytes) {
		if cfg.SlowConsumer == Disconnect {
			s.overflowDisconnect(n)
			return false
		}
		first := !s.behind
		s.behind = true
		s.episode++
		queuedBytes := s.bytes
		s.mu.Unlock()
		s.counters.dropped.Add(1)
		r.dropped.Add(1)
		if first {
			r.slowEvents.Add(1)
			r.cfg.Logger.Warn("slow consumer: dropping messages for subscriber",
				"session", s.peer.ID().String(), "queued", n, "queued_bytes", queuedBytes)
		}
		return false
	}
	s.queue.Push(item{channel: channel, data: msg})
	s.bytes += len(msg)
	r.queued.Add(1)
	start := s.startLocked()
	s.mu.Unlock()
	if start {
		go s.drain()
	}
	return true
}

// overflowDisconnect discards the queue of n messages plus the one that did
// not fit, and hands the subscriber to its drain goroutine for disconnection.
// s.mu is held and released.
func (s *subscriber) overflowDisconnect(n int) {
	r := s.r
	s.state = slow
	s.discardLocked()
	start := s.startLocked()
	s.mu.Unlock()
	s.counters.dropped.Add(uint64(n) + 1)
	r.dropped.Add(uint64(n) + 1)
	r.slowEvents.Add(1)
	s.cancel() // a Send in progress gives up
	if start {
		go s.drain()
	}
}

// startLocked marks the drain goroutine running and reports whether the
// caller must start it. s.mu is held.
func (s *subscriber) startLocked() bool {
	if s.running {
		return false
	}
	s.running = true
	s.wg.Add(1)
	s.r.wg.Add(1)
	return true
}

// discardLocked empties the queue and returns how many messages it held.
// s.mu is held.
func (s *subscriber) discardLocked() int {
	n := s.queue.Len()
	s.queue.Reset(0)
	s.bytes = 0
	s.r.queued.Add(-int64(n))
	return n
}

// drain sends queued messages to the peer, in order, until the queue is
// empty, and then exits, so that an idle subscriber holds no goroutine.
func (s *subscriber) drain() {
	defer s.r.wg.Done()
	defer s.wg.Done()
	r := s.r
	for {
		s.mu.Lock()
		if s.state == slow {
			s.state = gone
			s.running = false
			s.mu.Unlock()
			r.slowDisconnects.Add(1)
			r.cfg.Logger.Warn("slow consumer: disconnecting subscriber",
				"session", s.peer.ID().String(), "queue_size", r.cfg.QueueSize, "queue_bytes", r.cfg.QueueBytes)
			_ = s.peer.Disconnect(transport.CodeSlowConsumer,
				fmt.Sprintf("fell behind by more than %d messages or %d bytes", r.cfg.QueueSize, r.cfg.QueueBytes))
			r.detach(s)
			return
		}
		if s.state == gone || s.queue.Len() == 0 {
			s.queue.Reset(queueKeep)
			s.running = false
			s.mu.Unlock()
			return
		}
		it := s.queue.Pop()
		s.bytes -= len(it.data)
		var caughtUp uint64
		if s.behind && s.queue.Len() <= r.cfg.QueueSize/2 {
			s.behind, caughtUp, s.episode = false, s.episode, 0
		}
		_, subscribed := s.channels[it.channel]
		s.mu.Unlock()

		if caughtUp > 0 {
			r.cfg.Logger.Info("slow consumer caught up", "session", s.peer.ID().String(), "dropped", caughtUp)
		}
		var err error
		if subscribed {
			err = s.peer.Send(s.ctx, it.channel, it.data)
		}
		// Counted as queued until here, so that every routed copy is in
		// exactly one counter at any time.
		r.queued.Add(-1)
		if subscribed && err == nil {
			s.counters.delivered.Add(1)
			r.delivered.Add(1)
			continue
		}
		// Not subscribed: the peer left the channel while the message
		// waited, and sending would open the channel on the peer again.
		s.counters.failed.Add(1)
		r.failed.Add(1)
		var ce *transport.ChannelError
		if errors.As(err, &ce) {
			// The peer reset the channel or stopped reading it: it no
			// longer listens there.
			r.Unsubscribe(s.peer, it.channel)
		}
	}
}

// stop discards the queue, ends the subscriber and waits for its goroutine.
func (s *subscriber) stop() {
	s.mu.Lock()
	s.state = gone
	n := s.discardLocked()
	s.mu.Unlock()
	s.counters.failed.Add(uint64(n))
	s.r.failed.Add(uint64(n))
	s.cancel()
	s.wg.Wait()
}

func (s *subscriber) stats() SubscriberStats {
	return SubscriberStats{
		Delivered: s.counters.delivered.Load(),
		Dropped:   s.counters.dropped.Load(),
		Failed:    s.counters.failed.Load(),
	}
}

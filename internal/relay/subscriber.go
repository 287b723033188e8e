package relay

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/quicmsg/quicmsg/internal/ring"
	"github.com/quicmsg/quicmsg/transport"
)

// subscriber is one peer's outbound queue and the goroutine that drains it.
// Lock order: Relay.mu before subscriber.mu; the drain goroutine never holds
// mu while it calls the peer or the relay.
type subscriber struct {
	r    *Relay
	peer Peer
	// life ends when the subscriber is removed or the relay closes; send
	// ends with it and also when the subscriber is disconnected as a slow
	// consumer, so that a send in progress gives up.
	life, send       context.Context
	endLife, endSend context.CancelFunc
	wg               sync.WaitGroup // the drain goroutine

	mu       sync.Mutex
	channels map[string]*subscription // changed under Relay.mu and mu both
	queue    ring.Ring[item]
	msgs     int                 // message items in queue (gap items are not counted)
	bytes    int                 // payload bytes of those messages
	openGaps map[string]*gapItem // per channel, the gap item still growing
	running  bool                // a drain goroutine is running
	behind   bool                // Drop and Block: overflowed and not yet caught up
	state    subState            // active until disconnected or removed
	episode  uint64              // drops since the subscriber fell behind, for the log line
	discards map[string]uint64   // slow: messages discarded per channel, for the gap notices
	room     chan struct{}       // closed when the queue may have room; made by a waiting Publish

	counters subCounts
}

type subCounts struct {
	delivered, dropped, failed atomic.Uint64
}

// item is a message, or a gap notice when gap is set.
type item struct {
	channel string
	msg     *transport.Message
	gap     *gapItem
}

// gapItem counts the messages dropped for a channel at one place of the
// queue. It grows while it is the channel's last item; a message queued for
// the channel closes it.
type gapItem struct{ missed uint64 }

type subState int

const (
	active subState = iota
	slow            // over the limit under Disconnect or Block: the drain goroutine disconnects
	gone            // removed or disconnected: nothing is queued any more
)

// outcome is what enqueue did with a copy.
type outcome int

const (
	queued   outcome = iota
	rejected         // dropped or failed, and counted
	full             // Block policy: the caller waits for room (counted as queued meanwhile)
)

// queueKeep is the largest queue capacity an idle subscriber keeps.
const queueKeep = 64

func newSubscriber(r *Relay, p Peer) *subscriber {
	s := &subscriber{r: r, peer: p, channels: make(map[string]*subscription), openGaps: make(map[string]*gapItem)}
	s.life, s.endLife = context.WithCancel(r.baseCtx)
	s.send, s.endSend = context.WithCancel(s.life)
	return s
}

// fullLocked reports whether a message of size bytes does not fit. s.mu is
// held.
func (s *subscriber) fullLocked(size int) bool {
	cfg := &s.r.cfg
	return s.msgs >= cfg.QueueSize || (s.msgs > 0 && s.bytes+size > cfg.QueueBytes)
}

// hasRoom reports whether a message of size bytes would be queued now.
func (s *subscriber) hasRoom(size int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == active && !s.fullLocked(size)
}

// enqueue queues m for channel without waiting. At a full queue it applies
// the slow consumer policy; under Block it returns full and the caller
// waits (await).
func (s *subscriber) enqueue(channel string, m *transport.Message) outcome {
	s.mu.Lock()
	switch s.state {
	case slow:
		s.discards[channel]++
		s.mu.Unlock()
		s.count(&s.counters.dropped, &s.r.dropped, 1)
		return rejected
	case gone:
		s.mu.Unlock()
		s.count(&s.counters.failed, &s.r.failed, 1)
		return rejected
	}
	if !s.fullLocked(len(m.Data)) {
		s.pushLocked(channel, m)
		return queued
	}
	switch s.r.cfg.SlowConsumer {
	case Disconnect:
		s.overflowDisconnect(channel)
	case Block:
		first := !s.behind
		s.behind = true
		s.mu.Unlock()
		s.r.queued.Add(1)
		if first {
			s.r.slowEvents.Add(1)
			s.r.cfg.Logger.Warn("slow consumer: publishers wait for subscriber", "session", s.peer.ID().String(),
				"timeout", s.r.cfg.PublishTimeout)
		}
		return full
	default:
		s.dropLocked(channel)
	}
	return rejected
}

func (s *subscriber) count(mine, relay *atomic.Uint64, n uint64) {
	mine.Add(n)
	relay.Add(n)
}

// pushLocked queues m for channel; s.mu is held and released.
func (s *subscriber) pushLocked(channel string, m *transport.Message) {
	s.queue.Push(item{channel: channel, msg: m})
	s.msgs++
	s.bytes += len(m.Data)
	delete(s.openGaps, channel)
	s.r.queued.Add(1)
	start := s.startLocked()
	s.mu.Unlock()
	if start {
		go s.drain()
	}
}

// dropLocked drops a copy for channel under the Drop policy: it is counted
// in the channel's open gap item, pushed if there is none. s.mu is held and
// released.
func (s *subscriber) dropLocked(channel string) {
	g := s.openGaps[channel]
	if g == nil {
		g = &gapItem{}
		s.openGaps[channel] = g
		s.queue.Push(item{channel: channel, gap: g})
	}
	g.missed++
	first := !s.behind
	s.behind = true
	s.episode++
	n, queuedBytes := s.msgs, s.bytes
	start := s.startLocked()
	s.mu.Unlock()
	if start {
		go s.drain()
	}
	s.count(&s.counters.dropped, &s.r.dropped, 1)
	if first {
		s.r.slowEvents.Add(1)
		s.r.cfg.Logger.Warn("slow consumer: dropping messages for subscriber (it gets gap notices)",
			"session", s.peer.ID().String(), "queued", n, "queued_bytes", queuedBytes)
	}
}

// overflowDisconnect discards the queue plus the copy for channel that did
// not fit, and hands the subscriber to its drain goroutine, which sends the
// gap notices and disconnects it. s.mu is held and released.
func (s *subscriber) overflowDisconnect(channel string) {
	s.state = slow
	s.discards = make(map[string]uint64)
	s.discards[channel]++
	n := 0
	for it := range s.queue.All() {
		if it.gap != nil {
			s.discards[it.channel] += it.gap.missed
			continue
		}
		s.discards[it.channel]++
		n++
	}
	s.discardLocked()
	s.wakeLocked()
	start := s.startLocked()
	s.mu.Unlock()
	s.count(&s.counters.dropped, &s.r.dropped, uint64(n)+1)
	s.r.slowEvents.Add(1)
	s.endSend() // a send in progress gives up
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

// wakeLocked wakes the Publish calls waiting for room. s.mu is held.
func (s *subscriber) wakeLocked() {
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
}

// discardLocked empties the queue and returns how many messages it held.
// s.mu is held.
func (s *subscriber) discardLocked() int {
	n := s.msgs
	s.queue.Reset(0)
	clear(s.openGaps)
	s.msgs, s.bytes = 0, 0
	s.r.queued.Add(-int64(n))
	return n
}

// await queues m for channel once the queue has room (Block policy). The
// copy was counted as queued by enqueue; await settles it: queued, failed
// when ctx ends or the subscriber goes, dropped when timeout fires first
// (and the subscriber is disconnected).
func (s *subscriber) await(ctx context.Context, timeout <-chan struct{}, channel string, m *transport.Message) bool {
	for {
		s.mu.Lock()
		if s.state == active && !s.fullLocked(len(m.Data)) {
			s.r.queued.Add(-1)
			s.pushLocked(channel, m)
			return true
		}
		if s.state != active {
			s.mu.Unlock()
			return s.settleHeld(channel, nil)
		}
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		s.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			s.r.queued.Add(-1)
			s.count(&s.counters.failed, &s.r.failed, 1)
			return false
		case <-timeout:
			return s.settleHeld(channel, m)
		}
	}
}

// settleHeld settles a copy that a blocked Publish held for channel: m is
// set when the publish timeout passed, nil when the subscriber left the
// active state. An active subscriber whose queue is still full is
// disconnected (it has room after all: m is queued). It reports whether m
// was queued.
func (s *subscriber) settleHeld(channel string, m *transport.Message) bool {
	r := s.r
	s.mu.Lock()
	r.queued.Add(-1)
	switch {
	case s.state == active && m != nil && !s.fullLocked(len(m.Data)):
		s.pushLocked(channel, m)
		return true
	case s.state == active:
		r.publishTimeouts.Add(1)
		r.cfg.Logger.Warn("slow consumer: publish timed out waiting for subscriber",
			"session", s.peer.ID().String(), "channel", channel, "timeout", r.cfg.PublishTimeout)
		s.overflowDisconnect(channel)
	case s.state == slow:
		s.discards[channel]++
		s.mu.Unlock()
		s.count(&s.counters.dropped, &r.dropped, 1)
	default:
		s.mu.Unlock()
		s.count(&s.counters.failed, &r.failed, 1)
	}
	return false
}

// drain sends queued items to the peer, in order, until the queue is empty,
// and then exits, so that an idle subscriber holds no goroutine.
func (s *subscriber) drain() {
	defer s.r.wg.Done()
	defer s.wg.Done()
	for {
		it, missed, subscribed, ok := s.next()
		if !ok {
			return
		}
		if it.gap != nil {
			if subscribed {
				s.sendGap(it.channel, missed)
			}
			continue
		}
		s.sendMsg(it, subscribed)
	}
}

// next pops the next item. At the end of the queue, or once the
// subscriber is gone, it returns ok false; for a slow subscriber it first
// disconnects it.
func (s *subscriber) next() (it item, missed uint64, subscribed, ok bool) {
	r := s.r
	s.mu.Lock()
	if s.state == slow {
		s.mu.Unlock()
		s.disconnect()
		return it, 0, false, false
	}
	if s.state == gone || s.queue.Len() == 0 {
		s.queue.Reset(queueKeep)
		s.running = false
		s.mu.Unlock()
		return it, 0, false, false
	}
	it = s.queue.Pop()
	if it.gap != nil {
		missed = it.gap.missed
		if s.openGaps[it.channel] == it.gap {
			delete(s.openGaps, it.channel)
		}
	} else {
		s.msgs--
		s.bytes -= len(it.msg.Data)
		s.wakeLocked()
	}
	var caughtUp uint64
	// Caught up: under Drop at half the queue; under Block (where a full
	// queue makes publishers wait) once it is empty, so that a subscriber
	// that stays just behind is one event, not one per message.
	caughtUpAt := r.cfg.QueueSize / 2
	if r.cfg.SlowConsumer == Block {
		caughtUpAt = 0
	}
	if s.behind && s.msgs <= caughtUpAt {
		s.behind, caughtUp, s.episode = false, s.episode, 0
	}
	_, subscribed = s.channels[it.channel]
	s.mu.Unlock()
	if caughtUp > 0 {
		r.cfg.Logger.Info("slow consumer caught up", "session", s.peer.ID().String(), "dropped", caughtUp)
	}
	return it, missed, subscribed, true
}

// sendGap tells the peer, in order, that missed messages of channel were
// dropped here.
func (s *subscriber) sendGap(channel string, missed uint64) {
	err := s.peer.SendGap(s.send, channel, transport.Gap{Missed: missed, Reason: transport.GapSlowConsumer})
	if err != nil {
		s.r.cfg.Logger.Debug("gap notice not sent", "session", s.peer.ID().String(), "channel", channel, "missed", missed, "err", err)
		return
	}
	s.r.slowGaps.add(missed)
}

// sendMsg sends a message item, or counts it failed when its channel is no
// longer subscribed: sending would open the channel on the peer again.
func (s *subscriber) sendMsg(it item, subscribed bool) {
	r := s.r
	var err error
	if subscribed {
		err = s.peer.SendMsg(s.send, it.channel, it.msg)
	}
	// Counted as queued until here, so that every routed copy is in
	// exactly one counter at any time.
	r.queued.Add(-1)
	if subscribed && err == nil {
		s.count(&s.counters.delivered, &r.delivered, 1)
		return
	}
	s.count(&s.counters.failed, &r.failed, 1)
	if !subscribed {
		return
	}
	s.mu.Lock()
	if s.state == slow {
		// Given up as the subscriber is disconnected: its gap notice
		// counts this message too.
		s.discards[it.channel]++
	}
	s.mu.Unlock()
	var ce *transport.ChannelError
	if errors.As(err, &ce) {
		// The peer reset the channel or stopped reading it: it no
		// longer listens there.
		r.Unsubscribe(s.peer, it.channel)
	}
}

// disconnect ends a slow subscriber: it ends its subscriptions, sends a gap
// notice (GapDisconnect) on every channel that lost messages and closes the
// peer gracefully with CodeSlowConsumer, all within DisconnectTimeout.
func (s *subscriber) disconnect() {
	r := s.r
	r.detach(s) // no copy is routed to s after this
	s.mu.Lock()
	discards := s.discards
	s.discards = nil
	s.state = gone
	s.running = false
	s.mu.Unlock()
	r.slowDisconnects.Add(1)
	reason := fmt.Sprintf("fell behind by more than %d messages or %d bytes", r.cfg.QueueSize, r.cfg.QueueBytes)
	if r.cfg.SlowConsumer == Block {
		reason = fmt.Sprintf("queue full (%d messages or %d bytes) for longer than %v", r.cfg.QueueSize, r.cfg.QueueBytes, r.cfg.PublishTimeout)
	}
	r.cfg.Logger.Warn("slow consumer: disconnecting subscriber", "session", s.peer.ID().String(), "reason", reason)
	ctx, cancel := context.WithTimeout(s.life, DisconnectTimeout)
	defer cancel()
	for _, ch := range slices.Sorted(maps.Keys(discards)) {
		n := discards[ch]
		if err := s.peer.SendGap(ctx, ch, transport.Gap{Missed: n, Reason: transport.GapDisconnect}); err == nil {
			r.disconnectGaps.add(n)
		}
	}
	_ = s.peer.DisconnectGracefully(ctx, transport.CodeSlowConsumer, reason)
}

// stop discards the queue, ends the subscriber and waits for its goroutine.
func (s *subscriber) stop() {
	s.mu.Lock()
	s.state = gone
	n := s.discardLocked()
	s.wakeLocked()
	s.mu.Unlock()
	s.count(&s.counters.failed, &s.r.failed, uint64(n))
	s.endLife()
	s.wg.Wait()
}

func (s *subscriber) stats() SubscriberStats {
	return SubscriberStats{
		Delivered: s.counters.delivered.Load(),
		Dropped:   s.counters.dropped.Load(),
		Failed:    s.counters.failed.Load(),
	}
}

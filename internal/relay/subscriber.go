package relay

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quicmsg/quicmsg/internal/unsent"
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
	queue    queue
	msgs     int                 // message items in queue (gap items are not counted)
	bytes    int                 // payload bytes of those messages
	openGaps map[string]*gapItem // per channel, the gap item still growing
	running  bool                // a drain goroutine is running
	behind   bool                // Drop and Block: overflowed and not yet caught up
	state    subState            // active until disconnected or removed
	episode  uint64              // drops since the subscriber fell behind, for the log line
	discards map[string]uint64   // slow: messages discarded per channel, for the gap notices
	why      string              // slow: the disconnect reason when it is not the queue's
	room     chan struct{}       // closed when the queue may have room; made by a waiting Publish

	// The queueing delay sample (Config.OnQueueDelay): pushed and taken
	// count the messages that entered and left the queue; probe is the
	// pushed count of the sampled message still queued (0: none), which
	// entered at probeAt.
	pushed, taken, probe uint64
	probeAt              time.Time

	// out is the batch handed to the peer: filled by next under mu and
	// read by the drain goroutine, which alone uses it; emptied after
	// each batch, so that it holds no payload, and given back to batches
	// when the queue is empty.
	out []transport.Message

	counters subCounts
}

type subCounts struct {
	delivered, dropped, failed atomic.Uint64
}

// item is a message, or a gap notice when gap is set. The message is a
// copy of the published one, sharing its payload and headers.
type item struct {
	channel string
	msg     transport.Message
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

// maxBatch is the most messages the drain goroutine hands to the peer in
// one Peer.SendMsgs.
const maxBatch = 64

// batches holds the drain goroutines' batch buffers (subscriber.out): a
// subscriber takes one when it takes its first batch and gives it back when
// its queue is empty, so that an idle subscriber holds none and one whose
// drain goroutine comes and goes with every burst allocates none.
var batches = sync.Pool{New: func() any { return new([maxBatch]transport.Message) }}

func newSubscriber(r *Relay, p Peer) *subscriber {
	s := &subscriber{r: r, peer: p, channels: make(map[string]*subscription), openGaps: make(map[string]*gapItem)}
	s.life, s.endLife = context.WithCancel(r.baseCtx)
	s.send, s.endSend = context.WithCancel(s.life)
	return s
}

// fullLocked reports whether a message of size bytes does not fit. s.mu is
// held.
func (s *subscriber) fullLocked(size int) bool {
	return s.msgs >= s.r.limitSize() || (s.msgs > 0 && s.bytes+size > s.r.limitBytes())
}

// hasRoom reports whether a message of size bytes would be queued now.
func (s *subscriber) hasRoom(size int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == active && !s.fullLocked(size)
}

// enqueue queues m for channel without waiting. At a full queue it applies
// the slow consumer policy; under Block it returns full and the caller
// waits (await). The caller counted the copy in Relay.queued: it stays
// counted when queued or full, and the caller takes it off when rejected.
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
		if first {
			s.r.slowEvents.Add(1)
			s.r.cfg.Logger.Warn("slow consumer: publishers wait for subscriber", "session", s.peer.ID().String(),
				"timeout", s.r.limitTimeout())
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

// pushLocked queues m for channel; s.mu is held and released. The copy
// was counted in Relay.queued before (route, or as held under Block).
func (s *subscriber) pushLocked(channel string, m *transport.Message) {
	s.queue.Push(item{channel: channel, msg: *m})
	s.msgs++
	s.pushed++
	if s.probe == 0 && s.r.cfg.OnQueueDelay != nil && (s.pushed-1)%QueueDelaySample == 0 {
		s.probe, s.probeAt = s.pushed, time.Now()
	}
	s.bytes += len(m.Data)
	delete(s.openGaps, channel)
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
	n := s.goSlowLocked(channel, 1)
	start := s.startLocked()
	s.mu.Unlock()
	s.count(&s.counters.dropped, &s.r.dropped, uint64(n)+1)
	s.r.slowEvents.Add(1)
	s.endSend() // a send in progress gives up
	if start {
		go s.drain()
	}
}

// goSlowLocked marks the subscriber slow and moves its queue into the
// per-channel discards, with extra more for channel. It returns how many
// queued messages it discarded. s.mu is held.
func (s *subscriber) goSlowLocked(channel string, extra uint64) int {
	s.state = slow
	s.discards = make(map[string]uint64)
	s.discards[channel] += extra
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
	return n
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
	s.takenLocked(n)
	s.queue.Reset()
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
	if s.state == active && m != nil && !s.fullLocked(len(m.Data)) {
		s.pushLocked(channel, m) // stays counted in queued
		return true
	}
	r.queued.Add(-1)
	switch {
	case s.state == active:
		r.publishTimeouts.Add(1)
		r.cfg.Logger.Warn("slow consumer: publish timed out waiting for subscriber",
			"session", s.peer.ID().String(), "channel", channel, "timeout", r.limitTimeout())
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
		b, ok := s.next()
		if !ok {
			return
		}
		if b.gap {
			if b.subscribed {
				s.sendGap(b.channel, b.missed, transport.GapSlowConsumer, &s.r.slowGaps)
			}
			continue
		}
		s.sendMsgs(b.channel, b.msgs, b.subscribed)
		clear(b.msgs)
		if !b.sampled.IsZero() && b.subscribed {
			s.r.cfg.OnQueueDelay(time.Since(b.sampled))
		}
	}
}

// batch is what next takes from the queue: a gap notice, or messages of
// one channel in order.
type batch struct {
	channel    string
	gap        bool
	missed     uint64              // gap: the messages it reports
	msgs       []transport.Message // s.out
	subscribed bool                // the channel was subscribed when taken
	sampled    time.Time           // when the sampled message among msgs was queued (Config.OnQueueDelay)
}

// next takes the next gap item, or the next messages up to the first gap
// item, the first item of another channel, or maxBatch. At the end of the
// queue, or once the subscriber is gone, it returns ok false; for a slow
// subscriber it first disconnects it.
func (s *subscriber) next() (b batch, ok bool) {
	s.mu.Lock()
	if s.state == slow {
		s.mu.Unlock()
		s.disconnect()
		return b, false
	}
	if s.state == gone || s.queue.Len() == 0 {
		s.takenLocked(s.msgs)
		s.queue.Reset()
		if s.out != nil {
			// drain cleared what it sent: the buffer holds no payload.
			batches.Put((*[maxBatch]transport.Message)(s.out[:maxBatch]))
			s.out = nil
		}
		s.running = false
		s.mu.Unlock()
		return b, false
	}
	it := s.queue.Pop()
	b.channel = it.channel
	if it.gap != nil {
		b.gap, b.missed = true, it.gap.missed
		if s.openGaps[it.channel] == it.gap {
			delete(s.openGaps, it.channel)
		}
	} else {
		b.msgs = s.takeLocked(it)
		b.sampled = s.takenLocked(len(b.msgs))
	}
	caughtUp := s.caughtUpLocked()
	_, b.subscribed = s.channels[it.channel]
	s.mu.Unlock()
	if caughtUp > 0 {
		s.r.cfg.Logger.Info("slow consumer caught up", "session", s.peer.ID().String(), "dropped", caughtUp)
	}
	return b, true
}

// takeLocked takes first, a popped message item, and the message items of
// its channel that follow it, up to maxBatch, into s.out and returns them.
// s.mu is held.
func (s *subscriber) takeLocked(first item) []transport.Message {
	if s.out == nil {
		s.out = batches.Get().(*[maxBatch]transport.Message)[:0]
	}
	s.out = append(s.out[:0], first.msg)
	s.bytes -= len(first.msg.Data)
	for len(s.out) < s.r.batch && s.queue.Len() > 0 {
		nx := s.queue.Peek()
		if nx.gap != nil || nx.channel != first.channel {
			break
		}
		it := s.queue.Pop()
		s.out = append(s.out, it.msg)
		s.bytes -= len(it.msg.Data)
	}
	s.msgs -= len(s.out)
	s.wakeLocked()
	return s.out
}

// takenLocked counts n messages that left the queue and returns when the
// sampled one among them entered it, if it is among them, else the zero
// time. s.mu is held.
func (s *subscriber) takenLocked(n int) time.Time {
	s.taken += uint64(n)
	if s.probe == 0 || s.taken < s.probe {
		return time.Time{}
	}
	s.probe = 0
	return s.probeAt
}

// caughtUpLocked reports, when a subscriber that fell behind has caught
// up, how many messages it dropped meanwhile, else 0: under Drop at half
// the queue; under Block (where a full queue makes publishers wait) once
// it is empty, so that a subscriber that stays just behind is one event,
// not one per message. s.mu is held.
func (s *subscriber) caughtUpLocked() uint64 {
	caughtUpAt := s.r.limitSize() / 2
	if s.r.cfg.SlowConsumer == Block {
		caughtUpAt = 0
	}
	if !s.behind || s.msgs > caughtUpAt {
		return 0
	}
	n := s.episode
	s.behind, s.episode = false, 0
	return n
}

// sendGap tells the peer, in order, that missed messages of channel were
// dropped here (reason GapSlowConsumer, counted in gaps) or refused by its
// connection (GapRefused). A peer that cannot be told (it takes no gap
// notices) is disconnected instead: no message is dropped for it silently.
func (s *subscriber) sendGap(channel string, missed uint64, reason transport.GapReason, gaps *gapCounter) {
	err := s.peer.SendGap(s.send, channel, transport.Gap{Missed: missed, Reason: reason})
	switch {
	case err == nil:
		gaps.add(missed)
	case errors.Is(err, transport.ErrHeadersUnsupported):
		s.giveUp(channel, missed, fmt.Sprintf("missed %d messages of %q (%v) and takes no gap notices to be told", missed, channel, reason))
	default:
		// The channel or the connection ended: the peer learns that
		// from its end.
		s.r.cfg.Logger.Debug("gap notice not sent", "session", s.peer.ID().String(), "channel", channel, "missed", missed, "err", err)
	}
}

// giveUp hands the subscriber to its drain goroutine for disconnection with
// why as the reason; missed copies of channel count in its gap notice. The
// drain goroutine calls it.
func (s *subscriber) giveUp(channel string, missed uint64, why string) {
	s.mu.Lock()
	if s.state != active {
		if s.discards != nil {
			s.discards[channel] += missed
		}
		s.mu.Unlock()
		return
	}
	n := s.goSlowLocked(channel, missed)
	s.why = why
	s.mu.Unlock()
	s.count(&s.counters.dropped, &s.r.dropped, uint64(n))
	s.r.slowEvents.Add(1)
}

// sendMsgs sends msgs, messages of channel taken from the queue, or
// counts them failed when the channel is no longer subscribed: sending
// would open the channel on the peer again. A message the peer refuses
// is settled on its own (sendFailed) and the rest go on.
func (s *subscriber) sendMsgs(channel string, msgs []transport.Message, subscribed bool) {
	r := s.r
	for len(msgs) > 0 {
		if !subscribed {
			r.queued.Add(-int64(len(msgs)))
			s.count(&s.counters.failed, &r.failed, uint64(len(msgs)))
			return
		}
		n, err := s.peer.SendMsgs(s.send, channel, msgs)
		// Counted as queued until here, so that every routed copy is in
		// exactly one counter at any time.
		r.queued.Add(-int64(n))
		s.count(&s.counters.delivered, &r.delivered, uint64(n))
		msgs = msgs[n:]
		if len(msgs) == 0 {
			return
		}
		if err != nil {
			s.sendFailed(channel, err)
			msgs = msgs[1:]
		}
		// The peer took part of the batch: the rest go only while the
		// channel is still subscribed.
		s.mu.Lock()
		_, subscribed = s.channels[channel]
		s.mu.Unlock()
	}
}

// sendFailed settles a message of channel that the peer did not take,
// with err.
func (s *subscriber) sendFailed(channel string, err error) {
	r := s.r
	r.queued.Add(-1)
	s.count(&s.counters.failed, &r.failed, 1)
	s.mu.Lock()
	if s.state == slow {
		// Given up as the subscriber is disconnected: its gap notice
		// counts this message too.
		s.discards[channel]++
	}
	s.mu.Unlock()
	var ce *transport.ChannelError
	switch {
	case errors.As(err, &ce):
		// The peer reset the channel or stopped reading it: it no
		// longer listens there.
		r.Unsubscribe(s.peer, channel)
	case unsent.Refused(err):
		// The peer's connection refused this copy alone (too large for
		// it, or headers it does not take): it is told, in order.
		s.sendGap(channel, 1, transport.GapRefused, &r.refusedGaps)
	}
}

// disconnect ends a slow subscriber: it ends its subscriptions, sends a gap
// notice (GapDisconnect) on every channel that lost messages and closes the
// peer gracefully with CodeSlowConsumer, all within DisconnectTimeout.
func (s *subscriber) disconnect() {
	r := s.r
	r.detach(s) // no copy is routed to s after this
	s.mu.Lock()
	discards, why := s.discards, s.why
	s.discards = nil
	s.state = gone
	s.running = false
	s.mu.Unlock()
	r.slowDisconnects.Add(1)
	reason := fmt.Sprintf("fell behind by more than %d messages or %d bytes", r.limitSize(), r.limitBytes())
	switch {
	case why != "":
		reason = why
	case r.cfg.SlowConsumer == Block:
		reason = fmt.Sprintf("queue full (%d messages or %d bytes) for longer than %v", r.limitSize(), r.limitBytes(), r.limitTimeout())
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

package relay

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/quicmsg/quicmsg/transport"
)

// Peer is a subscriber as the relay sees it. *session.Session implements it.
// Peers are compared with ==, so implementations should be pointers.
type Peer interface {
	// ID identifies the peer in log lines.
	ID() transport.SessionID
	// SendMsgs sends msgs on channel, in order, waiting while the peer
	// cannot take them, until ctx ends, and returns how many it accepted:
	// on an error msgs[n] failed with it and the rest were not tried. It
	// must not modify msgs nor what they refer to: the same payload goes
	// to every subscriber.
	SendMsgs(ctx context.Context, channel string, msgs []transport.Message) (int, error)
	// SendGap sends a gap notice on channel, in order with its messages.
	SendGap(ctx context.Context, channel string, g transport.Gap) error
	// DisconnectGracefully closes the peer with code and reason once what
	// was sent to it has reached it, or when ctx ends.
	DisconnectGracefully(ctx context.Context, code transport.ErrorCode, reason string) error
}

// ErrClosed is returned by Subscribe and DeliverRemote after Close.
var ErrClosed = errors.New("relay: closed")

// GapStats count the gap notices the relay sent for one reason and the
// messages they reported missed.
type GapStats struct {
	Notices  uint64
	Messages uint64
}

type gapCounter struct{ notices, messages atomic.Uint64 }

func (g *gapCounter) add(missed uint64) {
	g.notices.Add(1)
	g.messages.Add(missed)
}

func (g *gapCounter) load() GapStats {
	return GapStats{Notices: g.notices.Load(), Messages: g.messages.Load()}
}

// Stats are a relay's counters. Every copy of a message addressed to a
// subscriber (Routed) ends up Delivered, Dropped or Failed, or is Queued.
type Stats struct {
	Subscribers   int // peers subscribed to at least one channel
	Subscriptions int // (peer, channel) pairs
	Channels      int // subjects and patterns with at least one subscription
	// Queued counts copies waiting in subscriber queues or being sent, and
	// those a Publish holds while it waits for room (Block policy); while a
	// Publish routes a message, it counts every copy that Publish may queue.
	Queued int

	Published               uint64 // messages passed to Publish and accepted
	Refused                 uint64 // messages Publish refused (wildcard or invalid subject)
	Routed                  uint64 // copies addressed to subscribers other than the publisher
	Delivered               uint64 // copies that Peer.SendMsgs accepted
	Dropped                 uint64 // copies discarded because a subscriber was too slow
	Failed                  uint64 // copies discarded because sending failed or the subscriber left
	NoResponders            uint64 // "no responders" replies sent for requests routed to nobody
	SlowConsumerEvents      uint64 // times a subscriber's queue overflowed
	SlowConsumerDisconnects uint64 // subscribers closed with transport.CodeSlowConsumer
	PublishTimeouts         uint64 // Block policy: waits for a full queue that timed out

	// With a Backplane: messages handed to Backplane.Forward that it
	// took (Forwarded) or refused (ForwardFailed), and messages from
	// other nodes passed to DeliverRemote (Remote) and refused there
	// (RemoteRefused: a subject this relay refuses).
	Forwarded, ForwardFailed, Remote, RemoteRefused uint64

	// SlowConsumerGaps are the gap notices of the Drop policy
	// (transport.GapSlowConsumer); DisconnectGaps those sent before a slow
	// consumer is disconnected (transport.GapDisconnect); RefusedGaps those
	// for copies the subscriber's connection refused (transport.GapRefused:
	// larger than its limit, or headers it does not take).
	SlowConsumerGaps, DisconnectGaps, RefusedGaps GapStats

	// Policy is the slow consumer policy in force.
	Policy SlowConsumerPolicy
}

// SubscriberStats are one subscriber's counters, returned by [Relay.Remove].
type SubscriberStats struct {
	Delivered uint64
	Dropped   uint64
	Failed    uint64
}

// Relay routes published messages to the subscriptions whose subject or
// pattern matches, through per-subscriber bounded queues. All methods are
// safe for concurrent use; none of them waits for a subscriber except
// Remove and Close, which wait for its goroutine to stop, and Publish under
// the Block policy.
type Relay struct {
	cfg     Config
	batch   int // the most messages a drain goroutine takes at once: maxBatch
	baseCtx context.Context
	cancel  context.CancelFunc

	// The limits in force: cfg.QueueSize, QueueBytes and PublishTimeout
	// as New or SetLimits last set them. Read without a lock; the cfg
	// fields are not read for them.
	queueSize, queueBytes, publishTimeout atomic.Int64

	bp   Backplane  // cfg.Backplane: nil on a single node
	bpMu sync.Mutex // held while reporting interest; before mu

	mu       sync.RWMutex
	subs     *sublist
	peers    map[Peer]*subscriber
	closed   bool
	interest []interestChange // changes not yet reported to bp

	wg sync.WaitGroup // drain goroutines

	published, refused, routed, delivered, dropped, failed atomic.Uint64
	noResponders, slowEvents, slowDisconnects              atomic.Uint64
	publishTimeouts                                        atomic.Uint64
	forwarded, forwardFailed, remote, remoteRefused        atomic.Uint64
	slowGaps, disconnectGaps, refusedGaps                  gapCounter
	queued                                                 atomic.Int64
}

// New returns a relay. cfg may be nil for the defaults; an invalid field is
// reported by name.
func New(cfg *Config) (*Relay, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Relay{cfg: c, batch: maxBatch, bp: c.Backplane, subs: newSublist(), peers: make(map[Peer]*subscriber)}
	r.setLimits(c)
	r.baseCtx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Subscribe subscribes p's channel: from now on, messages that other peers
// publish to a subject the channel's name matches (the name itself, or
// with wildcards "*" and ">" a pattern) are queued for p and sent on that
// channel. With a group, the subscription joins the queue group of that
// name on the same pattern: each message goes to one member. Subscribing
// the same channel again changes its group. It returns the error of
// transport.ValidatePattern for an invalid pattern, ErrClosed after Close.
func (r *Relay) Subscribe(p Peer, channel, group string) error {
	if err := transport.ValidatePattern(channel); err != nil {
		return err
	}
	r.mu.Lock()
	err := r.subscribeLocked(p, channel, group)
	r.mu.Unlock()
	r.report()
	return err
}

func (r *Relay) subscribeLocked(p Peer, channel, group string) error {
	if r.closed {
		return ErrClosed
	}
	sub := r.peers[p]
	if sub == nil {
		sub = newSubscriber(r, p)
		r.peers[p] = sub
	}
	if old := sub.channels[channel]; old != nil {
		if old.group == group {
			return nil
		}
		r.unsubscribeLocked(old)
	}
	wildcard := transport.IsWildcard(channel)
	sn := &subscription{sub: sub, channel: channel, group: group, wildcard: wildcard}
	if r.subs.insert(sn, wildcard) {
		r.noteLocked(sn, true)
	}
	sub.mu.Lock()
	sub.channels[channel] = sn
	sub.mu.Unlock()
	return nil
}

// Unsubscribe ends p's subscription on channel. Messages of that channel
// still queued for p are discarded and counted as failed.
func (r *Relay) Unsubscribe(p Peer, channel string) {
	r.mu.Lock()
	if sub := r.peers[p]; sub != nil {
		sub.mu.Lock()
		sn := sub.channels[channel]
		delete(sub.channels, channel)
		sub.mu.Unlock()
		if sn != nil {
			r.unsubscribeLocked(sn)
		}
	}
	r.mu.Unlock()
	r.report()
}

// unsubscribeLocked takes sn out of the sublist; r.mu is held.
func (r *Relay) unsubscribeLocked(sn *subscription) {
	if r.subs.remove(sn, sn.wildcard) {
		r.noteLocked(sn, false)
	}
}

// detach ends every subscription of sub, which stays known until Remove.
func (r *Relay) detach(sub *subscriber) {
	r.mu.Lock()
	sub.mu.Lock()
	for _, sn := range sub.channels {
		r.unsubscribeLocked(sn)
	}
	clear(sub.channels)
	sub.mu.Unlock()
	r.mu.Unlock()
	r.report()
}

// Remove forgets p: it ends all of p's subscriptions, discards what is queued
// for it, stops its goroutine and waits for it. Call it when the peer has
// gone. It returns p's counters.
func (r *Relay) Remove(p Peer) SubscriberStats {
	r.mu.Lock()
	sub := r.peers[p]
	if sub == nil {
		r.mu.Unlock()
		return SubscriberStats{}
	}
	delete(r.peers, p)
	for _, sn := range sub.channels {
		r.unsubscribeLocked(sn)
	}
	r.mu.Unlock()
	r.report()
	sub.stop()
	return sub.stats()
}

// held is a copy that a Publish holds for a full queue (Block policy).
type held struct {
	sub     *subscriber
	channel string
}

// Publish queues m for every subscription that matches m.Subject (a
// concrete subject), except those of from, and returns how many copies it
// queued. m.Subject with a wildcard token is refused with the
// transport.ErrWildcardSubject error of transport.ValidateSubject. Each
// copy is a copy of *m that shares m.Data and m.Header, kept until it is
// sent: the caller may reuse *m once Publish returns, but must not modify
// m.Data nor m.Header afterwards.
//
// Under the Drop and Disconnect policies Publish never waits. Under Block
// it waits, without holding any lock, for room in each full queue until
// ctx ends or Config.PublishTimeout passes; then it disconnects that
// subscriber and goes on.
//
// A message with a reply-to header that matches no subscription makes the
// relay publish a "no responders" reply (HeaderStatus
// transport.StatusNoResponders, HeaderInReplyTo its msg-id) to the
// reply-to subject.
func (r *Relay) Publish(ctx context.Context, from Peer, m *transport.Message) (int, error) {
	if err := transport.ValidateSubject(m.Subject); err != nil {
		r.refused.Add(1)
		return 0, err
	}
	r.published.Add(1)
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return 0, nil
	}
	routed, n, waits := r.route(from, m)
	r.mu.RUnlock()
	if len(waits) > 0 {
		n += r.awaitRoom(ctx, waits, m)
	}
	if r.bp != nil {
		if r.forward(m, routed) {
			// Responders may be on other nodes: no responders is the
			// backplane's to report.
			return n, nil
		}
		// Not forwarded: the backplane will pick no member of the
		// queue groups, so this node does.
		gr, gn := r.routeGroups(ctx, from, m)
		routed, n = routed+gr, n+gn
	}
	if routed == 0 && m.ReplyTo() != "" {
		r.noResponders.Add(1)
		reply := &transport.Message{Subject: m.ReplyTo()}
		reply.Header.Add(transport.HeaderStatus, transport.StatusNoResponders)
		reply.Header.Add(transport.HeaderInReplyTo, m.ID())
		_, _ = r.Publish(ctx, nil, reply)
	}
	return n, nil
}

// route queues m for the matching subscriptions; r.mu is read-held. It
// returns the copies routed and queued, and those that wait for room.
//
// The copies are counted in r.queued with one addition before they are
// queued (copies) and one correction after, not one addition per copy: r.queued is
// written by every subscriber's drain goroutine as well, and in a fan-out
// to ten, ten contended additions per message took 4–5 % of quicsrv's CPU.
// Counted first, a copy that a drain goroutine sends before route returns
// never makes Queued negative.
//
// With a backplane, queue groups are left to it (see [Backplane]).
func (r *Relay) route(from Peer, m *transport.Message) (routed, n int, waits []held) {
	entries := r.subs.match(m.Subject)
	groups := r.bp == nil
	counted := copies(entries, from, groups)
	r.queued.Add(int64(counted))
	var rt routing
	// rt.to as a closure: the compiler inlines it here (the method is
	// over its budget), which saves 3 % of a Publish.
	deliver := func(sn *subscription) {
		rt.routed++
		switch sn.sub.enqueue(sn.channel, m) {
		case queued:
			rt.n++
		case full:
			rt.waits = append(rt.waits, held{sn.sub, sn.channel})
		}
	}
	for _, e := range entries {
		for _, sn := range e.plain {
			if sn.sub.peer != from {
				deliver(sn)
			}
		}
		if !groups {
			continue
		}
		for _, g := range e.groups {
			if sn := g.pick(from, len(m.Data)); sn != nil {
				deliver(sn)
			}
		}
	}
	rt.settle(r, counted)
	return rt.routed, rt.n, rt.waits
}

// routing is what a Publish or DeliverRemote did with the copies of a
// message: addressed (routed), queued (n), held for room (waits).
type routing struct {
	routed, n int
	waits     []held
}

// to queues a copy of m for sn (route inlines the same steps).
func (rt *routing) to(sn *subscription, m *transport.Message) {
	rt.routed++
	switch sn.sub.enqueue(sn.channel, m) {
	case queued:
		rt.n++
	case full:
		rt.waits = append(rt.waits, held{sn.sub, sn.channel})
	}
}

// settle corrects r.queued, where counted copies were counted before
// routing, by what was actually queued or held: fewer when a group had no
// one to pick or a subscriber refused the copy (and, should the count ever
// fall short of the routing, more), so Queued cannot drift. It counts the
// routed copies.
func (rt *routing) settle(r *Relay, counted int) {
	if d := rt.n + len(rt.waits) - counted; d != 0 {
		r.queued.Add(int64(d))
	}
	r.routed.Add(uint64(rt.routed))
}

// copies returns how many times route will deliver a message from from
// at most: once per plain subscription of another peer and, with groups,
// once per queue group. A publisher's own channel is often subscribed to
// its subject: counted, it would cost route a second addition to take it
// back.
func copies(entries []*entry, from Peer, groups bool) int {
	n := 0
	for _, e := range entries {
		if groups {
			n += len(e.groups)
		}
		for _, sn := range e.plain {
			if sn.sub.peer != from {
				n++
			}
		}
	}
	return n
}

// awaitRoom waits for room for each held copy, with one PublishTimeout for
// the whole Publish, and returns how many it queued.
func (r *Relay) awaitRoom(ctx context.Context, waits []held, m *transport.Message) int {
	timeout, cancel := context.WithTimeout(context.Background(), r.limitTimeout())
	defer cancel()
	n := 0
	for _, w := range waits {
		if w.sub.await(ctx, timeout.Done(), w.channel, m) {
			n++
		}
	}
	return n
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	r.mu.RLock()
	st := Stats{Channels: r.subs.patterns(), Policy: r.cfg.SlowConsumer}
	for _, sub := range r.peers {
		sub.mu.Lock()
		if n := len(sub.channels); n > 0 {
			st.Subscribers++
			st.Subscriptions += n
		}
		sub.mu.Unlock()
	}
	r.mu.RUnlock()
	st.Queued = int(r.queued.Load())
	st.Published = r.published.Load()
	st.Refused = r.refused.Load()
	st.Routed = r.routed.Load()
	st.Delivered = r.delivered.Load()
	st.Dropped = r.dropped.Load()
	st.Failed = r.failed.Load()
	st.NoResponders = r.noResponders.Load()
	st.SlowConsumerEvents = r.slowEvents.Load()
	st.SlowConsumerDisconnects = r.slowDisconnects.Load()
	st.PublishTimeouts = r.publishTimeouts.Load()
	st.SlowConsumerGaps = r.slowGaps.load()
	st.DisconnectGaps = r.disconnectGaps.load()
	st.RefusedGaps = r.refusedGaps.load()
	st.Forwarded = r.forwarded.Load()
	st.ForwardFailed = r.forwardFailed.Load()
	st.Remote = r.remote.Load()
	st.RemoteRefused = r.remoteRefused.Load()
	return st
}

// Close removes every subscriber, stops their goroutines and waits for them.
// Publish does nothing afterwards. Close is idempotent.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.wg.Wait()
		return nil
	}
	r.closed = true
	subs := slices.Collect(maps.Values(r.peers))
	clear(r.peers)
	r.subs = newSublist()
	r.mu.Unlock()
	r.cancel()
	for _, sub := range subs {
		sub.stop()
	}
	r.wg.Wait()
	return nil
}

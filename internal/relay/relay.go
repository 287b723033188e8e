package relay

import (
	"context"
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
	// Send sends msg on channel, waiting while the peer cannot take it, until
	// ctx ends.
	Send(ctx context.Context, channel string, msg []byte) error
	// Disconnect closes the peer at once with code and reason.
	Disconnect(code transport.ErrorCode, reason string) error
}

// Stats are a relay's counters. Every copy of a message addressed to a
// subscriber (Routed) ends up Delivered, Dropped or Failed, or is Queued.
type Stats struct {
	Subscribers   int // peers subscribed to at least one channel
	Subscriptions int // (peer, channel) pairs
	Channels      int // channels with at least one subscriber
	Queued        int // copies waiting in subscriber queues or being sent

	Published               uint64 // messages passed to Publish
	Routed                  uint64 // copies addressed to subscribers other than the publisher
	Delivered               uint64 // copies that Peer.Send accepted
	Dropped                 uint64 // copies discarded because a subscriber was too slow
	Failed                  uint64 // copies discarded because Send failed or the subscriber left
	SlowConsumerEvents      uint64 // times a subscriber's queue overflowed
	SlowConsumerDisconnects uint64 // subscribers closed with transport.CodeSlowConsumer
}

// SubscriberStats are one subscriber's counters, returned by [Relay.Remove].
type SubscriberStats struct {
	Delivered uint64
	Dropped   uint64
	Failed    uint64
}

// Relay routes published messages to the other subscribers of their channel
// through per-subscriber bounded queues. All methods are safe for concurrent
// use; none of them waits for a subscriber except Remove and Close, which wait
// for its goroutine to stop.
type Relay struct {
	cfg     Config
	baseCtx context.Context
	cancel  context.CancelFunc

	mu       sync.RWMutex
	channels map[string]map[*subscriber]struct{}
	peers    map[Peer]*subscriber
	closed   bool

	wg sync.WaitGroup // drain goroutines

	published, routed, delivered, dropped, failed atomic.Uint64
	slowEvents, slowDisconnects                   atomic.Uint64
	queued                                        atomic.Int64
}

// New returns a relay. cfg may be nil for the defaults; an invalid field is
// reported by name.
func New(cfg *Config) (*Relay, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Relay{
		cfg:      c,
		channels: make(map[string]map[*subscriber]struct{}),
		peers:    make(map[Peer]*subscriber),
	}
	r.baseCtx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Subscribe subscribes p to channel: from now on, messages that other peers
// publish on channel are queued for p. Subscribing twice is harmless.
func (r *Relay) Subscribe(p Peer, channel string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	sub := r.peers[p]
	if sub == nil {
		sub = newSubscriber(r, p)
		r.peers[p] = sub
	}
	set := r.channels[channel]
	if set == nil {
		set = make(map[*subscriber]struct{})
		r.channels[channel] = set
	}
	set[sub] = struct{}{}
	sub.mu.Lock()
	sub.channels[channel] = struct{}{}
	sub.mu.Unlock()
}

// Unsubscribe ends p's subscription to channel. Messages of that channel
// still queued for p are discarded and counted as failed.
func (r *Relay) Unsubscribe(p Peer, channel string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sub := r.peers[p]
	if sub == nil {
		return
	}
	r.unlink(sub, channel)
	sub.mu.Lock()
	delete(sub.channels, channel)
	sub.mu.Unlock()
}

// unlink removes sub from channel's subscriber set; r.mu must be held.
func (r *Relay) unlink(sub *subscriber, channel string) {
	set := r.channels[channel]
	delete(set, sub)
	if len(set) == 0 {
		delete(r.channels, channel)
	}
}

// detach ends every subscription of sub, which stays known until Remove.
func (r *Relay) detach(sub *subscriber) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for ch := range sub.channels {
		r.unlink(sub, ch)
	}
	clear(sub.channels)
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
	for ch := range sub.channels {
		r.unlink(sub, ch)
	}
	r.mu.Unlock()
	sub.stop()
	return sub.stats()
}

// Publish queues msg for every subscriber of channel except from, and returns
// how many it was queued for. It never waits: a subscriber whose queue is
// full is handled by the slow consumer policy. The relay keeps msg until it
// is sent; the caller must not modify it afterwards.
func (r *Relay) Publish(from Peer, channel string, msg []byte) int {
	r.published.Add(1)
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return 0
	}
	n := 0
	for sub := range r.channels[channel] {
		if sub.peer == from {
			continue
		}
		r.routed.Add(1)
		if sub.enqueue(channel, msg) {
			n++
		}
	}
	return n
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	r.mu.RLock()
	st := Stats{Channels: len(r.channels)}
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
	st.Routed = r.routed.Load()
	st.Delivered = r.delivered.Load()
	st.Dropped = r.dropped.Load()
	st.Failed = r.failed.Load()
	st.SlowConsumerEvents = r.slowEvents.Load()
	st.SlowConsumerDisconnects = r.slowDisconnects.Load()
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
	clear(r.channels)
	r.mu.Unlock()
	r.cancel()
	for _, sub := range subs {
		sub.stop()
	}
	r.wg.Wait()
	return nil
}

package cluster

import (
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/quicmsg/quicmsg/internal/relay"
)

// Interest records a change of the relay's local interest in (pattern,
// group) and brings the NATS subscription in line at once: nats.go
// queues the SUB or UNSUB on the connection before any message published
// after Interest returns, so the NATS server has the subscription before
// it routes them (a local publish to a member that has just joined, a
// request's reply to an inbox just opened). It does not wait for the
// network, except for a new queue subscription while NATS is connected:
// that one is on the queue connection, and Interest waits up to
// QueueFlushTimeout for the server to confirm it (see flushQueue). Before
// Attach the change waits for the interest loop. It counts references, so
// that a caller reporting every subscription rather than the first and
// last works too.
func (b *Backplane) Interest(pattern, group string, on bool) {
	k := key{pattern, group}
	b.mu.Lock()
	switch {
	case on:
		b.refs[k]++
	case b.refs[k] > 1:
		b.refs[k]--
	default:
		delete(b.refs, k)
	}
	attached := b.attached.Load()
	if !attached {
		b.dirty[k] = struct{}{}
	}
	b.mu.Unlock()
	if attached {
		b.reconcile(k)
		return
	}
	b.poke()
}

func (b *Backplane) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// loop owns the NATS subscriptions: each time it is woken it subscribes
// the (pattern, group)s that gained interest and unsubscribes those that
// lost it, then releases the Sync calls waiting for it. Changes that come
// in meanwhile wait in b.dirty, at most one per (pattern, group).
func (b *Backplane) loop() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.wake:
		}
		b.mu.Lock()
		dirty := make([]key, 0, len(b.dirty))
		for k := range b.dirty {
			dirty = append(dirty, k)
		}
		clear(b.dirty)
		waiters := b.waiters
		b.waiters = nil
		b.mu.Unlock()
		for _, k := range dirty {
			b.reconcile(k)
		}
		for _, w := range waiters {
			close(w)
		}
	}
}

// reconcile brings the NATS subscription of k in line with the local
// interest; subMu keeps Interest and the loop from changing one at once.
// nats.go does not wait for the network here: a subscription made while
// NATS is unreachable is sent once it reconnects.
func (b *Backplane) reconcile(k key) {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	b.mu.Lock()
	on, sub := b.refs[k] > 0, b.subs[k]
	b.mu.Unlock()
	switch {
	case on && sub == nil:
		sub, err := b.subscribe(k)
		if err != nil {
			b.subFailed.Add(1)
			b.log.Warn("not subscribed on NATS: messages of other nodes will not reach this pattern",
				"pattern", k.pattern, "group", k.group, "err", err)
			return
		}
		b.mu.Lock()
		b.subs[k] = sub
		b.mu.Unlock()
		b.flushQueue(k)
	case !on && sub != nil:
		d, _ := sub.Dropped()
		if err := b.end(sub, k); err != nil {
			b.log.Debug("NATS unsubscribe", "pattern", k.pattern, "group", k.group, "err", err)
		}
		b.mu.Lock()
		delete(b.subs, k)
		b.retired += uint64(max(d, 0))
		b.mu.Unlock()
	}
}

// end ends sub, the NATS subscription of k. A queue subscription is
// drained while NATS is connected: the messages NATS gave it until the
// server has the unsubscription, those waiting in it included, still go
// to the handler, which delivers them to a member that joined meanwhile
// or counts them (DropNoMember); Unsubscribe would discard them
// uncounted. While NATS is down nothing is in flight, and nats.go would
// send a draining subscription again on reconnection and then forget it,
// leaving the server routing to it: the waiting messages are counted and
// the subscription ends at once.
func (b *Backplane) end(sub *nats.Subscription, k key) error {
	if k.group == "" {
		return sub.Unsubscribe()
	}
	if b.Connected() { // the connections go to the same servers: judged by the main one
		return sub.Drain()
	}
	if n, _, err := sub.Pending(); err == nil && n > 0 {
		b.dropped[slices.Index(dropReasons[:], DropNoMember)].Add(uint64(n))
		b.logDrop(DropNoMember, k.pattern, relay.ErrNoSubscription)
	}
	return sub.Unsubscribe()
}

// QueueFlushTimeout bounds how long Interest waits, while NATS is
// connected, for the NATS server to confirm a new queue subscription.
const QueueFlushTimeout = time.Second

// flushQueue waits, after k's queue subscription was made on the queue
// connection, until the NATS server has it (a round trip, at most
// QueueFlushTimeout; not while NATS is down): the node publishes on the
// main connection, and without the wait a message it publishes next could
// reach the server first and miss the member that has just joined. Plain
// subscriptions are on the main connection, in order with its publishes.
func (b *Backplane) flushQueue(k key) {
	if k.group == "" || !b.qnc.IsConnected() {
		return
	}
	if err := b.qnc.FlushTimeout(QueueFlushTimeout); err != nil {
		b.log.Debug("NATS queue subscription not confirmed", "pattern", k.pattern, "group", k.group, "err", err)
	}
}

func (b *Backplane) subscribe(k key) (*nats.Subscription, error) {
	var sub *nats.Subscription
	var err error
	if k.group == "" {
		sub, err = b.nc.Subscribe(k.pattern, b.handler(k))
	} else {
		sub, err = b.qnc.QueueSubscribe(k.pattern, k.group, b.handler(k))
	}
	if err != nil {
		return nil, err
	}
	if err := sub.SetPendingLimits(b.cfg.PendingMsgs, b.cfg.PendingBytes); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return sub, nil
}

// handler delivers the messages of k's NATS subscription to the relay. A
// plain subscription skips this node's own requests, which the relay
// delivered locally when they were published (NATS keeps the node's other
// messages from it: see Forward); a queue subscription takes them: NATS
// picked this node's group members for them.
func (b *Backplane) handler(k key) nats.MsgHandler {
	return func(msg *nats.Msg) {
		if !b.enter() {
			b.late(k, msg)
			return
		}
		defer b.leave()
		if k.group == "" && msg.Header.Get(HeaderOrigin) == b.cfg.NodeID {
			b.own.Add(1)
			return
		}
		b.received.Add(1)
		m := toMessage(msg)
		if _, err := b.relay.DeliverRemote(b.ctx, k.pattern, k.group, &m); err != nil {
			b.undelivered(k, msg.Subject, err)
		}
	}
}

// undelivered counts a message from NATS that the relay did not take. A
// plain subscriber that left (or a relay that closed) does not miss it;
// a queue group's message was this node's alone to deliver.
func (b *Backplane) undelivered(k key, subject string, err error) {
	switch {
	case errors.Is(err, relay.ErrNoSubscription):
		if k.group != "" {
			b.drop(DropNoMember, subject, err)
		}
	case errors.Is(err, relay.ErrClosed):
		if k.group != "" {
			b.drop(DropClosed, subject, err)
		}
	default:
		b.drop(DropRefused, subject, err)
	}
}

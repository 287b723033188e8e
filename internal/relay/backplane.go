package relay

import (
	"context"
	"errors"

	"github.com/quicmsg/quicmsg/transport"
)

// Backplane links a relay to the relays of other nodes (quicsrv's cluster
// mode). With a backplane the relay
//
//   - reports its local interest: [Backplane.Interest] with on set when
//     the first local subscription of a (pattern, group) appears, and
//     cleared when the last one goes;
//   - hands every message published locally to [Backplane.Forward] after
//     routing it to the local plain subscriptions;
//   - leaves queue groups to the backplane: a local publish picks no local
//     group member; the backplane picks a node among all the nodes with
//     members and hands the message to [Relay.DeliverRemote] with the
//     group's name there, so that each message reaches one member
//     cluster-wide. A message that Forward refuses picks one local member
//     of each matching group, as on a single node;
//   - leaves "no responders" replies to the backplane for the requests it
//     forwarded: a request that reaches no local subscription may have a
//     responder on another node (Forward is told how many it reached).
//
// Messages from other nodes come in through [Relay.DeliverRemote], which
// routes them to local subscriptions only and never forwards them again.
type Backplane interface {
	// Interest reports that the relay's local interest in (pattern,
	// group) began (on) or ended; group "" stands for the plain
	// subscriptions of pattern. The relay calls it in the order of the
	// changes, one call at a time and holding none of its locks, from the
	// goroutine that changed the subscriptions: it should not wait for
	// the network.
	Interest(pattern, group string, on bool)
	// Forward hands a locally published message to the other nodes;
	// routed is how many local subscriptions the relay addressed it to
	// (plain ones: queue groups are the backplane's), so that a request
	// that has a local responder gets no "no responders" from another
	// node. It must not keep m nor what m refers to once it returns. An
	// error means the message did not leave this node; the backplane
	// counts and reports it.
	Forward(m *transport.Message, routed int) error
}

// ErrNoSubscription is DeliverRemote's error when no local subscription
// of the pattern (with group "") or no member of the group is left: the
// message reached nobody on this node. For a queue group, NATS picked
// this node for a message that a member on another node could have
// taken: the backplane counts it as lost.
var ErrNoSubscription = errors.New("relay: no local subscription left for the message")

// interestChange is a change of local interest waiting to be reported.
type interestChange struct {
	pattern, group string
	on             bool
}

// noteLocked records a change of interest for the backplane; r.mu is held.
// The caller reports it (report) once it has released r.mu.
func (r *Relay) noteLocked(sn *subscription, on bool) {
	if r.bp != nil {
		r.interest = append(r.interest, interestChange{sn.channel, sn.group, on})
	}
}

// report hands the recorded changes of interest to the backplane, in
// order, without r.mu: bpMu keeps reports from concurrent changes in the
// order in which they were recorded.
func (r *Relay) report() {
	if r.bp == nil {
		return
	}
	r.bpMu.Lock()
	defer r.bpMu.Unlock()
	r.mu.Lock()
	changes := r.interest
	r.interest = nil
	r.mu.Unlock()
	for _, c := range changes {
		r.bp.Interest(c.pattern, c.group, c.on)
	}
}

// forward hands m, published locally and routed to routed local
// subscriptions, to the backplane, and reports whether it left this node.
func (r *Relay) forward(m *transport.Message, routed int) bool {
	// A copy goes through the interface call, where the compiler cannot
	// see that it is not kept: m itself would escape, and every Publish,
	// single node too, would allocate it.
	fm := *m
	if err := r.bp.Forward(&fm, routed); err != nil {
		r.forwardFailed.Add(1)
		return false
	}
	r.forwarded.Add(1)
	return true
}

// routeGroups queues m for one member of each matching local queue group
// (not from), as a relay without a backplane does, for a message the
// backplane did not take. It returns the copies routed and queued.
func (r *Relay) routeGroups(ctx context.Context, from Peer, m *transport.Message) (routed, n int) {
	var rt routing
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return 0, 0
	}
	entries := r.subs.match(m.Subject)
	counted := 0
	for _, e := range entries {
		counted += len(e.groups)
	}
	r.queued.Add(int64(counted))
	for _, e := range entries {
		for _, g := range e.groups {
			if sn := g.pick(from, len(m.Data)); sn != nil {
				rt.to(sn, m)
			}
		}
	}
	rt.settle(r, counted)
	r.mu.RUnlock()
	if len(rt.waits) > 0 {
		rt.n += r.awaitRoom(ctx, rt.waits, m)
	}
	return rt.routed, rt.n
}

// DeliverRemote queues m, a message that another node published (or this
// node's own message coming back through a queue group of the backplane),
// for the local subscriptions of pattern: with group "" for each plain
// subscription whose channel is exactly pattern, else for one member of
// that queue group on pattern. The backplane has one subscription per
// (pattern, group), so that a message matching several local patterns
// reaches each subscription once. m is never forwarded again. It returns
// how many copies it queued; a subject the relay would refuse from a
// peer is refused here too, with the same error, and ErrNoSubscription
// means that no subscription of pattern (group "") or no member of group
// is left on this node; after Close it returns ErrClosed.
//
// Under the Block policy it waits for room as Publish does.
func (r *Relay) DeliverRemote(ctx context.Context, pattern, group string, m *transport.Message) (int, error) {
	if err := transport.ValidateSubject(m.Subject); err != nil {
		r.remoteRefused.Add(1)
		return 0, err
	}
	r.remote.Add(1)
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return 0, ErrClosed
	}
	var rt routing
	found := false
	if e := r.subs.lookup(pattern, transport.IsWildcard(pattern), false); e != nil {
		found = r.routeEntry(&rt, e, group, m)
	}
	r.mu.RUnlock()
	if !found {
		return 0, ErrNoSubscription
	}
	if len(rt.waits) > 0 {
		rt.n += r.awaitRoom(ctx, rt.waits, m)
	}
	return rt.n, nil
}

// routeEntry queues m for the plain subscriptions of e (group "") or one
// member of e's group, and reports whether there was any; r.mu is
// read-held.
func (r *Relay) routeEntry(rt *routing, e *entry, group string, m *transport.Message) bool {
	if group == "" {
		if len(e.plain) == 0 {
			return false
		}
		r.queued.Add(int64(len(e.plain)))
		for _, sn := range e.plain {
			rt.to(sn, m)
		}
		rt.settle(r, len(e.plain))
		return true
	}
	i := e.group(group)
	if i < 0 {
		return false
	}
	r.queued.Add(1)
	if sn := e.groups[i].pick(nil, len(m.Data)); sn != nil {
		rt.to(sn, m)
	}
	rt.settle(r, 1)
	return true
}

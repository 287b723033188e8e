package cluster

import (
	"cmp"
	"slices"
	"time"
)

// Stats are a backplane's counters.
type Stats struct {
	Connected     bool          // the main NATS connection is up (Backplane.Connected)
	RTT           time.Duration // the last round trip to NATS measured; 0 while it is down
	Subscriptions int           // NATS subscriptions for local interest
	Published     uint64        // local messages handed to NATS (sent or buffered; those still buffered at Close are counted again in Dropped[DropClosed])
	Received      uint64        // messages from NATS handed to the relay
	Own           uint64        // this node's own requests skipped by plain subscriptions
	NoResponders  uint64        // NATS "no responders" statuses turned into replies
	// SubscribeFailed counts NATS subscriptions that could not be made
	// (a pattern NATS refuses); each is logged.
	SubscribeFailed uint64
	// Dropped counts messages that did not cross the backplane, by
	// reason; every reason is present.
	Dropped map[DropReason]uint64
}

// Stats returns the backplane's counters.
func (b *Backplane) Stats() Stats {
	st := Stats{
		Connected:       b.Connected(),
		RTT:             time.Duration(b.rtt.Load()),
		Published:       b.published.Load(),
		Received:        b.received.Load(),
		Own:             b.own.Load(),
		NoResponders:    b.noResp503.Load(),
		SubscribeFailed: b.subFailed.Load(),
		Dropped:         make(map[DropReason]uint64, len(dropReasons)),
	}
	for i, r := range dropReasons {
		st.Dropped[r] = b.dropped[i].Load()
	}
	b.mu.Lock()
	st.Subscriptions = len(b.subs)
	slow := b.retired
	for _, sub := range b.subs {
		if d, err := sub.Dropped(); err == nil && d > 0 {
			slow += uint64(d)
		}
	}
	b.mu.Unlock()
	st.Dropped[DropSlowConsumer] += slow
	return st
}

// InterestInfo is a (subject or pattern, queue group) this node has local
// interest in, as [Backplane.Interests] reports it.
type InterestInfo struct {
	Subject string // the subject or pattern
	Group   string // the queue group; "" for plain interest
	// Subscribed is whether the NATS subscription that brings the
	// cluster's messages for it to this node is in place (false while NATS
	// is down, before the interest loop made it, or when NATS refused it).
	Subscribed bool
}

// Interests returns the node's local interest, sorted by subject, then
// group: what it asks the cluster for. Safe for concurrent use; its cost
// grows with the number of entries, so it is meant for a status page.
func (b *Backplane) Interests() []InterestInfo {
	b.mu.Lock()
	out := make([]InterestInfo, 0, len(b.refs))
	for k := range b.refs {
		_, ok := b.subs[k]
		out = append(out, InterestInfo{Subject: k.pattern, Group: k.group, Subscribed: ok})
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(a, b InterestInfo) int {
		return cmp.Or(cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Group, b.Group))
	})
	return out
}

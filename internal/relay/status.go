package relay

import (
	"cmp"
	"slices"
)

// SubscriptionInfo is one (subject or pattern, queue group) the relay has
// subscriptions on, as [Relay.Subscriptions] reports it.
type SubscriptionInfo struct {
	Subject     string // the subject or pattern (with "*" or ">") subscribed
	Group       string // the queue group; "" for subscriptions outside any group
	Subscribers int    // subscriptions on it: each a channel of one peer
}

// Subscriptions returns the relay's subscriptions by subject or pattern and
// queue group, sorted by subject, then group. It takes the relay's read
// lock and each subscriber's lock in turn, as [Relay.Stats] does, so its
// cost grows with the number of subscriptions: it is meant for a status
// page, not for every message. Safe for concurrent use.
func (r *Relay) Subscriptions() []SubscriptionInfo {
	type key struct{ subject, group string }
	byKey := make(map[key]*SubscriptionInfo)
	r.mu.RLock()
	for _, sub := range r.peers {
		sub.mu.Lock()
		for _, sn := range sub.channels {
			k := key{sn.channel, sn.group}
			si := byKey[k]
			if si == nil {
				si = &SubscriptionInfo{Subject: sn.channel, Group: sn.group}
				byKey[k] = si
			}
			si.Subscribers++
		}
		sub.mu.Unlock()
	}
	r.mu.RUnlock()
	out := make([]SubscriptionInfo, 0, len(byKey))
	for _, si := range byKey {
		out = append(out, *si)
	}
	slices.SortFunc(out, func(a, b SubscriptionInfo) int {
		return cmp.Or(cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Group, b.Group))
	})
	return out
}

package relay

import (
	"slices"
	"strings"
	"sync/atomic"
)

// subscription is one peer's subscription: the channel it has open, whose
// name is a subject or a wildcard pattern, and its queue group.
type subscription struct {
	sub      *subscriber
	channel  string
	group    string
	wildcard bool // channel is a pattern with wildcard tokens
}

// entry holds the subscriptions of one pattern: those outside any group,
// each of which gets every message, and the queue groups, each of which
// gets every message once.
type entry struct {
	plain  []*subscription
	groups []*queueGroup
	self   []*entry // []*entry{e}: the match of an exact subject, without allocating
}

func newEntry() *entry {
	e := &entry{}
	e.self = []*entry{e}
	return e
}

func (e *entry) empty() bool { return len(e.plain) == 0 && len(e.groups) == 0 }

// has reports whether e has a subscription in group: a plain one for "".
func (e *entry) has(group string) bool {
	if group == "" {
		return len(e.plain) > 0
	}
	return e.group(group) >= 0
}

func (e *entry) add(sn *subscription) {
	if sn.group == "" {
		e.plain = append(e.plain, sn)
		return
	}
	if i := e.group(sn.group); i >= 0 {
		e.groups[i].members = append(e.groups[i].members, sn)
		return
	}
	e.groups = append(e.groups, &queueGroup{name: sn.group, members: []*subscription{sn}})
}

func (e *entry) remove(sn *subscription) {
	if sn.group == "" {
		e.plain = deleteSub(e.plain, sn)
		return
	}
	if i := e.group(sn.group); i >= 0 {
		g := e.groups[i]
		if g.members = deleteSub(g.members, sn); len(g.members) == 0 {
			e.groups = slices.Delete(e.groups, i, i+1)
		}
	}
}

// group returns the index of the queue group name in e.groups, or -1.
func (e *entry) group(name string) int {
	return slices.IndexFunc(e.groups, func(g *queueGroup) bool { return g.name == name })
}

func deleteSub(s []*subscription, sn *subscription) []*subscription {
	if i := slices.Index(s, sn); i >= 0 {
		return slices.Delete(s, i, i+1)
	}
	return s
}

// queueGroup is the members of one group on one pattern. Members are
// changed under Relay.mu (write); next is advanced by Publish under the
// read lock.
type queueGroup struct {
	name    string
	members []*subscription
	next    atomic.Uint32
}

// pick returns the member that gets the next message: round robin,
// skipping from (the publisher) and, while another member has room,
// members whose queue is full. nil if from is the only member.
func (g *queueGroup) pick(from Peer, size int) *subscription {
	n := len(g.members)
	start := int(g.next.Add(1) % uint32(n))
	var first *subscription
	for i := range n {
		sn := g.members[(start+i)%n]
		if sn.sub.peer == from {
			continue
		}
		if first == nil {
			first = sn
		}
		if sn.sub.hasRoom(size) {
			return sn
		}
	}
	return first
}

// node is a level of the wildcard trie: one token of a pattern. A "*" or
// ">" token is a child like any other; matching looks them up beside the
// subject's token.
type node struct {
	next  map[string]*node
	entry *entry // the pattern that ends here, if any
}

// sublist finds the entries whose pattern matches a subject: exact names in
// a map, wildcard patterns in a token trie, and the trie's results in a
// bounded cache. It is guarded by Relay.mu: changes under the write lock,
// matching under the read lock; the cache is safe for concurrent use.
type sublist struct {
	exact     map[string]*entry
	root      node
	wildcards int    // wildcard patterns in the trie
	gen       uint64 // changes with every change of the patterns

	cache matchCache
}

func newSublist() *sublist {
	return &sublist{exact: make(map[string]*entry)}
}

// patterns returns how many patterns have subscriptions.
func (l *sublist) patterns() int { return len(l.exact) + l.wildcards }

// lookup returns the entry of pattern, creating it when create is set.
func (l *sublist) lookup(pattern string, wildcard, create bool) *entry {
	if !wildcard {
		e := l.exact[pattern]
		if e == nil && create {
			e = newEntry()
			l.exact[pattern] = e
		}
		return e
	}
	n := &l.root
	for tok := range strings.SplitSeq(pattern, ".") {
		c := n.next[tok]
		if c == nil {
			if !create {
				return nil
			}
			if n.next == nil {
				n.next = make(map[string]*node)
			}
			c = &node{}
			n.next[tok] = c
		}
		n = c
	}
	if n.entry == nil && create {
		n.entry = newEntry()
		l.wildcards++
	}
	return n.entry
}

// insert adds sn and reports whether it is the first subscription of its
// (pattern, group): the first plain one of the pattern, or the first
// member of the group.
func (l *sublist) insert(sn *subscription, wildcard bool) (first bool) {
	e := l.lookup(sn.channel, wildcard, true)
	first = !e.has(sn.group)
	e.add(sn)
	l.gen++
	return first
}

// remove removes sn and reports whether it was the last subscription of
// its (pattern, group).
func (l *sublist) remove(sn *subscription, wildcard bool) (last bool) {
	e := l.lookup(sn.channel, wildcard, false)
	if e == nil {
		return false
	}
	e.remove(sn)
	l.gen++
	last = !e.has(sn.group)
	if !e.empty() {
		return last
	}
	if !wildcard {
		delete(l.exact, sn.channel)
		return last
	}
	l.wildcards--
	prune(&l.root, sn.channel)
	return last
}

// prune removes pattern's entry and the nodes left without children or
// entries on its path. It reports whether n itself is now empty.
func prune(n *node, pattern string) bool {
	tok, rest, more := strings.Cut(pattern, ".")
	c := n.next[tok]
	if c == nil {
		return false
	}
	if more {
		if prune(c, rest) {
			delete(n.next, tok)
		}
	} else {
		c.entry = nil
		if len(c.next) == 0 {
			delete(n.next, tok)
		}
	}
	return n.entry == nil && len(n.next) == 0
}

// match returns the entries whose pattern matches subject, with the
// semantics of transport.MatchSubject. The result must not be modified; it
// stays valid while the caller holds Relay.mu.
func (l *sublist) match(subject string) []*entry {
	if l.wildcards == 0 {
		if e := l.exact[subject]; e != nil {
			return e.self
		}
		return nil
	}
	if out, ok := l.cache.load(subject, l.gen); ok {
		return out
	}
	var out []*entry
	if e := l.exact[subject]; e != nil {
		out = append(out, e)
	}
	out = matchNode(&l.root, subject, out)
	l.cache.store(subject, l.gen, out)
	return out
}

// matchNode appends the entries under n that match the tokens of subject.
func matchNode(n *node, subject string, out []*entry) []*entry {
	if n.next == nil {
		return out
	}
	if c := n.next[">"]; c != nil && c.entry != nil {
		out = append(out, c.entry)
	}
	tok, rest, more := strings.Cut(subject, ".")
	for _, c := range [2]*node{n.next["*"], n.next[tok]} {
		switch {
		case c == nil:
		case more:
			out = matchNode(c, rest, out)
		case c.entry != nil:
			out = append(out, c.entry)
		}
	}
	return out
}

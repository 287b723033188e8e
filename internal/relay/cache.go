package relay

import (
	"sync"
	"sync/atomic"
)

// cacheSize bounds the match cache: its snapshot holds at most cacheSize
// subjects, and so do the results waiting to join it. Past it, the oldest
// results give way (the snapshot is rebuilt from the newest), so a stream of
// distinct subjects costs a trie walk each but never grows memory.
const cacheSize = 16384

// matchCache keeps the result of matching a subject against the wildcard
// trie. Lookups from concurrent publishers read an immutable snapshot
// without a lock; new results go to a locked map and join the snapshot in
// batches, as in the first sync.Map. A result is valid for one generation
// of the sublist: a subscription change makes every cached result stale.
type matchCache struct {
	read atomic.Pointer[map[string]cached]

	mu     sync.Mutex
	dirty  map[string]cached // results not yet in read
	misses int               // lookups that went past read since it was built
}

type cached struct {
	gen     uint64
	entries []*entry
}

// load returns the cached result for subject at generation gen.
func (c *matchCache) load(subject string, gen uint64) ([]*entry, bool) {
	if m := c.read.Load(); m != nil {
		if e, ok := (*m)[subject]; ok && e.gen == gen {
			return e.entries, true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.dirty[subject]
	if !ok || e.gen != gen {
		return nil, false
	}
	c.missedLocked(gen)
	return e.entries, true
}

// store caches entries as subject's result at generation gen.
func (c *matchCache) store(subject string, gen uint64, entries []*entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dirty == nil {
		c.dirty = make(map[string]cached)
	}
	c.dirty[subject] = cached{gen: gen, entries: entries}
	c.missedLocked(gen)
}

// missedLocked counts a lookup that read could not answer, and rebuilds
// read once they are many compared with its size, or dirty is full. c.mu
// is held.
func (c *matchCache) missedLocked(gen uint64) {
	c.misses++
	var n int
	if m := c.read.Load(); m != nil {
		n = len(*m)
	}
	if c.misses < 64+n/8 && len(c.dirty) < cacheSize {
		return
	}
	next := make(map[string]cached, min(n+len(c.dirty), cacheSize))
	for k, v := range c.dirty {
		if v.gen == gen && len(next) < cacheSize {
			next[k] = v
		}
	}
	if m := c.read.Load(); m != nil {
		for k, v := range *m {
			if len(next) >= cacheSize {
				break
			}
			if _, ok := next[k]; !ok && v.gen == gen {
				next[k] = v
			}
		}
	}
	c.read.Store(&next)
	c.dirty, c.misses = nil, 0
}

// size returns how many results the snapshot holds and how many wait.
func (c *matchCache) size() (read, dirty int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.read.Load(); m != nil {
		read = len(*m)
	}
	return read, len(c.dirty)
}

package session

import (
	"bufio"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Shares of the machine that [DefaultServerPendingBytes] gives to pending
// messages, and its fallback.
const (
	// ServerPendingMemoryLimitShare: with a Go memory limit set (GOMEMLIMIT
	// or debug.SetMemoryLimit), pending messages may take 1/4 of it.
	ServerPendingMemoryLimitShare = 4
	// ServerPendingPhysicalShare: without one, they may take 1/8 of the
	// physical memory (MemTotal in /proc/meminfo, or the cgroup's
	// memory.max when the process runs in a container with a lower limit),
	// which the process shares with everything else there.
	ServerPendingPhysicalShare = 8
	// FallbackServerPendingBytes is the budget where neither is known.
	FallbackServerPendingBytes = 1 << 30
)

// DefaultServerPendingBytes returns the default of
// Config.ServerPendingBytes, sized from the machine: the Go memory limit
// divided by ServerPendingMemoryLimitShare when one is set, else physical
// memory (or a lower cgroup memory limit) divided by
// ServerPendingPhysicalShare on Linux, else
// FallbackServerPendingBytes.
func DefaultServerPendingBytes() int {
	if limit := debug.SetMemoryLimit(-1); limit > 0 && limit < math.MaxInt64 {
		return int(limit / ServerPendingMemoryLimitShare)
	}
	total, ok := memTotal()
	if limit, lok := cgroupMemoryMax(cgroupMemoryMaxFile); lok && (!ok || limit < total) {
		total, ok = limit, true
	}
	if ok {
		return int(total / ServerPendingPhysicalShare)
	}
	return FallbackServerPendingBytes
}

// cgroupMemoryMaxFile holds the memory limit of the process's cgroup (v2).
const cgroupMemoryMaxFile = "/sys/fs/cgroup/memory.max"

// cgroupMemoryMax returns the cgroup memory limit in file, in bytes, if
// there is one.
func cgroupMemoryMax(file string) (int64, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v <= 0 {
		return 0, false // "max": no limit
	}
	return v, true
}

// memTotal returns MemTotal from /proc/meminfo in bytes.
func memTotal() (int64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || kb <= 0 {
			return 0, false
		}
		return kb << 10, true
	}
	return 0, false
}

// serverBudget is the server-wide budget of pending message bytes, shared
// by all sessions (Config.ServerPendingBytes). Readers ask it, before they
// read a message, whether their session may take more:
//
//   - below half the budget, every session may;
//   - from half the budget, a session that holds at least its fair share
//     (half the budget divided by the sessions holding messages) stops;
//   - at the budget, every session that holds anything stops.
//
// A session with an empty queue may always read one message, so that a
// session whose handler keeps up is never stopped by others. The sessions
// under their fair share add at most half the budget after the first
// threshold, so the total stays within the budget, plus one message per
// reader that was already receiving.
type serverBudget struct {
	limit   int64
	used    atomic.Int64
	holders atomic.Int64 // sessions whose queue is not empty
	waiters atomic.Int64

	mu    sync.Mutex
	freed chan struct{} // closed when bytes are released while readers wait
}

func newServerBudget(limit int) *serverBudget { return &serverBudget{limit: int64(limit)} }

// stop reports whether a session holding held bytes must stop reading.
func (b *serverBudget) stop(held int64) bool {
	used := b.used.Load()
	switch {
	case held == 0 || used < b.limit/2:
		return false
	case used >= b.limit:
		return true
	}
	return held >= b.limit/(2*max(b.holders.Load(), 1))
}

// take counts n bytes a session queued; first says its queue was empty.
func (b *serverBudget) take(n int64, first bool) {
	if first {
		b.holders.Add(1)
	}
	b.used.Add(n)
}

// release gives back n bytes a session handled; last says its queue is now
// empty. It wakes the readers waiting for room.
func (b *serverBudget) release(n int64, last bool) {
	b.used.Add(-n)
	if last {
		b.holders.Add(-1)
	}
	if b.waiters.Load() > 0 {
		b.mu.Lock()
		if b.freed != nil {
			close(b.freed)
			b.freed = nil
		}
		b.mu.Unlock()
	}
}

// wait registers a waiting reader and returns a channel that the next
// release closes; the caller must check stop again after wait and call done
// when it stops waiting.
func (b *serverBudget) wait() (freed <-chan struct{}, done func()) {
	b.mu.Lock()
	b.waiters.Add(1)
	if b.freed == nil {
		b.freed = make(chan struct{})
	}
	ch := b.freed
	b.mu.Unlock()
	return ch, func() { b.waiters.Add(-1) }
}

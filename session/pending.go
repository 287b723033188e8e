package session

// The worker's side of the pending counts. A reader counts each message
// into pending under Session.mu as it queues it (enqueue). The worker
// releases each message as its handler returns: into the server's budget at
// once (an atomic count the other sessions' readers read), and into the
// session's own counts through Session.released, one atomic addition with
// no lock. Those are folded into pending under the lock once per batch
// (take), whenever someone reads the counts (Stats, a reader that finds no
// room, a reader about to signal SLOW_DOWN), and after every message while
// someone waits on them (Session.eager). The lock is then taken once per
// batch instead of once per message, and the cache line it shares with the
// readers moves between their cores and the worker's once per batch too.

// pendingMessage is a message in the pending queue with what it counts
// against the byte budget (Message.size), computed once, as it is queued.
type pendingMessage struct {
	Message
	size int64
}

// releasedCountBits is the width of Session.released's message count: the
// worker folds at least once per batch, so it holds at most workBatch
// messages.
const releasedCountBits = 8

// splitReleased returns the messages and bytes a value of Session.released
// holds.
func splitReleased(v uint64) (n int, bytes int64) {
	return int(v & (1<<releasedCountBits - 1)), int64(v >> releasedCountBits)
}

// done releases a handled message of n bytes: it counts as handled and
// leaves pending from here on (Stats counts what is not yet folded, see
// foldLocked). While eager is set it folds at once, so that a handler that
// blocks on the next message never holds back the room, the RESUME and the
// counts of those handled before it. The order matters: the addition to
// released comes before the load of eager, and whoever sets eager folds
// after setting it, so that each message is folded by one or the other.
func (s *Session) done(n int64) {
	s.srv.handled.Add(1)
	s.srv.budget.release(n, false)
	s.released.Add(uint64(n)<<releasedCountBits | 1)
	if !s.eager.Load() {
		return
	}
	s.mu.Lock()
	_, resume := s.foldLocked()
	s.mu.Unlock()
	if resume {
		s.syncSignal()
	}
}

// foldLocked takes the messages the worker released since the last fold
// off pending and counts them handled; it wakes readers waiting for room,
// leaves the server's budget when nothing is pending, and decides RESUME
// below half the cap and half the byte budget, which the caller sends with
// syncSignal once it has let go of s.mu (resume). took says whether
// anything was folded. s.mu is held.
func (s *Session) foldLocked() (took, resume bool) {
	n, bytes := splitReleased(s.released.Swap(0))
	if n == 0 {
		return false, false
	}
	s.pending -= n
	s.pendingBytes -= bytes
	s.handled.Add(uint64(n))
	if s.pending == 0 {
		s.srv.budget.release(0, true)
	}
	resume = s.slowed && s.pending < s.srv.cfg.PendingCap/2 && s.pendingBytes < int64(s.srv.cfg.PendingBytes)/2
	if resume {
		s.slowed = false
		s.backpressure.Store(false)
	}
	if s.spaceWanted {
		s.spaceWanted = false
		close(s.space)
		s.space = make(chan struct{})
	}
	if s.eager.Load() != s.slowed {
		s.eager.Store(s.slowed)
	}
	return true, resume
}

// overLocked reports whether the pending messages reached the cap or the
// byte budget: the session signals SLOW_DOWN. s.mu is held.
func (s *Session) overLocked() bool {
	return s.pending >= s.srv.cfg.PendingCap || s.pendingBytes >= int64(s.srv.cfg.PendingBytes)
}

// released must hold a batch's count: the build fails if workBatch outgrows
// releasedCountBits.
var _ [1<<releasedCountBits - 1 - workBatch]struct{}

package transport

import (
	"bytes"
	"container/heap"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the 0-RTT anti-replay check (see [Config.EarlyDataWindow] and
// [Config.ReplayCacheSize]).
const (
	// DefaultEarlyDataWindow is how long after it was issued a session ticket
	// may still carry 0-RTT data.
	DefaultEarlyDataWindow = 24 * time.Hour
	// MaxEarlyDataWindow is the highest Config.EarlyDataWindow: the lifetime
	// crypto/tls gives its session tickets.
	MaxEarlyDataWindow = 7 * 24 * time.Hour
	// DefaultReplayCacheSize is how many used session tickets a listener
	// remembers, about 60 bytes each.
	DefaultReplayCacheSize = 100_000
)

// errGetConfigForClient refuses a listener config whose tickets the replay
// check could not see: crypto/tls takes WrapSession and UnwrapSession from
// the config GetConfigForClient returns.
var errGetConfigForClient = errors.New("tls.Config.GetConfigForClient cannot be combined with Config.Allow0RTT: " +
	"the 0-RTT anti-replay check must see every session ticket; set the certificate with GetCertificate instead")

// replayExtraPrefix starts the entry this package adds to a ticket's
// SessionState.Extra: a random ticket ID and the time the ticket was issued.
// crypto/tls encrypts and authenticates it with the rest of the ticket.
var replayExtraPrefix = []byte("quicmsg/0rtt-id/1:")

const ticketIDLen = 16

type ticketID [ticketIDLen]byte

// replayGuard makes every session ticket single-use for 0-RTT (RFC 8446,
// section 8.1): the first connection that presents a ticket may send early
// data; later ones, such as a captured first flight sent again, resume
// without it and need the full handshake to complete, which a replaying
// attacker cannot do. Refusing early data never refuses the connection.
//
// The register is one process's memory: a restart empties it, and servers
// that share ticket keys do not share it.
type replayGuard struct {
	window time.Duration
	size   int
	now    func() time.Time

	refused atomic.Uint64 // early data refused: reused, unknown, too old or past the horizon

	mu      sync.Mutex
	used    map[ticketID]struct{} // tickets whose early data was accepted
	byAge   ticketHeap            // the same tickets, oldest issue first
	horizon int64                 // tickets issued at or before this (unix ns) get no early data
}

// withAntiReplay installs the replay check on tc, a listener's own copy of
// the TLS config, when conf allows 0-RTT. A WrapSession or UnwrapSession of
// the caller's is kept and called inside the check's.
func withAntiReplay(tc *tls.Config, conf Config) (*replayGuard, error) {
	if !conf.Allow0RTT || tc.SessionTicketsDisabled {
		return nil, nil
	}
	if tc.GetConfigForClient != nil {
		return nil, errGetConfigForClient
	}
	g := &replayGuard{
		window: conf.EarlyDataWindow,
		size:   conf.ReplayCacheSize,
		now:    time.Now,
		used:   make(map[ticketID]struct{}),
	}
	wrap, unwrap := tc.WrapSession, tc.UnwrapSession
	if wrap == nil {
		wrap = tc.EncryptTicket
	}
	if unwrap == nil {
		unwrap = tc.DecryptTicket
	}
	tc.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		if ss.EarlyData {
			if err := g.stamp(ss); err != nil {
				return nil, err
			}
		}
		return wrap(cs, ss)
	}
	tc.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := unwrap(identity, cs)
		if err != nil || ss == nil || !ss.EarlyData {
			return ss, err
		}
		if !g.admit(ss.Extra) {
			ss.EarlyData = false
			g.refused.Add(1)
		}
		return ss, nil
	}
	return g, nil
}

// stamp gives a ticket that allows early data its ID and issue time.
func (g *replayGuard) stamp(ss *tls.SessionState) error {
	e := make([]byte, 0, len(replayExtraPrefix)+ticketIDLen+8)
	e = append(e, replayExtraPrefix...)
	var id ticketID
	if _, err := rand.Read(id[:]); err != nil {
		return err
	}
	e = append(e, id[:]...)
	e = binary.BigEndian.AppendUint64(e, uint64(g.now().UnixNano()))
	ss.Extra = append(ss.Extra, e)
	return nil
}

// parseStamp finds the entry stamp added among a ticket's extras.
func parseStamp(extra [][]byte) (id ticketID, issued int64, ok bool) {
	for _, e := range extra {
		rest, found := bytes.CutPrefix(e, replayExtraPrefix)
		if !found || len(rest) != ticketIDLen+8 {
			continue
		}
		copy(id[:], rest)
		return id, int64(binary.BigEndian.Uint64(rest[ticketIDLen:])), true
	}
	return id, 0, false
}

// admit reports whether a ticket may carry early data, and records it as
// used if so. A ticket without a stamp (issued by a server without this
// check), one issued longer than the window ago, or at or before the horizon
// is refused, as is any ticket seen before. At the size limit the oldest
// record is forgotten and the horizon moves up to its issue time, so that
// forgetting never lets a replay through: it only ends early data for
// tickets as old as the forgotten one.
func (g *replayGuard) admit(extra [][]byte) bool {
	id, issued, ok := parseStamp(extra)
	if !ok {
		return false
	}
	now := g.now().UnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expire(now)
	if now-issued >= int64(g.window) || issued <= g.horizon {
		return false
	}
	if _, seen := g.used[id]; seen {
		return false
	}
	for len(g.byAge) >= g.size {
		old := heap.Pop(&g.byAge).(usedTicket)
		delete(g.used, old.id)
		g.horizon = max(g.horizon, old.issued)
	}
	if issued <= g.horizon {
		return false
	}
	g.used[id] = struct{}{}
	heap.Push(&g.byAge, usedTicket{id: id, issued: issued})
	return true
}

// expire forgets tickets too old to carry early data anyway.
func (g *replayGuard) expire(now int64) {
	for len(g.byAge) > 0 && now-g.byAge[0].issued >= int64(g.window) {
		old := heap.Pop(&g.byAge).(usedTicket)
		delete(g.used, old.id)
	}
}

// refusedCount is the number of 0-RTT attempts whose early data the check
// refused; zero without a check.
func (g *replayGuard) refusedCount() uint64 {
	if g == nil {
		return 0
	}
	return g.refused.Load()
}

type usedTicket struct {
	id     ticketID
	issued int64
}

// ticketHeap orders used tickets by issue time, oldest first.
type ticketHeap []usedTicket

func (h ticketHeap) Len() int           { return len(h) }
func (h ticketHeap) Less(i, j int) bool { return h[i].issued < h[j].issued }
func (h ticketHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *ticketHeap) Push(x any)        { *h = append(*h, x.(usedTicket)) }
func (h *ticketHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

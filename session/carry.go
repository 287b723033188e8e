package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/quicmsg/quicmsg/internal/unsent"
	"github.com/quicmsg/quicmsg/transport"
)

// carried is what a resumable session keeps of a client channel across
// its connections: the counts each side needs at a resume and the
// server-to-client messages the client has not acknowledged. Transport
// counts start at 0 on every stream; these are over the whole session.
//
// Every message Send accepted on the channel is, in order: acknowledged
// (base), written on the last connection without acknowledgement (doubt),
// waiting to be written (queue), or in the current transport channel tc.
type carried struct {
	name string
	// turn is held, as a one-slot semaphore so that a Send waiting for it
	// honours its ctx, by whoever writes to tc or moves messages of queue:
	// a Send, the re-send after a resume (Session.resend), and the fold of
	// a dead connection's channel (Session.fold). One mover at a time
	// keeps the order.
	turn chan struct{}

	// Guarded by Session.mu.
	tc       *transport.Channel // the channel on the current connection; nil while the client has not (re)opened it
	received uint64             // messages the session's reader took from the client on this channel
	base     uint64             // messages the client acknowledged before tc's first
	doubt    []queued           // written on the last connection, not acknowledged: the client's resume state says how many it has
	queue    []queued           // not written yet, oldest first
	// closedOn is the connection on which the client closed the channel
	// after the server had told that connection to go away
	// (transport.Conn.GoAwaySent): a client's graceful close closes every
	// channel before the connection, and the session carries them to the
	// next one, where the client names them in its resume state and opens
	// them again. A channel the client closes otherwise is dropped at once
	// (what it held counts as unacknowledged). At a resume, a carried
	// channel the client does not name, if it had acknowledged messages on
	// it or closed it, is one it no longer has: it is dropped likewise. A
	// channel of the same name opened again on the connection that closed
	// it starts afresh: what the closed one held, and what the client had
	// not acknowledged of what was sent on it, counts as unacknowledged
	// (dropReopenedLocked).
	closedOn *transport.Conn
	// serverEnded says that the server ended tc on closedOn (its handler
	// closed or reset it, see endOf), not the client nor the connection's
	// end: Send fails on it, as on any channel the server ended, until the
	// client opens it again.
	serverEnded bool
	// gone is tc once a Send found it ended on a connection the server
	// had told to go away: the client is closing it to come back on
	// another, before the session's reader has seen the close (closedOn).
	// From then on Send keeps its messages for the next connection, as
	// it will once closedOn is set.
	gone *transport.Channel
}

// queued is a server-to-client message, or gap notice, the session holds:
// with its subject and headers, so that it is written again as it was
// sent.
type queued struct {
	transport.UnsentMessage
	added bool // added by Send while the channel had no connection (counts against Config.MaxDetachedSendBytes)
}

// size is what q counts against the session's byte bounds (see
// unsent.Size).
func (q queued) size() int64 { return int64(unsent.Size(q.UnsentMessage)) }

// live returns the channel's transport channel on the current connection,
// or nil while it has none to write to: the session is detached, the
// client has not reopened it since it resumed, or it closed it on a
// connection the session had told to go away (closedOn, gone). Session.mu
// is held.
func (cs *carried) live() *transport.Channel {
	if cs.closedOn != nil || cs.tc == cs.gone {
		return nil
	}
	return cs.tc
}

func newCarried(name string) *carried {
	return &carried{name: name, turn: make(chan struct{}, 1)}
}

// acquire takes the channel's turn, waiting until ctx ends, or not at
// all when block is false.
func (cs *carried) acquire(ctx context.Context, block bool) error {
	if !block {
		select {
		case cs.turn <- struct{}{}:
			return nil
		default:
			return fmt.Errorf("session: channel %q is busy sending: %w", cs.name, transport.ErrWouldBlock)
		}
	}
	select {
	case cs.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (cs *carried) release() { <-cs.turn }

// held returns the messages the channel holds unacknowledged. Session.mu
// is held.
func (cs *carried) held() int { return len(cs.doubt) + len(cs.queue) }

func queuedOf(ms []transport.UnsentMessage) []queued {
	q := make([]queued, len(ms))
	for i, m := range ms {
		q[i] = queued{UnsentMessage: m}
	}
	return q
}

func payload(ms []queued) int64 {
	var n int64
	for _, m := range ms {
		n += m.size()
	}
	return n
}

// signalLocked wakes whoever waits for the session's channels to change:
// a connection folded, a channel reopened, room in the send bound, the
// session resumed or ended. Session.mu is held.
func (s *Session) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// sendCarried is Send (block) or TrySend on a carried channel: while the
// channel has a connection it writes what the channel holds, then u;
// without one it keeps u for the next, within Config.MaxDetachedSendBytes.
func (s *Session) sendCarried(ctx context.Context, cs *carried, u transport.UnsentMessage, block bool) error {
	for {
		if err := cs.acquire(ctx, block); err != nil {
			return err
		}
		wait, err := s.sendTurn(ctx, cs, u, block)
		cs.release()
		if wait == nil {
			return err
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sendTurn is one attempt of sendCarried, holding cs.turn. A non-nil wait
// says to try again once it is closed.
func (s *Session) sendTurn(ctx context.Context, cs *carried, u transport.UnsentMessage, block bool) (wait <-chan struct{}, err error) {
	s.mu.Lock()
	if err := s.sendableLocked(cs); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	tc := cs.live()
	s.mu.Unlock()
	if tc == nil {
		return s.keep(cs, u, block)
	}
	err = s.drain(ctx, cs, tc, block)
	if err == nil {
		err = unsent.Send(ctx, tc, u, block)
	}
	if err != nil && ctx.Err() == nil && s.movedOff(cs, tc, err) {
		return closedChan, nil // the next try keeps u
	}
	if err == nil || tc.Conn().Context().Err() == nil || ctx.Err() != nil {
		return nil, s.channelErr(tc, err)
	}
	// The connection ended: the message goes to the next one, once the
	// session has taken the dead channel's messages back (fold).
	if !block {
		return nil, fmt.Errorf("session: channel %q: the connection ended, the session is being detached: %w", cs.name, transport.ErrWouldBlock)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs.tc != tc {
		return closedChan, nil
	}
	return s.changed, nil
}

// movedOff reports whether err, from a send on tc, the live channel of
// cs, says that the client is closing the channel as it leaves a
// connection the server told to go away (its graceful close closes every
// channel first), and if so marks tc gone: the message, and those after
// it, are kept for the next connection, as they are once the session's
// reader has seen the close (closedOn), instead of failing with the
// channel's error meanwhile. Nothing waits for the reader, which may
// itself wait for the handler that sends. cs.turn is held.
func (s *Session) movedOff(cs *carried, tc *transport.Channel, err error) bool {
	c := tc.Conn()
	if c.Context().Err() != nil || !c.GoAwaySent() {
		return false
	}
	var ce *transport.ChannelError
	switch {
	case errors.As(err, &ce) && ce.Remote:
		// The client reset or stopped reading the channel.
	case errors.Is(err, transport.ErrClosed):
		// Closed on this side: by the session's reader once the client
		// had stopped reading, which marks it gone first (peerStopped),
		// or by the handler, which is not the client leaving.
		s.mu.Lock()
		gone := cs.gone == tc
		s.mu.Unlock()
		return gone
	default:
		// The channel ended here (Reset by the server) or otherwise.
		return false
	}
	s.markGone(cs, tc)
	return true
}

// peerStopped marks ch, the live channel of cs, gone when the client
// ended it (it stopped reading or reset it: endOf) on a connection
// the server told to go away, before the session's reader closes it: a
// Send that then meets the closed channel keeps its message for the next
// connection (movedOff). cs may be nil.
func (s *Session) peerStopped(cs *carried, ch *transport.Channel) {
	if cs != nil && ch.Conn().GoAwaySent() {
		s.markGone(cs, ch)
	}
}

// markGone marks tc gone if it is still the live channel of cs.
func (s *Session) markGone(cs *carried, tc *transport.Channel) {
	s.mu.Lock()
	if cs.tc == tc {
		cs.gone = tc
	}
	s.mu.Unlock()
}

// closedChan is a closed channel: a wait that is already over.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// sendableLocked returns why a send on cs must fail: the session ended, or
// the client closed the channel. Session.mu is held.
func (s *Session) sendableLocked(cs *carried) error {
	if s.over {
		return fmt.Errorf("%w: %w", ErrSessionEnded, context.Cause(s.ctx))
	}
	if s.carried[cs.name] != cs || cs.serverEnded {
		return &ChannelClosedError{Channel: cs.name}
	}
	return nil
}

// keep appends u to the queue of cs, which has no connection, within
// Config.MaxDetachedSendBytes; while the session is detached its bytes
// count against the server's Config.MaxDetachedBytes too. It refuses what
// the client's last connection would have refused (unsent.Check, its
// message size limit). cs.turn is held.
func (s *Session) keep(cs *carried, u transport.UnsentMessage, block bool) (wait <-chan struct{}, err error) {
	q := queued{UnsentMessage: u, added: true}
	n := q.size()
	srv := s.srv
	srv.mu.Lock()
	defer srv.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sendableLocked(cs); err != nil {
		return nil, err
	}
	if cs.live() != nil {
		return closedChan, nil // reopened meanwhile
	}
	if err := s.keepable(cs.name, u); err != nil {
		return nil, err
	}
	if limit := int64(srv.cfg.MaxDetachedSendBytes); s.added > 0 && s.added+n > limit {
		if !block {
			return nil, fmt.Errorf("session: channel %q: %d bytes wait for the client already, the limit (Config.MaxDetachedSendBytes %d): %w",
				cs.name, s.added, limit, transport.ErrWouldBlock)
		}
		return s.changed, nil
	}
	// Send's caller may reuse its message once Send returns, as with
	// transport.
	q.UnsentMessage = unsent.Own(u)
	cs.queue = append(cs.queue, q)
	s.added += n
	s.heldBytes += n
	srv.countDetachedLocked(s, n)
	return nil, nil
}

// drain writes what cs holds to tc, oldest first, before anything new.
// cs.turn is held.
func (s *Session) drain(ctx context.Context, cs *carried, tc *transport.Channel, block bool) error {
	for {
		s.mu.Lock()
		if cs.tc != tc || len(cs.queue) == 0 {
			s.mu.Unlock()
			return nil
		}
		// Only the holder of the turn takes from the front, so the
		// message is still there after the write.
		m := cs.queue[0]
		s.mu.Unlock()
		err := unsent.Send(ctx, tc, m.UnsentMessage, block)
		if testHookDrainWrote != nil {
			testHookDrainWrote(cs)
		}
		lost := unsent.Refused(err) // the client lowered its limit, or no longer takes headers
		if err != nil && !lost {
			return err
		}
		s.mu.Lock()
		if s.carried[cs.name] != cs {
			// Dropped during the write (the client closed or reopened the
			// channel): the drop counted what cs held, m with it, and
			// took back its bytes.
			s.mu.Unlock()
			return nil
		}
		if lost {
			s.loseLocked(cs.name, 1)
		}
		cs.queue[0] = queued{}
		cs.queue = cs.queue[1:]
		s.heldBytes -= m.size()
		if m.added {
			s.added -= m.size()
			s.signalLocked()
		}
		s.mu.Unlock()
	}
}

// testHookDrainWrote, set only by tests, runs in drain after each write,
// before drain takes the written message off the queue: a test drops the
// channel there.
var testHookDrainWrote func(*carried)

// resend is the re-send of a channel the client reopened after a resume,
// owned by the session (started by addChannel, counted in readers): it
// writes what the channel holds before any new Send does.
func (s *Session) resend(cs *carried, tc *transport.Channel) {
	defer s.readers.Done()
	ctx := tc.Conn().Context()
	if cs.acquire(ctx, true) != nil {
		return
	}
	defer cs.release()
	_ = s.drain(ctx, cs, tc, true)
}

// fold takes back, after the connection of cs.tc ended, what the client
// did not acknowledge on it: the acknowledged count moves into base, the
// unacknowledged messages become doubt, the unwritten ones go to the
// front of the queue. It waits for the turn: its holders return once the
// connection has ended.
func (s *Session) fold(cs *carried) {
	cs.turn <- struct{}{}
	defer cs.release()
	s.mu.Lock()
	tc := cs.tc
	cs.tc = nil
	s.mu.Unlock()
	if tc == nil {
		return
	}
	acked, unacked, unsent := tc.Acked(), queuedOf(tc.Unacked()), queuedOf(tc.Unsent())
	s.mu.Lock()
	defer s.mu.Unlock()
	cs.base += acked
	cs.doubt = append(cs.doubt, unacked...)
	cs.queue = append(unsent, cs.queue...)
	s.heldBytes += payload(unacked) + payload(unsent)
	s.signalLocked()
}

// dropCarriedLocked forgets cs, a channel the client closed: what it held
// counts as unacknowledged. Session.mu is held.
func (s *Session) dropCarriedLocked(cs *carried) {
	delete(s.carried, cs.name)
	s.loseLocked(cs.name, cs.held())
	s.heldBytes -= payload(cs.doubt) + payload(cs.queue)
	for _, m := range cs.queue {
		if m.added {
			s.added -= m.size()
		}
	}
	s.signalLocked()
}

// dropReopenedLocked drops cs, which was closed after GOAWAY (see
// carried.closedOn) and whose name is now opened again, by the client
// (carryLocked) or by the server (Session.Open): besides what cs held, the
// messages Send accepted on its closed channel that the client had not
// acknowledged by now count as unacknowledged (an upper bound: an
// acknowledgement may still be on its way). When closedOn is an earlier
// connection, fold has already moved those into what cs holds and set
// cs.tc to nil. Session.mu is held.
func (s *Session) dropReopenedLocked(cs *carried) {
	if cs.tc != nil {
		st := cs.tc.Stats()
		s.loseLocked(cs.name, int(st.MessagesSent-min(st.MessagesAcked, st.MessagesSent)))
	}
	s.dropCarriedLocked(cs)
}

// foldAll folds every carried channel; the session's readers and
// re-senders have ended.
func (s *Session) foldAll() {
	s.mu.Lock()
	all := make([]*carried, 0, len(s.carried))
	for _, cs := range s.carried {
		all = append(all, cs)
	}
	s.mu.Unlock()
	for _, cs := range all {
		s.fold(cs)
	}
}

// checkClaims returns a [*transport.ResumeError] wrapping
// transport.ErrResumeClaim if the client's resume state, what it received
// per channel, does not fit what the session sent: at least what the
// client acknowledged, at most that plus what was written unacknowledged.
func (s *Session) checkClaims(claims map[string]uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, cs := range s.carried {
		r, named := claims[name]
		if !named && (cs.closedOn != nil || cs.base > 0) {
			continue // the client closed it: applyClaims drops it
		}
		lo := cs.base
		if hi := lo + uint64(len(cs.doubt)); r < lo || r > hi {
			return &transport.ResumeError{ID: s.id, Err: transport.ErrResumeClaim, Detail: fmt.Sprintf(
				"channel %q: the client claims %d messages received, the server sent %d of which %d were acknowledged", name, r, hi, lo)}
		}
	}
	for name, r := range claims {
		if _, known := s.carried[name]; !known && r > 0 && s.lost[name] == 0 {
			return &transport.ResumeError{ID: s.id, Err: transport.ErrResumeClaim, Detail: fmt.Sprintf(
				"channel %q: the client claims %d messages received, the server sent none", name, r)}
		}
	}
	return nil
}

// applyClaims drops from each channel what the client has (validated by
// checkClaims) and puts the rest of its doubt in front of its queue.
func (s *Session) applyClaims(claims map[string]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, cs := range s.carried {
		r, named := claims[name]
		if !named && (cs.closedOn != nil || cs.base > 0) {
			s.dropCarriedLocked(cs)
			continue
		}
		skip := r - cs.base
		s.heldBytes -= payload(cs.doubt[:skip])
		cs.queue = append(cs.doubt[skip:len(cs.doubt):len(cs.doubt)], cs.queue...)
		cs.doubt = nil
		cs.base = r
	}
	s.signalLocked()
}

// receivedCounts returns how many messages the session took from the
// client on each carried channel.
func (s *Session) receivedCounts() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]uint64, len(s.carried))
	for name, cs := range s.carried {
		m[name] = cs.received
	}
	return m
}

// unacked returns, per channel, the messages the session holds that the
// client never acknowledged, with those of the server's channels lost with
// a connection; the session's connections have all ended.
func (s *Session) unacked() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int)
	for name, n := range s.lost {
		m[name] += n
	}
	for name, cs := range s.carried {
		if n := cs.held(); n > 0 {
			m[name] += n
		}
	}
	return m
}

// keepable returns why u cannot be kept for channel: what the client's
// last connection would refuse. Session.mu is held.
func (s *Session) keepable(channel string, u transport.UnsentMessage) error {
	if err := unsent.Check(channel, u, s.headers); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	if size := unsent.Size(u); u.Gap == nil && size > s.peerMax {
		return &transport.MessageTooLargeError{Channel: channel, Size: size, Limit: s.peerMax}
	}
	return nil
}

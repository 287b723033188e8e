package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quicmsg/quicmsg/internal/ring"
	"github.com/quicmsg/quicmsg/internal/unsent"
	"github.com/quicmsg/quicmsg/internal/wire"
	"github.com/quicmsg/quicmsg/transport"
)

// Message is a message received from a session, with the channel it came on.
type Message struct {
	Channel string
	// Subject is the message's concrete subject: the subject the client
	// published it to (transport.Message.Subject), else Channel.
	Subject string
	// Header holds the message's headers other than the subject, in order;
	// nil when it had none.
	Header transport.Header
	Data   []byte
}

// size is what m counts against the pending byte budget: its payload,
// headers and subject (see unsent.Size).
func (m *Message) size() int {
	u := transport.UnsentMessage{Data: m.Data, Header: m.Header}
	if m.Subject != m.Channel {
		u.Subject = m.Subject
	}
	return unsent.Size(u)
}

// SessionStats are a session's counters.
type SessionStats struct {
	MessagesReceived   uint64 // read from the client's channels
	MessagesHandled    uint64 // returned from the handler
	BackpressureEvents uint64 // times the pending cap or byte budget was reached
	Pending            int    // received, not yet handled
	PendingBytes       int64  // payload bytes of the pending messages, with their headers
	GapsReceived       uint64 // gap notices read from the client's channels: counted and skipped, never handled
}

// Session is one client's session on a [Server]. Without acknowledgements
// it lives while its connection does; with them it may outlive a lost
// connection, detached, until its client resumes it on a new one (see the
// package doc, "Resumable sessions"): the Session stays the same object,
// and [Session.Conn] returns its current connection. All methods are safe
// for concurrent use.
type Session struct {
	// Immutable after newSession.
	srv   *Server
	id    transport.SessionID
	start time.Time
	// allowFixed and allowPerChannel are the parts of the allowance (see
	// allowance) that do not change during the session.
	allowFixed      int64
	allowPerChannel int64
	// resumable: the session may be detached when its connection is lost
	// (acknowledgements on, a listener made by Server.Listen, ResumeWindow
	// not negative).
	resumable bool
	// ctx ends, with the cause, when the session ends (Server.finish).
	ctx    context.Context
	cancel context.CancelCauseFunc
	// left and finished are closed by the session's goroutine
	// (Server.runSession): left once the session has left the server's
	// tables for good, finished as the goroutine returns, after the last
	// message was handled and OnSessionEnd ran.
	left, finished chan struct{}
	// resumed hands the session's goroutine the connection its client
	// resumed it on; kick tells it that it was ended while detached
	// (kickCause says why). Each is sent to at most once per detachment,
	// under Server.mu as the session leaves the detached table, and holds
	// one value.
	resumed chan *transport.Conn
	kick    chan struct{}

	// Guarded by Server.mu: the session's place among the detached ones.
	// gen is the generation of the token the client surely holds (it
	// answered the HELLO that issued it with its resume state); issued is
	// that of the last token issued, which it may hold. A resume presents
	// one of the two; anything older is a replay.
	gen, issued   uint64
	resumingUntil time.Time // a resume OnResume accepted is on its way until then
	detachedAt    time.Time
	folding       bool  // in the detached table, its channels not yet taken back: not resumable yet
	counted       int64 // bytes this session adds to Server.detachedBytes
	kickCause     error

	openMu sync.Mutex // serialises opening channels from the server side
	sigMu  sync.Mutex // serialises SLOW_DOWN/RESUME, see syncSignal

	// mu guards the fields below; never held while user code runs.
	mu sync.Mutex
	// conn is the current connection: set by newSession, replaced by
	// Server.admitResumed on a resume, nil while detached (letGo) so that a
	// detached session does not hold its lost connection's memory;
	// lastRemote and last0RTT keep what RemoteAddr and Used0RTT report
	// meanwhile.
	conn         *transport.Conn
	lastRemote   net.Addr
	last0RTT     bool
	peerMax      int  // the client's largest message on the last connection: Send keeps none larger
	headers      bool // the last connection has the HEADERS extension: Send keeps messages with headers
	disconnected bool // Disconnect was called: the session ends with its connection
	over         bool // the session ended: sends fail
	// channels: addChannel adds one (from acceptChannels or Open), its
	// reader removes it as it ends.
	channels map[string]*transport.Channel
	// carried holds the client channels of a resumable session, which
	// outlive its connections: addChannel adds one, its reader removes it
	// when the client closes the channel, the session's end drops them.
	carried   map[string]*carried
	lost      map[string]int // unacknowledged messages of the server's channels lost with a connection
	changed   chan struct{}  // closed and replaced by signalLocked
	heldBytes int64          // payload bytes of the carried channels' doubt and queue
	added     int64          // payload bytes Send added to queues (Config.MaxDetachedSendBytes)
	// queue holds the pending messages not yet given to the handler: the
	// readers push, the worker pops. Bounded by the pending cap and byte
	// budget: readers wait for room (waitRoom) before they read.
	queue     ring.Ring[Message]
	queuePeak int // most messages queue held since the worker last emptied it
	pending   int // received, not yet handled: queue plus the one being handled
	// pendingBytes is the payload of the pending messages; it counts
	// against Config.PendingBytes and the server's budget.
	pendingBytes int64
	slowed       bool
	sinceSlow    int64 // message frame bytes received since SLOW_DOWN (OverflowDisconnect)
	shed         bool  // disconnected with CodeOverloaded
	space        chan struct{}
	spaceWanted  bool // a reader waits on space: the worker closes it after a message
	working      bool // a worker goroutine runs: set by enqueue as it starts one, cleared by the worker as it exits
	ended        bool // set by acceptChannels once the current connection ended: no reader starts after it

	serverOpen int // channels the server opened that are open or being opened

	backpressure atomic.Bool
	received     atomic.Uint64
	handled      atomic.Uint64
	gaps         atomic.Uint64
	events       atomic.Uint64

	// readers counts the goroutines of the current connection: one reader
	// per channel (addChannel adds one under mu while !ended) and the
	// re-senders after a resume. Server.runSession waits for them when the
	// connection ends.
	readers sync.WaitGroup
	// owned counts the worker while it runs: enqueue adds it from a reader,
	// which is itself counted, and Server.finish waits for it after the
	// readers, so no Add races with the Wait. The worker goes on handling
	// what was received while the session is detached.
	owned sync.WaitGroup
}

// newSession makes the session of c, whose HELLO exchange is complete.
func newSession(srv *Server, c *transport.Conn, resumable bool) *Session {
	frame := int64(c.Limits().MaxMessageSize) + maxFrameHeader
	s := &Session{
		srv: srv, id: c.SessionID(), conn: c, start: time.Now(), resumable: resumable, gen: c.ResumeGeneration(), issued: c.ResumeGeneration(),
		space: make(chan struct{}), left: make(chan struct{}), finished: make(chan struct{}),
		resumed: make(chan *transport.Conn, 1), kick: make(chan struct{}, 1), changed: make(chan struct{}),
		allowFixed:      satMul(2, int64(c.ReceiveWindow())),
		allowPerChannel: satMul(2, max(int64(c.PeerLimits().SendBufferSize), frame)),
	}
	s.peerMax, s.headers = c.PeerLimits().MaxMessageSize, c.HeadersEnabled()
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	return s
}

// ID returns the session's unique ID.
func (s *Session) ID() transport.SessionID { return s.id }

// RemoteAddr returns the client's address on the current connection, or
// on the last one while the session is detached.
func (s *Session) RemoteAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return s.lastRemote
	}
	return s.conn.RemoteAddr()
}

// Conn returns the session's current connection: the one it began with,
// or the one its client last resumed it on. It returns nil while the
// session is detached, from when Config.OnSessionDetached has returned
// (the hook still sees the lost connection), and after a detached session
// ended: the session lets the lost connection go, which is most of what a
// detached session would otherwise hold.
func (s *Session) Conn() *transport.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// letGo drops the lost connection of a detached session, keeping what
// RemoteAddr and Used0RTT report.
func (s *Session) letGo() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.lastRemote, s.last0RTT = s.conn.RemoteAddr(), s.conn.Used0RTT()
		s.conn = nil
	}
}

// Context is cancelled when the session ends; context.Cause says why.
// Without resumption (acknowledgements off, Config.ResumeWindow negative)
// that is when its connection ends, as the connection's own context. A
// resumable session ends when its connection ends in a way the client
// does not come back from, or when it is not resumed in time; a
// connection lost meanwhile does not end it (see [Session.Conn] for the
// connection's own context). Handlers may still run for messages received
// before the end.
func (s *Session) Context() context.Context { return s.ctx }

// Used0RTT reports whether the client began the current connection (the
// last one while detached) with 0-RTT data that the server accepted (known
// once the handshake has completed).
func (s *Session) Used0RTT() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return s.last0RTT
	}
	return s.conn.Used0RTT()
}

// Started returns when the session began.
func (s *Session) Started() time.Time { return s.start }

// BackpressureActive reports whether the session has asked its client to
// slow down because its pending messages reached the cap or the byte budget.
func (s *Session) BackpressureActive() bool { return s.backpressure.Load() }

// Stats returns the session's counters.
func (s *Session) Stats() SessionStats {
	s.mu.Lock()
	p, pb := s.pending, s.pendingBytes
	s.mu.Unlock()
	return SessionStats{
		MessagesReceived:   s.received.Load(),
		MessagesHandled:    s.handled.Load(),
		BackpressureEvents: s.events.Load(),
		Pending:            p,
		PendingBytes:       pb,
		GapsReceived:       s.gaps.Load(),
	}
}

// Channels returns the names of the session's open channels, with those
// the client is to reopen after a resume.
func (s *Session) Channels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := slices.Collect(maps.Keys(s.channels))
	for name := range s.carried {
		if _, ok := s.channels[name]; !ok {
			names = append(names, name)
		}
	}
	return names
}

// Channel returns the session's open channel named name on its current
// connection, if it has one (not while the session is detached, nor
// before its client reopened the channel after a resume). Unlike
// SendOpen, it never opens a channel.
func (s *Session) Channel(name string) (*transport.Channel, bool) {
	ch := s.lookup(name)
	return ch, ch != nil
}

func (s *Session) lookup(name string) *transport.Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.channels[name]
}

// addChannel registers ch, a channel of the current connection, and starts
// its reader; false if the name is taken or the connection is not current.
// server says that the server opened ch: its reader gives back its place
// among Config.MaxServerChannels when it ends. A client channel that a
// resumable session carries from an earlier connection gets the messages
// held for it (resend) before any new one, and no second OnChannelOpen.
func (s *Session) addChannel(ch *transport.Channel, server bool) bool {
	s.mu.Lock()
	if _, dup := s.channels[ch.Name()]; dup || s.ended || ch.Conn() != s.conn {
		s.mu.Unlock()
		return false
	}
	if s.channels == nil {
		s.channels = make(map[string]*transport.Channel)
	}
	s.channels[ch.Name()] = ch
	cs, reopened, wasClosed := s.carryLocked(ch, server)
	resend := reopened && len(cs.queue) > 0
	s.readers.Add(1)
	if resend {
		s.readers.Add(1)
	}
	s.mu.Unlock()
	if f := s.srv.cfg.OnChannelOpen; f != nil && (!reopened || wasClosed) {
		f(s, ch.Name())
	}
	go s.read(ch, server, cs)
	if resend {
		go s.resend(cs, ch)
	}
	return true
}

// carryLocked returns the carried state of a client channel of a
// resumable session, made for a new name; reopened says that the channel
// was carried from an earlier connection, wasClosed that the client had
// closed it there (OnChannelClose ran, so OnChannelOpen runs again). A
// name the client closed and opens again on the same connection starts
// afresh. s.mu is held.
func (s *Session) carryLocked(ch *transport.Channel, server bool) (cs *carried, reopened, wasClosed bool) {
	if server || !s.resumable {
		return nil, false, false
	}
	if cs = s.carried[ch.Name()]; cs != nil && cs.closedOn == ch.Conn() {
		s.dropReopenedLocked(cs)
		cs = nil
	}
	if cs == nil {
		if s.carried == nil {
			s.carried = make(map[string]*carried)
		}
		cs = newCarried(ch.Name())
		cs.tc = ch
		s.carried[ch.Name()] = cs
		return cs, false, false
	}
	wasClosed = cs.closedOn != nil
	cs.tc, cs.closedOn, cs.serverEnded = ch, nil, false
	s.signalLocked()
	return cs, true, wasClosed
}

// Disconnect ends the session at once: it closes the current connection
// with code and reason, and a detached session ends with that as its
// cause. The session is not kept for a resume.
func (s *Session) Disconnect(code transport.ErrorCode, reason string) error {
	if c := s.disconnect(code, reason); c != nil {
		return c.CloseWithError(code, reason)
	}
	return nil
}

// disconnect marks the session as not to be resumed, ends it with code
// and reason if it is detached, and returns its connection, nil if it is
// detached.
func (s *Session) disconnect(code transport.ErrorCode, reason string) *transport.Conn {
	s.mu.Lock()
	s.disconnected = true
	c := s.conn
	s.mu.Unlock()
	s.srv.endDetached(s, &transport.ConnError{Code: code, Reason: reason})
	return c
}

// SendGoAway tells the client, with a GOAWAY on the current connection,
// that it should leave this connection: its graceful close afterwards
// detaches a resumable session instead of ending it, so that the client
// may resume it on a new connection (as after a GOAWAY sent directly
// with transport.Conn.SendGoAway; a client's own graceful close ends the
// session).
func (s *Session) SendGoAway(code transport.ErrorCode, reason string) error {
	c := s.Conn()
	if c == nil {
		return fmt.Errorf("session: detached, it has no connection to send GOAWAY on: %w", transport.ErrClosed)
	}
	return c.SendGoAway(code, reason)
}

// acceptChannels runs on the session's goroutine (Server.runSession): it
// takes the client's channels on c until c ends, the session's goroutine
// itself waiting for QUIC's streams (transport.Conn.ServeChannels), each
// channel added on the short-lived goroutine that read its header. After it
// returns no reader starts on c, and readers.Wait waits for c's readers.
func (s *Session) acceptChannels(c *transport.Conn) {
	_ = c.ServeChannels(s.acceptChannel)
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
}

// acceptChannel adds a channel the client opened, or resets it if its
// name is taken.
func (s *Session) acceptChannel(ch *transport.Channel) {
	if !s.addChannel(ch, false) {
		ch.Reset(transport.CodeDuplicateChannel)
	}
}

func (s *Session) leftChan() <-chan struct{}     { return s.left }
func (s *Session) finishedChan() <-chan struct{} { return s.finished }

// read is a channel's reader, owned by the session (started by addChannel,
// waited for by Server.runSession): it moves messages from the channel into the
// session's pending queue until the channel ends. cs is the channel's
// carried state, nil if it has none.
func (s *Session) read(ch *transport.Channel, server bool, cs *carried) {
	defer s.readers.Done()
	end := endedWithConn
	defer func() { s.readerEnded(ch, server, cs, end) }()
	ctx := ch.Conn().Context()
	var m transport.Message // reused: the handler gets its fields, not it
	room := false           // enqueue saw room for the next message: no need to wait for it
	for {
		if !room && !s.waitRoom(ctx) {
			return
		}
		room = false
		err := ch.ReceiveInto(ctx, &m)
		if errors.Is(err, transport.ErrGap) {
			s.skipGap(cs)
			continue
		}
		if err != nil {
			if end = endOf(ctx, ch, err); end == endedByClient {
				s.peerStopped(cs, ch)
			}
			_ = ch.Close()
			return
		}
		s.received.Add(1)
		s.srv.received.Add(1)
		var ok bool
		if ok, room = s.enqueue(Message{Channel: ch.Name(), Subject: m.Subject, Header: m.Header, Data: m.Data}, cs); !ok {
			return
		}
	}
}

// channelEnd is who ended a channel, as its reader saw it.
type channelEnd int

const (
	endedWithConn channelEnd = iota // the connection ended, or the reader stopped on its own
	endedByClient                   // the client reset it, or finished sending and stopped reading
	endedByServer                   // the server closed or reset it (its handler, or the transport for a protocol violation)
)

// endOf returns who ended ch, whose Receive failed with err. After io.EOF
// (the client finished sending) the server's side stays open for the
// handler until the client stops reading too (it closed the channel), the
// server closes or resets the channel itself, or the connection ends:
// endOf waits for that and asks the channel which it was.
func endOf(ctx context.Context, ch *transport.Channel, err error) channelEnd {
	if errors.Is(err, io.EOF) {
		if testHookClientFinished != nil {
			testHookClientFinished(ch)
		}
		select {
		case <-ch.Done():
			err = ch.Ended()
		case <-ctx.Done():
			return endedWithConn
		}
	}
	var ce *transport.ChannelError
	switch {
	case errors.As(err, &ce) && ce.Remote:
		return endedByClient
	case errors.As(err, &ce), errors.Is(err, transport.ErrClosed) && ch.Conn().Context().Err() == nil:
		return endedByServer
	}
	return endedWithConn
}

// testHookClientFinished, set only by tests, runs in a channel's reader
// once the client finished sending on it (io.EOF), before the reader
// waits for the channel's end: a test orders the server's and the
// client's ends of the channel with it.
var testHookClientFinished func(*transport.Channel)

// skipGap counts a gap notice a client sent on a channel whose carried
// state is cs (nil if none): it is numbered like a message for the resume
// state, and never given to the handler.
func (s *Session) skipGap(cs *carried) {
	s.gaps.Add(1)
	if cs != nil {
		s.mu.Lock()
		cs.received++
		s.mu.Unlock()
	}
}

// readerEnded takes ch out of the session as its reader ends. A carried
// channel whose connection ended stays, for the client to reopen (its end
// is the session's); one the client closed is dropped, with what it held
// counted as unacknowledged, unless the server had told the connection to
// go away (see carried.closedOn); end says who ended it (see
// carried.serverEnded). A channel the server opened
// is not carried to another connection: what the client did not
// acknowledge on it is counted as well.
func (s *Session) readerEnded(ch *transport.Channel, server bool, cs *carried, end channelEnd) {
	connEnded := ch.Conn().Context().Err() != nil
	if server && connEnded && s.resumable {
		s.loseUnacked(ch.Name(), len(ch.Unacked())+len(ch.Unsent()))
	}
	s.mu.Lock()
	mine := s.channels[ch.Name()] == ch
	if mine {
		delete(s.channels, ch.Name())
	}
	if server {
		s.serverOpen--
	}
	closed := mine
	if cs != nil && connEnded {
		closed = false
	} else if cs != nil && s.carried[cs.name] == cs {
		if ch.Conn().GoAwaySent() {
			cs.closedOn, cs.serverEnded = ch.Conn(), end == endedByServer // see carried.closedOn
		} else {
			s.dropCarriedLocked(cs)
		}
	}
	s.mu.Unlock()
	if f := s.srv.cfg.OnChannelClose; closed && f != nil {
		f(s, ch.Name())
	}
}

// loseUnacked counts n messages of channel that the client will not get.
func (s *Session) loseUnacked(channel string, n int) {
	s.mu.Lock()
	s.loseLocked(channel, n)
	s.mu.Unlock()
}

// loseLocked is loseUnacked with s.mu held.
func (s *Session) loseLocked(channel string, n int) {
	if n == 0 {
		return
	}
	if s.lost == nil {
		s.lost = make(map[string]int)
	}
	s.lost[channel] += n
}

// Reading a message is gated before the read, so that a stopped reader
// holds no message of its own: all it leaves to QUIC flow control. A reader
// that passed the gate completes the one message it then receives, which is
// why the bounds in the package doc add one message per receiving channel.

// waitRoom waits until the session may read another message: under
// OverflowBlock, until it is below its pending cap and byte budget (under
// OverflowDisconnect, below the hard limits of localFull); and until the
// server's budget lets it (see serverBudget). It returns false when the
// reader should stop.
func (s *Session) waitRoom(ctx context.Context) bool {
	for {
		s.mu.Lock()
		if s.shed {
			s.mu.Unlock()
			return false
		}
		room, full := s.roomLocked()
		held := s.pendingBytes
		if room {
			s.mu.Unlock()
			return true
		}
		s.spaceWanted = true
		space := s.space
		s.mu.Unlock()
		var freed <-chan struct{}
		stopWaiting := func() {}
		if !full {
			freed, stopWaiting = s.srv.budget.wait()
			if !s.srv.budget.stop(held) {
				stopWaiting()
				return true
			}
		}
		select {
		case <-space:
		case <-freed:
		case <-ctx.Done():
		}
		stopWaiting()
		if ctx.Err() != nil {
			return false
		}
	}
}

// roomLocked reports whether a reader may read another message now,
// without waiting (waitRoom's test), and whether the session's own limits
// stop it (localFull). s.mu is held.
func (s *Session) roomLocked() (room, full bool) {
	full = s.localFull()
	return !s.shed && !full && !s.srv.budget.stop(s.pendingBytes), full
}

// localFull reports whether the session's own limits stop its readers.
// s.mu is held.
func (s *Session) localFull() bool {
	capN, budget := s.srv.cfg.PendingCap, int64(s.srv.cfg.PendingBytes)
	if s.srv.cfg.Overflow == OverflowBlock {
		return s.pending >= capN || s.pendingBytes >= budget
	}
	a := s.allowance()
	return s.pendingBytes >= satAdd(budget, a) || int64(s.pending) >= satAdd(int64(capN), a/minMessageCharge)
}

// maxFrameHeader is the longest message frame header: type, flags and an
// eight-byte length.
const maxFrameHeader = 10

// minMessageCharge is the memory a pending message is taken to cost at
// least, in bytes, when the hard limit under OverflowDisconnect turns the
// byte allowance into a message count.
const minMessageCharge = 64

// allowance is what a conforming client may still send after SLOW_DOWN
// reached it (PROTOCOL.md, "Overload"): up to twice the connection receive
// window in flight, and per open channel the batch it was writing and the
// one buffered behind it, each at most its send buffer or one message. The
// client's send buffer counts up to transport.MaxAdvertisedSendBuffer (see
// transport.Conn.PeerLimits), and the sum saturates instead of overflowing.
// s.mu is held.
func (s *Session) allowance() int64 {
	return satAdd(s.allowFixed, satMul(int64(max(len(s.channels), 1)), s.allowPerChannel))
}

// satAdd returns a+b for a, b >= 0, or math.MaxInt64 if that overflows.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// satMul returns a×b for a, b >= 0, or math.MaxInt64 if that overflows.
func satMul(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

// enqueue adds m to the pending queue; it signals slow-down when the queue
// reaches its cap or byte budget, and under OverflowDisconnect sheds a
// client that sent more after SLOW_DOWN than the allowance. It returns false
// when the reader should stop, and room when the reader may read the next
// message without waitRoom (its test, made under the same lock: one lock
// per message instead of two).
func (s *Session) enqueue(m Message, cs *carried) (ok, room bool) {
	size := m.size()
	n := int64(size)
	s.mu.Lock()
	// A message Receive returned may have been acknowledged already: it is
	// queued and handled even when the session sheds its client, so that
	// nothing acknowledged is dropped.
	shedReason := s.shedLocked(size)
	stop := s.shed
	if cs != nil {
		cs.received++ // counted for the resume state, once it is the session's
	}
	s.queue.Push(m)
	s.queuePeak = max(s.queuePeak, s.queue.Len())
	s.srv.budget.take(n, s.pending == 0)
	s.pending++
	s.pendingBytes += n
	signal := !s.slowed && (s.pending >= s.srv.cfg.PendingCap || s.pendingBytes >= int64(s.srv.cfg.PendingBytes))
	if signal {
		s.slowed = true
		s.sinceSlow = 0
		s.backpressure.Store(true)
		s.events.Add(1)
		s.srv.backpressureEvents.Add(1)
	}
	start := !s.working
	s.working = true
	room, _ = s.roomLocked()
	room = room && !stop
	s.mu.Unlock()
	if shedReason != "" {
		s.srv.overloadDisconnects.Add(1)
		_ = s.Conn().CloseWithError(transport.CodeOverloaded, shedReason)
	}
	if signal && !stop {
		s.syncSignal()
	}
	if start {
		s.owned.Add(1)
		go s.work()
	}
	return !stop, room
}

// shedLocked counts a message of size bytes received after SLOW_DOWN under
// OverflowDisconnect, and returns the reason to close with when it takes
// the client past the allowance: the session then sheds it, once. s.mu is
// held.
func (s *Session) shedLocked(size int) string {
	if s.shed || !s.slowed || s.srv.cfg.Overflow != OverflowDisconnect {
		return ""
	}
	s.sinceSlow += int64(wire.MessageLen(size))
	a := s.allowance()
	if s.sinceSlow <= a {
		return ""
	}
	s.shed = true
	return fmt.Sprintf(
		"%d bytes of messages arrived after SLOW_DOWN, more than the %d a conforming sender may have under way (pending cap %d, pending bytes %d, overflow policy disconnect)",
		s.sinceSlow, a, s.srv.cfg.PendingCap, s.srv.cfg.PendingBytes)
}

// syncSignal tells the client the session's current state, SLOW_DOWN or
// RESUME. The decision is taken under s.mu and the frame written outside it;
// serialising the writes and sending the state as it is by then makes the
// last frame sent always match the state, whatever order the enqueue and
// the worker get here in.
func (s *Session) syncSignal() {
	s.sigMu.Lock()
	defer s.sigMu.Unlock()
	s.mu.Lock()
	slow := s.slowed
	s.mu.Unlock()
	c := s.Conn()
	switch {
	case c == nil: // detached: the resume tells the next connection
	case slow:
		_ = c.SlowDown()
	default:
		_ = c.Resume()
	}
}

// work is the session's worker, owned by the session (started by enqueue,
// waited for by Server.runSession): it hands pending messages to the handler, in order,
// one at a time. It runs while the queue is not empty and exits when it
// drains, so that idle sessions hold no worker goroutine. Messages received
// before the connection ended are still handled.
func (s *Session) work() {
	defer s.owned.Done()
	buf := workBatches.Get().(*[workBatch]Message)
	defer workBatches.Put(buf)
	for {
		batch := s.take(buf[:0])
		if len(batch) == 0 {
			return
		}
		for i := range batch {
			s.srv.handler.HandleMessage(s.srv.baseCtx, s, batch[i])
			n := int64(batch[i].size())
			batch[i] = Message{} // the handler is done with it
			// Each message leaves pending as its handler returns, not
			// with its batch: a handler that blocks on the next one
			// must not hold back the room, the RESUME and the counts
			// of those already handled.
			s.done(n)
		}
	}
}

// workBatch is the most pending messages the worker takes from the queue
// at once, and workBatchShare the share of the pending cap it takes at
// most, so that a small cap still frees room a message at a time.
const (
	workBatch      = 32
	workBatchShare = 8
)

// workBatches holds the workers' batch buffers: a worker runs while its
// session has pending messages, so an idle session holds none, and one
// that comes and goes with every burst allocates none. The worker clears
// each message once handled: a buffer in the pool holds no payload.
var workBatches = sync.Pool{New: func() any { return new([workBatch]Message) }}

// take appends to batch the next pending messages, oldest first: up to
// workBatch, and at most an eighth of the pending cap (at least one), so
// that one lock takes several messages; each still counts as pending
// until its handler returns (done). With nothing pending it marks the
// worker stopped and returns batch empty: the worker must exit.
func (s *Session) take(batch []Message) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queue.Len() == 0 {
		// Give back a buffer that a burst grew far beyond the cap.
		if keep := 4 * s.srv.cfg.PendingCap; s.queuePeak > keep {
			s.queue.Reset(keep)
		}
		s.queuePeak = 0
		s.working = false
		return batch
	}
	n := min(s.queue.Len(), workBatch, max(s.srv.cfg.PendingCap/workBatchShare, 1))
	for range n {
		batch = append(batch, s.queue.Pop())
	}
	return batch
}

// done takes a handled message of n bytes off the session's and the
// server's counts, wakes readers waiting for room, and signals RESUME
// below half the cap and half the byte budget. The message counts as
// handled from here, together with leaving pending, so that it is never
// counted in both.
func (s *Session) done(n int64) {
	s.handled.Add(1)
	s.srv.handled.Add(1)
	s.mu.Lock()
	s.pending--
	s.pendingBytes -= n
	s.srv.budget.release(n, s.pending == 0)
	resume := s.slowed && s.pending < s.srv.cfg.PendingCap/2 && s.pendingBytes < int64(s.srv.cfg.PendingBytes)/2
	if resume {
		s.slowed = false
		s.backpressure.Store(false)
	}
	if s.spaceWanted {
		s.spaceWanted = false
		close(s.space)
		s.space = make(chan struct{})
	}
	s.mu.Unlock()
	if resume {
		s.syncSignal()
	}
}

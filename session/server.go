package session

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quicmsg/quicmsg/transport"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("session: server closed")

// ErrNoSession is returned for a session ID the server does not hold.
var ErrNoSession = errors.New("session: no such session")

// Handler handles messages received from sessions. Calls for one session are
// made one at a time, in the order the messages arrived on each channel;
// different sessions are handled concurrently, each on the session's worker
// goroutine. ctx ends when Shutdown's context or Close's timeout runs out. A
// message may be handled after its session's connection has ended, but
// always before Config.OnSessionEnd runs for the session.
type Handler interface {
	HandleMessage(ctx context.Context, s *Session, m Message)
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, s *Session, m Message)

// HandleMessage calls f.
func (f HandlerFunc) HandleMessage(ctx context.Context, s *Session, m Message) { f(ctx, s, m) }

// Stats are a server's counters.
type Stats struct {
	ActiveSessions      int
	SessionsAccepted    uint64 // sessions started
	SessionsRefused     uint64 // connections closed at MaxSessions or during shutdown (with those the drained listener refused)
	Sessions0RTT        uint64 // sessions that resumed with accepted 0-RTT data, counted when they end
	MessagesReceived    uint64
	MessagesHandled     uint64
	BackpressureEvents  uint64 // times a session reached its pending cap
	OverloadDisconnects uint64 // sessions closed under OverflowDisconnect, once per session
	PendingBytes        int64  // payload bytes of all sessions' pending messages (Config.ServerPendingBytes)

	DetachedSessions int    // sessions detached now, waiting for their client to resume them
	DetachedBytes    int64  // payload bytes of unacknowledged messages the detached sessions hold (Config.MaxDetachedBytes)
	SessionsDetached uint64 // times a session was detached
	SessionsResumed  uint64 // times a client resumed its session
	SessionsExpired  uint64 // detached sessions that ended because their client did not resume them within Config.ResumeWindow
	DetachedEvicted  uint64 // detached sessions ended early to stay within Config.MaxDetachedSessions or MaxDetachedBytes
	ResumesRefused   ResumeRefusals
}

// ResumeRefusals counts resume attempts the server refused, by reason (the
// error the client's Dial returns). Attempts whose token did not
// authenticate (transport.ErrResumeTokenInvalid) are refused by the
// listener before the server sees them.
type ResumeRefusals struct {
	Expired  uint64 // transport.ErrResumeExpired: no such session (ended, never existed, or the server is shutting down)
	Replayed uint64 // transport.ErrResumeTokenReplayed: an older token of the session
	Attached uint64 // transport.ErrSessionAttached: the session has a live connection, or a resume is under way
	Claim    uint64 // transport.ErrResumeClaim: the client's resume state did not fit what the server sent; the session ended
}

// Server serves sessions on a [transport.Listener]: it tracks every session
// while its connection lives, removes it as soon as the connection's context
// ends, whatever ended it, and passes received messages to a [Handler] under
// an app-level pending cap on top of QUIC flow control.
//
// Its goroutines form one tree. Serve runs on the caller's goroutine and
// starts one goroutine per session; the server waits only for those. A
// session's goroutine owns the session's channel readers and its worker,
// waits for them, and ends the session (see [Config.OnSessionEnd]).
//
// Shutdown is the graceful close and Close is Shutdown bounded by
// Config.CloseTimeout; both are idempotent and return only once every
// session's goroutine has ended. A Shutdown with a context that is already
// done is the immediate close. All methods are safe for concurrent use.
type Server struct {
	// Immutable after NewServer, except cfg.MaxSessions, which mu guards
	// (SetMaxSessions).
	cfg     Config
	handler Handler
	budget  *serverBudget
	// baseCtx is the handlers' context; stop cancels it.
	baseCtx    context.Context
	baseCancel context.CancelFunc
	ready      chan struct{} // closed under mu by Serve once it accepts, or by stop
	// stopOnce runs stop's body for the first Shutdown call to get there;
	// later ones wait for it. refuseOnce does the same for stopAdmitting.
	stopOnce, refuseOnce sync.Once
	// goAways are the drain's GOAWAY writers, one per session (beginDrain);
	// Shutdown waits for them once it has closed what was left.
	goAways sync.WaitGroup
	// acceptCtx is Serve's accept loop's; stopAdmitting cancels it.
	acceptCtx    context.Context
	acceptCancel context.CancelFunc

	// mu guards the fields below. It is never held while user code runs or
	// while waiting.
	mu    sync.Mutex
	phase phase               // advanced by Shutdown and stop, and only forward
	ln    *transport.Listener // set once by Serve; closed by stop
	// accepting is closed by Serve, made with ln, once its accept loop
	// has returned: it admits no connection after that.
	accepting chan struct{}
	// sessions is the table of sessions whose connection lives: admit (on
	// Serve's goroutine) adds one, the session's own goroutine removes it
	// when the connection has ended.
	sessions map[transport.SessionID]*Session
	// running holds the sessions whose goroutine runs, the one thing the
	// server waits for: admit adds one, the session's goroutine removes it
	// as it returns. It can hold a session that already left the table
	// while its handler finishes what was received.
	running map[*Session]struct{}
	// detached is the table of sessions whose connection was lost and that
	// wait for their client to resume them; see resume.go for who adds and
	// removes them. detachedBytes sums their Session.counted.
	detached      map[transport.SessionID]*Session
	detachedBytes int64
	// listened holds the listeners Listen made and Serve has not taken:
	// they call the server's OnResume. resumeLn says that Serve's listener
	// is one of them, so that its sessions may be resumed.
	listened map[*transport.Listener]struct{}
	resumeLn bool

	accepted, refused, zeroRTT, received, handled, backpressureEvents, overloadDisconnects atomic.Uint64
	detachedCount, resumedCount, expired, evicted                                          atomic.Uint64
	refusedExpired, refusedReplayed, refusedAttached, refusedClaim                         atomic.Uint64
}

// phase is where a Server stands in its life; it only moves forward.
type phase int

const (
	phaseServing  phase = iota // sessions are admitted
	phaseDraining              // Shutdown began: new sessions are admitted and told GOAWAY
	phaseRefusing              // the first sessions left: the drained listener refuses new connections (stopAdmitting)
	phaseStopped               // stop ran: handlers' context cancelled, listener closed
)

// NewServer returns a server that passes messages to h. cfg may be nil.
func NewServer(cfg *Config, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("session: NewServer needs a Handler")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: c, handler: h, budget: newServerBudget(c.ServerPendingBytes),
		ready: make(chan struct{}), sessions: make(map[transport.SessionID]*Session), running: make(map[*Session]struct{}),
		detached: make(map[transport.SessionID]*Session), listened: make(map[*transport.Listener]struct{})}
	s.baseCtx, s.baseCancel = context.WithCancel(context.Background())
	s.acceptCtx, s.acceptCancel = context.WithCancel(s.baseCtx)
	return s, nil
}

// Listen listens on addr with Config.Transport, its pending limits set from
// Config.PendingCap and Config.PendingBytes, so that the listener advertises
// in HELLO what the server enforces, its OnResume set to the server's
// decision and its ResumeKey from Config.ResumeKey, so that the sessions
// Serve runs on it can be resumed. Pass the listener to Serve.
func (s *Server) Listen(addr string, tlsConf *tls.Config) (*transport.Listener, error) {
	tc := s.cfg.Transport
	if s.cfg.ResumeWindow > 0 {
		tc.OnResume = s.decideResume
	}
	if s.cfg.ResumeKey != nil {
		tc.ResumeKey = s.cfg.ResumeKey
	}
	ln, err := transport.Listen(addr, tlsConf, &tc)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.listened[ln] = struct{}{}
	s.mu.Unlock()
	return ln, nil
}

// ListenAndServe is Listen followed by Serve: it serves on addr until
// Shutdown or Close. With port 0, [Server.Ready] and [Server.Addr] tell
// when and where it listens.
func (s *Server) ListenAndServe(addr string, tlsConf *tls.Config) error {
	ln, err := s.Listen(addr, tlsConf)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve accepts sessions from ln until Shutdown or Close stops admitting
// them (once the sessions the drain began with have left; see Shutdown),
// or closes ln; it returns ErrServerClosed then, or the listener's error.
// Shutdown and Close wait for Serve's accepting to end, and Serve returns
// as soon as it has: before the sessions that arrived during the drain
// have left and before the handler has drained them. As with net/http,
// a program must not exit when Serve returns ErrServerClosed: it waits
// for Shutdown (or Close) to return.
//
// Serve refuses, with a [*ListenerLimitsError] and leaving ln open, a
// listener whose HELLO advertises other pending limits than the server
// enforces; [Server.Listen] makes one that fits. Sessions on a listener
// that Listen did not make end with their connection, as without
// acknowledgements: such a listener does not ask the server about
// resumes (transport.Config.OnResume), so it refuses them all.
func (s *Server) Serve(ln *transport.Listener) error {
	if err := s.checkLimits(ln.Limits()); err != nil {
		return err
	}
	s.mu.Lock()
	if s.phase != phaseServing {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	if s.ln != nil {
		s.mu.Unlock()
		return errors.New("session: Serve called twice")
	}
	s.ln, s.accepting = ln, make(chan struct{})
	_, s.resumeLn = s.listened[ln]
	delete(s.listened, ln)
	s.markReady()
	accepting := s.accepting
	s.mu.Unlock()
	defer close(accepting)
	for {
		if s.acceptCtx.Err() != nil {
			// Shutdown stops admitting: what the listener still holds is
			// its (stopAdmitting), even when Accept would pick it first.
			return ErrServerClosed
		}
		c, err := ln.Accept(s.acceptCtx)
		if err != nil {
			if s.acceptCtx.Err() != nil || errors.Is(err, transport.ErrClosed) {
				return ErrServerClosed
			}
			return err
		}
		if testHookAccepted != nil {
			testHookAccepted(c)
		}
		s.admit(c)
	}
}

// testHookAccepted, set only by tests, runs on Serve's goroutine for each
// connection Accept returned, before admit: a test holds a connection
// there, answered but not yet a session.
var testHookAccepted func(*transport.Conn)

// checkLimits returns a [*ListenerLimitsError] if adv, what a listener
// advertises, is not what the server enforces.
func (s *Server) checkLimits(adv transport.Limits) error {
	switch {
	case adv.PendingCap != s.cfg.PendingCap:
		return &ListenerLimitsError{Limit: "PendingCap", Advertised: adv.PendingCap, Enforced: s.cfg.PendingCap}
	case adv.PendingBytes != s.cfg.PendingBytes:
		return &ListenerLimitsError{Limit: "PendingBytes", Advertised: adv.PendingBytes, Enforced: s.cfg.PendingBytes}
	}
	return nil
}

// markReady closes ready unless it is closed. s.mu is held.
func (s *Server) markReady() {
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
}

// Ready returns a channel that is closed once Serve (or ListenAndServe)
// accepts connections, from when Addr returns the listener's address, or
// once Shutdown or Close has stopped the server, whichever comes first. A
// ListenAndServe that cannot listen returns its error and leaves Ready
// open, so wait for both:
//
//	go func() { errc <- srv.ListenAndServe("127.0.0.1:0", tlsConf) }()
//	select {
//	case <-srv.Ready():
//	case err := <-errc:
//		return err
//	}
//	addr := srv.Addr()
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the address of the listener that Serve accepts on, or nil
// while the server serves on none (before Ready is closed, or when it was
// stopped without having served).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// admit makes c a session, or refuses it at Config.MaxSessions with
// CodeTooManySessions. A resumed connection goes to its session
// (admitResumed). It runs on Serve's goroutine, and, for what the drained
// listener hands over, on Shutdown's (stopAdmitting); never once Shutdown
// refuses connections: the listener refuses them itself then.
func (s *Server) admit(c *transport.Conn) {
	if c.Resumed() {
		s.admitResumed(c)
		return
	}
	s.mu.Lock()
	if limit := s.cfg.MaxSessions; len(s.sessions) >= limit {
		s.mu.Unlock()
		s.refused.Add(1)
		_ = c.CloseWithError(transport.CodeTooManySessions, fmt.Sprintf("server is at its limit of %d sessions", limit))
		return
	}
	sess := newSession(s, c, s.resumeLn && c.AcksEnabled() && s.cfg.ResumeWindow >= 0)
	s.sessions[c.SessionID()] = sess
	s.running[sess] = struct{}{}
	// A connection the listener accepted while Shutdown began is a session
	// like the others: told to go away, and drained, not cut off.
	late := s.phase == phaseDraining
	s.mu.Unlock()
	s.accepted.Add(1)
	go s.runSession(sess)
	if late {
		_ = c.SendGoAway(transport.CodeGoingAway, "server shutting down")
	}
}

// logInfo reports whether the logger takes the info lines of a session's
// start and end: their fields (the ID and address as strings, the cause)
// are made only then, as a server at a higher level sets up sessions
// faster without them.
func (s *Server) logInfo() bool {
	return s.cfg.Logger.Enabled(context.Background(), slog.LevelInfo)
}

// runSession is a session's goroutine, started by admit and waited for by
// Shutdown. It serves the session's connections (serveSession) and then
// ends the session (finish).
//
// Its frame is kept small, the start's log line and callback in a function
// of their own (started), because an idle session's goroutine waits below
// it: a goroutine that never goes deeper than about 1 KiB keeps the 2 KiB
// stack it started with, and the collector never shrinks a 4 KiB one
// whose waiting frames take more than a quarter of it.
func (s *Server) runSession(sess *Session) {
	s.started(sess)
	s.finish(sess, s.serveSession(sess))
}

// started logs the session's start and calls Config.OnSessionStart.
//
//go:noinline
func (s *Server) started(sess *Session) {
	if s.logInfo() {
		s.cfg.Logger.Info("session started", "session", sess.ID().String(), "remote", sess.RemoteAddr().String())
	}
	if s.cfg.OnSessionStart != nil {
		s.cfg.OnSessionStart(sess)
	}
}

// serveSession accepts the session's channels until its connection ends;
// a resumable session is then detached, and resumed on the connection its
// client comes back with, for as long as it does. It returns why the
// session ended.
func (s *Server) serveSession(sess *Session) error {
	c := sess.Conn()
	var lost error // the resume state exchange on c failed
	for {
		cause := lost
		if cause == nil {
			sess.acceptChannels(c)
			// The connection's context may end a moment after its streams do.
			<-c.Context().Done()
			cause = context.Cause(c.Context())
		}
		if !s.leaveLive(sess, c, cause, lost != nil) {
			return cause
		}
		if err := s.detach(sess, cause); err != nil {
			return err
		}
		next, err := s.awaitResume(sess, cause)
		if err != nil {
			return err
		}
		c = next
		lost = sess.exchange(c)
		if errors.Is(lost, transport.ErrResumeClaim) {
			return lost
		}
		if lost == nil {
			s.resumed(sess)
		}
	}
}

// finish ends the session, on its goroutine: it leaves the tables, its
// context ends, the goroutines it owns are waited for, so that the last
// message read has been handled, and only then OnSessionEnd runs, with a
// cause that reports what the client never acknowledged.
func (s *Server) finish(sess *Session, cause error) {
	s.mu.Lock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
	}
	s.mu.Unlock()
	sess.end(cause)
	close(sess.left)
	sess.readers.Wait()
	channels := sess.carriedNames()
	sess.owned.Wait()
	// The connection has ended: this only waits for its goroutines, so
	// that the server's wait for sessions covers them too. A detached
	// session has let its connection go already.
	if c := sess.Conn(); c != nil {
		_ = c.CloseWithError(transport.CodeNoError, "")
	}
	if sess.resumable {
		sess.foldAll()
		if m := sess.unacked(); len(m) > 0 {
			cause = &UnackedError{Messages: m, Err: cause}
		}
	}
	if sess.Used0RTT() {
		s.zeroRTT.Add(1)
	}
	if s.logInfo() {
		s.cfg.Logger.Info("session ended", "session", sess.ID().String(), "remote", sess.RemoteAddr().String(),
			"duration", time.Since(sess.start), "messages", sess.received.Load(), "cause", causeString(cause))
	}
	if f := s.cfg.OnChannelClose; f != nil {
		for _, name := range channels {
			f(sess, name)
		}
	}
	if s.cfg.OnSessionEnd != nil {
		s.cfg.OnSessionEnd(sess, cause)
	}
	s.mu.Lock()
	delete(s.running, sess)
	s.mu.Unlock()
	close(sess.finished)
}

func causeString(err error) string {
	var ce *transport.ConnError
	if errors.As(err, &ce) && ce.Code == transport.CodeNoError {
		return "closed"
	}
	if err == nil {
		return "unknown"
	}
	return err.Error()
}

// ActiveSessions returns how many sessions the server holds with a live
// connection (detached sessions are counted in Stats.DetachedSessions).
func (s *Server) ActiveSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Sessions returns a snapshot of the server's sessions that have a live
// connection.
func (s *Server) Sessions() []*Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.sessions))
}

// Session returns the session with the given ID, live or detached.
func (s *Server) Session(id transport.SessionID) (*Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		sess, ok = s.detached[id]
	}
	return sess, ok
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	detached, detachedBytes, ln := len(s.detached), s.detachedBytes, s.ln
	s.mu.Unlock()
	refused := s.refused.Load()
	if ln != nil {
		refused += ln.Stats().RefusedDraining // refused by the drained listener, see stopAdmitting
	}
	return Stats{
		DetachedSessions: detached,
		DetachedBytes:    detachedBytes,
		SessionsDetached: s.detachedCount.Load(),
		SessionsResumed:  s.resumedCount.Load(),
		SessionsExpired:  s.expired.Load(),
		DetachedEvicted:  s.evicted.Load(),
		ResumesRefused: ResumeRefusals{
			Expired: s.refusedExpired.Load(), Replayed: s.refusedReplayed.Load(),
			Attached: s.refusedAttached.Load(), Claim: s.refusedClaim.Load(),
		},
		ActiveSessions:      s.ActiveSessions(),
		SessionsAccepted:    s.accepted.Load(),
		SessionsRefused:     refused,
		Sessions0RTT:        s.zeroRTT.Load(),
		MessagesReceived:    s.received.Load(),
		MessagesHandled:     s.handled.Load(),
		BackpressureEvents:  s.backpressureEvents.Load(),
		OverloadDisconnects: s.overloadDisconnects.Load(),
		PendingBytes:        s.budget.used.Load(),
	}
}

// Send sends msg on channel of the session with the given ID, as
// [Session.Send] does: the session must have the channel open.
func (s *Server) Send(ctx context.Context, id transport.SessionID, channel string, msg []byte) error {
	sess, ok := s.Session(id)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoSession, id)
	}
	return sess.Send(ctx, channel, msg)
}

// Disconnect closes the session with the given ID with code and reason,
// live or detached; it is not kept for a resume.
func (s *Server) Disconnect(id transport.SessionID, code transport.ErrorCode, reason string) error {
	sess, ok := s.Session(id)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoSession, id)
	}
	return sess.Disconnect(code, reason)
}

// Shutdown shuts the server down gracefully: it sends GOAWAY
// (CodeGoingAway) to every session, and to every connection accepted while
// the sessions leave, and waits until the sessions it began with have gone,
// or until ctx ends; then it refuses new connections (CodeGoingAway, before
// the listener answers their HELLO, so that the client's Dial fails; see
// transport.Listener.Drain), admits and tells to go away those the
// listener had answered (a client whose Dial returned gets GOAWAY, with
// the exceptions in the package documentation),
// waits for the sessions that arrived meanwhile to leave too and for the handler
// to drain what was received (or for ctx), and closes what is left and the
// listener. Clients that keep reconnecting therefore cannot hold the drain
// open. Every message a session read is handled, even when ctx cuts the
// drain short (then with the handler's context cancelled).
//
// Shutdown returns once every session's goroutine has ended, Config
// .OnSessionEnd included; its error is ctx's if sessions had to be closed.
// It may be called more than once and concurrently: each call waits, with
// its own ctx, and the first ctx to end closes what is left. A ctx that is
// already done closes the server at once.
func (s *Server) Shutdown(ctx context.Context) error {
	err := waitClosed(ctx, s.beginDrain(), (*Session).leftChan)
	s.refuseOnce.Do(func() { s.stopAdmitting(ctx) })
	// No session starts after stopAdmitting, so running holds every
	// session there will be.
	s.mu.Lock()
	s.phase = max(s.phase, phaseRefusing)
	running := slices.Collect(maps.Keys(s.running))
	s.mu.Unlock()
	if err == nil {
		err = waitClosed(ctx, running, (*Session).finishedChan)
	}
	s.stop()
	s.goAways.Wait() // a GOAWAY stuck behind its peer's flow control ends with the connection
	_ = waitClosed(context.Background(), running, (*Session).finishedChan)
	return err
}

// beginDrain starts the drain, if no Shutdown has, with GOAWAY to every
// session, and returns the sessions the server holds.
func (s *Server) beginDrain() []*Session {
	s.mu.Lock()
	first := s.phase == phaseServing
	if first {
		s.phase = phaseDraining
	}
	sessions := slices.Collect(maps.Values(s.sessions))
	s.endAllDetachedLocked()
	s.mu.Unlock()
	if first {
		// One goroutine per session: a peer that does not read its
		// control stream blocks its GOAWAY until its connection is
		// closed, and must not hold up the others' GOAWAY nor
		// Shutdown, which waits for these after closing what is left.
		for _, sess := range sessions {
			if c := sess.Conn(); c != nil {
				s.goAways.Go(func() { _ = c.SendGoAway(transport.CodeGoingAway, "server shutting down") })
			}
		}
	}
	return sessions
}

// stopAdmitting ends the admission of new sessions, once the sessions the
// drain began with have left: from now on the listener refuses new
// connections at once, before answering their HELLO (so that they learn
// it rather than wait in its queue, and a client's Dial fails instead of
// returning a connection nobody serves); Serve stops accepting; and the
// connections the listener answered before, which Serve has not admitted,
// are admitted here, told to go away and drained like the other late
// ones. Every client whose Dial returned gets GOAWAY (but see the
// exceptions in the package documentation), unless ctx, the Shutdown's,
// has ended: then there is no drain to admit them to, and
// they are closed with CodeGoingAway, counted as refused, without
// becoming sessions.
func (s *Server) stopAdmitting(ctx context.Context) {
	s.acceptCancel()
	if testHookRefusing != nil {
		testHookRefusing()
	}
	s.mu.Lock()
	ln, accepting := s.ln, s.accepting
	s.mu.Unlock()
	if ln == nil {
		return // Serve never accepted; one that starts now returns at once
	}
	<-accepting
	for _, c := range ln.Drain() {
		if ctx.Err() != nil {
			s.refused.Add(1)
			_ = c.CloseWithError(transport.CodeGoingAway, "server shutting down")
			continue
		}
		s.admit(c)
	}
}

// testHookRefusing, set only by tests, runs in Shutdown as it begins to
// stop admitting sessions, once Serve's accepting is cancelled.
var testHookRefusing func()

// waitClosed waits until the channel that ch picks of each of sessions is
// closed, or ctx ends.
func waitClosed(ctx context.Context, sessions []*Session, ch func(*Session) <-chan struct{}) error {
	for _, sess := range sessions {
		select {
		case <-ch(sess):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// stop closes, once, what the drain left: it cancels the handlers' context,
// closes the remaining sessions with CodeGoingAway and the listener.
// Concurrent calls wait for the first.
func (s *Server) stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.phase = phaseStopped
		s.markReady()
		ln := s.ln
		left := slices.Collect(maps.Values(s.sessions))
		s.endAllDetachedLocked()
		s.mu.Unlock()
		s.baseCancel()
		var wg sync.WaitGroup
		for _, sess := range left {
			if c := sess.Conn(); c != nil {
				wg.Go(func() { _ = c.CloseWithError(transport.CodeGoingAway, "server closed") })
			}
		}
		wg.Wait()
		if ln != nil {
			_ = ln.Close()
		}
	})
}

// Close is Shutdown bounded by Config.CloseTimeout, so that a deferred
// Close neither hangs nor drops what was received: sessions get GOAWAY and
// that long to leave, then the rest are closed with CodeGoingAway. It
// returns once the server's goroutines have ended, with an error matching
// context.DeadlineExceeded if sessions had to be closed. Close is
// idempotent.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CloseTimeout)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		return fmt.Errorf("session: sessions still open after Config.CloseTimeout (%v) were closed: %w", s.cfg.CloseTimeout, err)
	}
	return nil
}

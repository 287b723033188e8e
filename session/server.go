package session

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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
// different sessions are handled concurrently. ctx ends when the server is
// closed; a message may be handled after its session has ended.
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
	SessionsRefused     uint64 // connections closed at MaxSessions or during shutdown
	Sessions0RTT        uint64 // sessions that resumed with accepted 0-RTT data, counted when they end
	MessagesReceived    uint64
	MessagesHandled     uint64
	BackpressureEvents  uint64 // times a session reached its pending cap
	OverloadDisconnects uint64 // sessions closed under OverflowDisconnect, once per session
	PendingBytes        int64  // payload bytes of all sessions' pending messages (Config.ServerPendingBytes)
}

// Server serves sessions on a [transport.Listener]: it tracks every session
// while its connection lives, removes it as soon as the connection's context
// ends, whatever ended it, and passes received messages to a [Handler] under
// an app-level pending cap on top of QUIC flow control.
// All methods are safe for concurrent use.
type Server struct {
	cfg     Config
	handler Handler
	budget  *serverBudget

	baseCtx    context.Context
	baseCancel context.CancelFunc

	mu           sync.Mutex
	sessions     map[transport.SessionID]*Session
	ln           *transport.Listener
	serveCancel  context.CancelFunc
	shuttingDown bool
	refusing     bool // the drain is over: new connections are refused
	closed       bool
	draining     map[*Session]struct{} // during shutdown: the sessions it began with that are still there
	drained      chan struct{}         // closed when draining becomes empty

	sessionsWG sync.WaitGroup // session goroutines
	workers    sync.WaitGroup // handler workers
	serveWG    sync.WaitGroup

	accepted, refused, zeroRTT, received, handled, backpressureEvents, overloadDisconnects atomic.Uint64
}

// NewServer returns a server that passes messages to h. cfg may be nil.
func NewServer(cfg *Config, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("session: NewServer needs a Handler")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: c, handler: h, budget: newServerBudget(c.ServerPendingBytes), sessions: make(map[transport.SessionID]*Session)}
	s.baseCtx, s.baseCancel = context.WithCancel(context.Background())
	return s, nil
}

// ListenAndServe listens on addr with Config.Transport and serves until
// Shutdown or Close.
func (s *Server) ListenAndServe(addr string, tlsConf *tls.Config) error {
	ln, err := transport.Listen(addr, tlsConf, &s.cfg.Transport)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve accepts sessions from ln until Shutdown or Close, which also close
// ln. It returns ErrServerClosed then, or the listener's error.
func (s *Server) Serve(ln *transport.Listener) error {
	ctx, cancel := context.WithCancel(s.baseCtx)
	defer cancel()
	s.mu.Lock()
	if s.closed || s.shuttingDown {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	if s.ln != nil {
		s.mu.Unlock()
		return errors.New("session: Serve called twice")
	}
	s.ln, s.serveCancel = ln, cancel
	s.serveWG.Add(1)
	s.mu.Unlock()
	defer s.serveWG.Done()
	for {
		c, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, transport.ErrClosed) {
				return ErrServerClosed
			}
			return err
		}
		s.admit(c)
	}
}

func (s *Server) admit(c *transport.Conn) {
	s.mu.Lock()
	switch {
	case s.closed || s.refusing:
		s.mu.Unlock()
		s.refused.Add(1)
		_ = c.CloseWithError(transport.CodeGoingAway, "server is shutting down")
		return
	case len(s.sessions) >= s.cfg.MaxSessions:
		s.mu.Unlock()
		s.refused.Add(1)
		_ = c.CloseWithError(transport.CodeTooManySessions, fmt.Sprintf("server is at its limit of %d sessions", s.cfg.MaxSessions))
		return
	}
	sess := newSession(s, c)
	s.sessions[c.SessionID()] = sess
	s.sessionsWG.Add(1)
	// A connection the listener accepted while Shutdown began is a session
	// like the others: told to go away, and drained, not cut off.
	late := s.shuttingDown
	s.mu.Unlock()
	s.accepted.Add(1)
	go s.runSession(sess)
	if late {
		_ = c.SendGoAway(transport.CodeGoingAway, "server shutting down")
	}
}

func (s *Server) runSession(sess *Session) {
	defer s.sessionsWG.Done()
	s.cfg.Logger.Info("session started", "session", sess.ID().String(), "remote", sess.RemoteAddr().String())
	if s.cfg.OnSessionStart != nil {
		s.cfg.OnSessionStart(sess)
	}
	sess.run()
	// The connection's context may end a moment after its streams do.
	<-sess.Context().Done()
	cause := context.Cause(sess.Context())
	s.mu.Lock()
	delete(s.sessions, sess.ID())
	delete(s.draining, sess)
	if s.drained != nil && len(s.draining) == 0 {
		close(s.drained)
		s.drained = nil
	}
	s.mu.Unlock()
	if sess.Used0RTT() {
		s.zeroRTT.Add(1)
	}
	st := sess.Stats()
	s.cfg.Logger.Info("session ended", "session", sess.ID().String(), "remote", sess.RemoteAddr().String(),
		"duration", time.Since(sess.start), "messages", st.MessagesReceived, "cause", causeString(cause))
	if s.cfg.OnSessionEnd != nil {
		s.cfg.OnSessionEnd(sess, cause)
	}
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

// ActiveSessions returns how many sessions the server holds.
func (s *Server) ActiveSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Sessions returns a snapshot of the server's sessions.
func (s *Server) Sessions() []*Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		out = append(out, sess)
	}
	return out
}

// Session returns the session with the given ID.
func (s *Server) Session(id transport.SessionID) (*Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	return sess, ok
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		ActiveSessions:      s.ActiveSessions(),
		SessionsAccepted:    s.accepted.Load(),
		SessionsRefused:     s.refused.Load(),
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

// Disconnect closes the session with the given ID with code and reason.
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
// or until ctx ends; then it refuses new connections (CodeGoingAway), waits
// for the sessions that arrived meanwhile to leave too and for the handler
// to drain what was received (or for ctx), and closes what is left and the
// listener. Clients that keep reconnecting therefore cannot hold the drain
// open. Every message a session read is handled, even when ctx cuts the
// drain short. Shutdown returns ctx's error if sessions had to be closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.shuttingDown || s.closed {
		s.mu.Unlock()
		return s.Close()
	}
	s.shuttingDown = true
	var drained chan struct{}
	if len(s.sessions) > 0 {
		drained = make(chan struct{})
		s.drained = drained
		s.draining = make(map[*Session]struct{}, len(s.sessions))
	}
	sessions := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
		s.draining[sess] = struct{}{}
	}
	s.mu.Unlock()

	for _, sess := range sessions {
		_ = sess.conn.SendGoAway(transport.CodeGoingAway, "server shutting down")
	}
	var err error
	if drained != nil {
		select {
		case <-drained:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	// Refuse new connections from now on, at once, so that they learn
	// it rather than wait in the listener's queue: once admit refuses, no
	// session can start, so the waits below never race with a session's
	// start.
	s.mu.Lock()
	s.refusing = true
	s.mu.Unlock()
	workersDone := make(chan struct{})
	go func() {
		s.sessionsWG.Wait()
		s.workers.Wait()
		close(workersDone)
	}()
	if err == nil {
		select {
		case <-workersDone:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	cerr := s.Close()
	<-workersDone
	if err != nil {
		return err
	}
	return cerr
}

// Close closes every session with CodeGoingAway and the listener at once,
// and waits for the server's goroutines. Messages still pending are handled
// with a cancelled context. Close is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.serveWG.Wait()
		return nil
	}
	s.closed = true
	ln, cancel := s.ln, s.serveCancel
	sessions := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()

	if cancel != nil {
		cancel()
	}
	s.serveWG.Wait()
	var wg sync.WaitGroup
	for _, sess := range sessions {
		wg.Go(func() { _ = sess.conn.CloseWithError(transport.CodeGoingAway, "server closed") })
	}
	wg.Wait()
	if ln != nil {
		_ = ln.Close()
	}
	s.sessionsWG.Wait()
	s.baseCancel()
	s.workers.Wait()
	return nil
}

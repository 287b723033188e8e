package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quicmsg/quicmsg/transport"
)

// The detached table (Server.detached) is the server's, under Server.mu.
// A session enters it from its own goroutine (leaveLive) when its
// connection was lost and leaves it exactly once, under Server.mu, in one
// of four ways: admitResumed hands it the resumed connection (on
// Session.resumed), its own goroutine ends it when its resume window
// passes (awaitResume, whose timer the goroutine owns), or evictLocked
// ends it to make room, for Disconnect, or at Shutdown (on Session.kick).
// A detached session keeps its goroutine, parked in awaitResume, and its
// worker while the handler finishes what was received.

// mayResume reports whether the end of connection c, with cause, lets the
// client come back to the session: anything but the server's own close
// (Disconnect, CloseWithError, OVERLOADED, Shutdown) and a close the
// client made with NO_ERROR, graceful or not, unless the server had told it
// to leave with SendGoAway; and but a refused resume state (RESUME_CLAIM),
// the client's of the server's counts or the other way round.
func (s *Session) mayResume(c *transport.Conn, cause error) bool {
	s.mu.Lock()
	disconnected, goAway := s.disconnected, c.GoAwaySent()
	s.mu.Unlock()
	if disconnected {
		return false
	}
	var ce *transport.ConnError
	switch {
	case errors.Is(cause, transport.CodeResumeClaim):
		return false // a side found the other's resume state impossible
	case !errors.As(cause, &ce):
		return true // idle timeout, stateless reset, transport error: the network
	case ce.Code != transport.CodeNoError:
		return ce.Remote // the client failed, or the server closed it
	case ce.Remote:
		return goAway
	}
	// The server sends the final close of a graceful close the client began.
	ga, ok := c.PeerGoAway()
	return ok && ga.Code == transport.CodeNoError && goAway
}

// leaveLive takes the session out of the live table once connection c
// ended, and into the detached table if it may be resumed (lost says that
// c failed during the resume state exchange). At Config.MaxDetachedSessions
// the oldest detached session ends to make room. It reports whether the
// session was detached.
func (s *Server) leaveLive(sess *Session, c *transport.Conn, cause error, lost bool) bool {
	keep := sess.resumable && !sess.wasDisconnected() && (lost || sess.mayResume(c, cause))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
	}
	if !keep || s.phase != phaseServing {
		return false
	}
	for len(s.detached) >= s.cfg.MaxDetachedSessions {
		s.evicted.Add(1)
		s.evictLocked(s.oldestLocked(false), &DetachedLimitError{Limit: "MaxDetachedSessions", Value: s.cfg.MaxDetachedSessions})
	}
	sess.folding, sess.detachedAt, sess.resumingUntil = true, time.Now(), time.Time{}
	if sess.resumed == nil { // made at the first detachment: a live session holds neither
		sess.resumed, sess.kick = make(chan *transport.Conn, 1), make(chan struct{}, 1)
	}
	s.detached[sess.id] = sess
	return true
}

// detach completes a session's detachment on its goroutine: it waits for
// the lost connection's readers and re-senders, takes back what its
// channels did not deliver, counts it against Config.MaxDetachedBytes and
// runs OnSessionDetached. An error is why the session ended meanwhile.
func (s *Server) detach(sess *Session, cause error) error {
	sess.readers.Wait()
	_ = sess.Conn().CloseWithError(transport.CodeNoError, "") // waits for its goroutines
	sess.foldAll()
	if err := s.settleDetached(sess); err != nil {
		return err
	}
	s.detachedCount.Add(1)
	s.cfg.Logger.Info("session detached", "session", sess.ID().String(), "remote", sess.RemoteAddr().String(),
		"resume_window", s.cfg.ResumeWindow, "cause", causeString(cause))
	if f := s.cfg.OnSessionDetached; f != nil {
		f(sess, cause)
	}
	sess.letGo()
	return nil
}

// settleDetached makes a folded detached session resumable and counts its
// bytes; over Config.MaxDetachedBytes the oldest detached sessions end,
// this one first if it alone holds more.
func (s *Server) settleDetached(sess *Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detached[sess.id] != sess {
		return sess.kickCause // ended while its channels were taken back
	}
	sess.folding = false
	sess.mu.Lock()
	held := sess.heldBytes
	sess.mu.Unlock()
	if limit := int64(s.cfg.MaxDetachedBytes); held > limit {
		s.evicted.Add(1)
		s.evictLocked(sess, &DetachedLimitError{Limit: "MaxDetachedBytes", Value: s.cfg.MaxDetachedBytes})
		return sess.kickCause
	}
	s.countDetachedLocked(sess, held)
	if s.detached[sess.id] != sess {
		return sess.kickCause
	}
	return nil
}

// countDetachedLocked adds n bytes held by sess to the detached sessions'
// bytes, if sess is detached, and ends the oldest detached sessions while
// they hold more than Config.MaxDetachedBytes. Server.mu is held.
func (s *Server) countDetachedLocked(sess *Session, n int64) {
	if s.detached[sess.id] != sess || sess.folding {
		return
	}
	sess.counted += n
	s.detachedBytes += n
	for s.detachedBytes > int64(s.cfg.MaxDetachedBytes) {
		s.evicted.Add(1)
		s.evictLocked(s.oldestLocked(true), &DetachedLimitError{Limit: "MaxDetachedBytes", Value: s.cfg.MaxDetachedBytes})
	}
}

// oldestLocked returns the session detached longest, among those holding
// bytes if holding. A linear scan: it runs only at a limit. Server.mu is
// held.
func (s *Server) oldestLocked(holding bool) *Session {
	var oldest *Session
	for _, d := range s.detached {
		if (!holding || d.counted > 0) && (oldest == nil || d.detachedAt.Before(oldest.detachedAt)) {
			oldest = d
		}
	}
	return oldest
}

// evictLocked takes sess out of the detached table and tells its
// goroutine to end it with cause. Server.mu is held.
func (s *Server) evictLocked(sess *Session, cause error) {
	delete(s.detached, sess.id)
	s.detachedBytes -= sess.counted
	sess.counted = 0
	sess.kickCause = cause
	select {
	case sess.kick <- struct{}{}:
	default:
	}
}

// endAllDetachedLocked ends every detached session: the server is
// shutting down. Server.mu is held.
func (s *Server) endAllDetachedLocked() {
	for _, sess := range s.detached {
		s.evictLocked(sess, fmt.Errorf("%w while the session was detached", ErrServerClosed))
	}
}

// endDetached ends sess with cause if it is detached, and reports whether
// it was.
func (s *Server) endDetached(sess *Session, cause error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detached[sess.id] != sess {
		return false
	}
	s.evictLocked(sess, cause)
	return true
}

// awaitResume waits, on the session's goroutine, for the client to resume
// the detached session within Config.ResumeWindow, and returns its new
// connection, or why the session ended.
func (s *Server) awaitResume(sess *Session, cause error) (*transport.Conn, error) {
	t := time.NewTimer(s.cfg.ResumeWindow)
	defer t.Stop()
	select {
	case c := <-sess.resumed:
		return c, nil
	case <-sess.kick:
		return nil, s.kickCauseOf(sess)
	case <-t.C:
	}
	s.mu.Lock()
	if s.detached[sess.id] == sess {
		s.expired.Add(1)
		s.evictLocked(sess, fmt.Errorf("%w (%v), after its connection ended: %w", ErrResumeWindowExpired, s.cfg.ResumeWindow, cause))
	}
	s.mu.Unlock()
	// Whoever took the session out of the table has sent on one of them.
	select {
	case c := <-sess.resumed:
		return c, nil
	case <-sess.kick:
		return nil, s.kickCauseOf(sess)
	}
}

func (s *Server) kickCauseOf(sess *Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sess.kickCause
}

// resumeTimeout bounds a resume that OnResume accepted until its
// connection comes out of Accept, and the resume state exchange.
func (s *Server) resumeTimeout() time.Duration {
	return cmp.Or(s.cfg.Transport.HandshakeTimeout, transport.DefaultHandshakeTimeout)
}

// decideResume is the listener's Config.OnResume (see Server.Listen): it
// runs on the listener's goroutines and does not block.
func (s *Server) decideResume(req transport.ResumeRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, detached := s.detached[req.ID]
	if !detached {
		sess = s.sessions[req.ID]
	}
	switch {
	case sess == nil || s.phase != phaseServing:
		s.refusedExpired.Add(1)
		return transport.ErrResumeExpired
	case req.Generation != sess.gen && req.Generation != sess.issued:
		s.refusedReplayed.Add(1)
		return transport.ErrResumeTokenReplayed
	case !detached || sess.folding || time.Now().Before(sess.resumingUntil):
		s.refusedAttached.Add(1)
		return transport.ErrSessionAttached
	}
	sess.resumingUntil = time.Now().Add(s.resumeTimeout())
	return nil
}

// admitResumed gives a resumed connection to its detached session, on
// Serve's goroutine, or closes it with the refusal's code if the session
// ended or was resumed since OnResume accepted it.
func (s *Server) admitResumed(c *transport.Conn) {
	s.mu.Lock()
	sess := s.detached[c.SessionID()]
	var refusal error
	switch {
	case sess == nil && s.sessions[c.SessionID()] != nil:
		refusal = transport.ErrSessionAttached
	case sess == nil || s.phase != phaseServing:
		refusal = transport.ErrResumeExpired
	case sess.folding || (c.ResumeGeneration() != sess.gen+1 && c.ResumeGeneration() != sess.issued+1):
		refusal = transport.ErrSessionAttached
	default:
		delete(s.detached, sess.id)
		s.detachedBytes -= sess.counted
		sess.counted, sess.issued, sess.resumingUntil = 0, c.ResumeGeneration(), time.Time{}
		s.sessions[sess.id] = sess
		sess.attach(c)
		sess.resumed <- c
	}
	s.mu.Unlock()
	if refusal != nil {
		s.refuseResume(c, refusal)
	}
}

// refuseResume closes c with the code of refusal and counts it.
func (s *Server) refuseResume(c *transport.Conn, refusal error) {
	code, n := transport.CodeResumeExpired, &s.refusedExpired
	if errors.Is(refusal, transport.ErrSessionAttached) {
		code, n = transport.CodeSessionAttached, &s.refusedAttached
	}
	n.Add(1)
	_ = c.CloseWithError(code, refusal.Error())
}

// attach makes c the session's connection; Server.mu is held.
func (s *Session) attach(c *transport.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn, s.ended, s.peerMax, s.headers = c, false, c.PeerLimits().MaxMessageSize, c.HeadersEnabled()
}

// exchange runs the resume state exchange on c, on the session's
// goroutine: the session says what it received on each channel, the
// client says what it did, and the session checks the client's claims
// against what it sent and keeps what the client lacks for re-sending. A
// claim that does not fit is refused (CodeResumeClaim) and its error,
// matching transport.ErrResumeClaim, ends the session; any other error
// means c failed, and the session stays detached.
func (s *Session) exchange(c *transport.Conn) error {
	if err := c.SendResumeState(s.receivedCounts()); err != nil {
		return s.exchangeFailed(c, err)
	}
	ctx, cancel := context.WithTimeout(c.Context(), s.srv.resumeTimeout())
	claims, err := c.PeerResumeState(ctx)
	cancel()
	if err != nil {
		return s.exchangeFailed(c, err)
	}
	if err := s.checkClaims(claims); err != nil {
		var re *transport.ResumeError
		if errors.As(err, &re) {
			_ = c.RejectResume(re.Detail)
		}
		s.srv.refusedClaim.Add(1)
		return err
	}
	s.applyClaims(claims)
	s.mu.Lock()
	slowed := s.slowed
	s.mu.Unlock()
	if slowed {
		s.syncSignal() // the new connection's client has not been told
	}
	return nil
}

// wasDisconnected reports whether Disconnect ended the session.
func (s *Session) wasDisconnected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.disconnected
}

// exchangeFailed closes c, whose resume state exchange failed with err.
// No channel is taken on c any more (acceptChannels never ran on it), so
// that nothing adds a reader while detach waits for them.
func (s *Session) exchangeFailed(c *transport.Conn, err error) error {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	_ = c.CloseWithError(transport.CodeProtocolError, fmt.Sprintf("resume state exchange failed: %v", err))
	return fmt.Errorf("session: resume state exchange failed: %w", err)
}

// resumed counts and reports a resume whose exchange succeeded.
func (s *Server) resumed(sess *Session) {
	s.mu.Lock()
	sess.gen = sess.issued // the client answered the HELLO that issued it
	s.mu.Unlock()
	s.resumedCount.Add(1)
	s.cfg.Logger.Info("session resumed", "session", sess.ID().String(), "remote", sess.RemoteAddr().String())
	if f := s.cfg.OnSessionResumed; f != nil {
		f(sess)
	}
}

// end marks the session ended: its context ends with cause, and sends
// fail from now on.
func (s *Session) end(cause error) {
	s.cancel(cause)
	s.mu.Lock()
	s.over = true
	s.signalLocked()
	s.mu.Unlock()
}

// carriedNames returns the names of the session's carried channels whose
// close OnChannelClose has not reported yet.
func (s *Session) carriedNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.carried))
	for name, cs := range s.carried {
		if cs.closedOn == nil { // OnChannelClose ran as the client closed it
			names = append(names, name)
		}
	}
	return names
}

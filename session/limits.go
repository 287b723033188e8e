package session

import "fmt"

// SetMaxSessions changes [Config.MaxSessions] on a running server, as a
// configuration reload does: 0 means DefaultMaxSessions, a negative n is
// refused. Lowering it below the sessions held ends none of them: new
// sessions are refused with TOO_MANY_SESSIONS until fewer remain. It is
// safe for concurrent use.
func (s *Server) SetMaxSessions(n int) error {
	if n < 0 {
		return fmt.Errorf("session: SetMaxSessions(%d): must not be negative", n)
	}
	if n == 0 {
		n = DefaultMaxSessions
	}
	s.mu.Lock()
	s.cfg.MaxSessions = n
	s.mu.Unlock()
	return nil
}

// MaxSessions returns the cap on sessions in force (Config.MaxSessions, or
// what SetMaxSessions set). It is safe for concurrent use.
func (s *Server) MaxSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.MaxSessions
}

package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// resumeClient is a client that resumes its session by hand, with
// transport.Dial and Config.Resume and the resume state exchange, as
// client.Client does: it counts what it received per channel over the
// session, and tells the server on resume.
type resumeClient struct {
	t        testing.TB
	addr     string
	cfg      transport.Config
	conn     *transport.Conn
	tok      transport.ResumeToken // the latest token the server issued
	received map[string]uint64
}

// dialResumable dials addr with cfg (nil: defaults) and keeps the token the
// server issued.
func dialResumable(t testing.TB, addr string, cfg *transport.Config) *resumeClient {
	t.Helper()
	rc := &resumeClient{t: t, addr: addr, received: make(map[string]uint64)}
	if cfg != nil {
		rc.cfg = *cfg
	}
	rc.conn = dial(t, addr, &rc.cfg)
	tok, ok := rc.conn.ResumeToken()
	require.True(t, ok, "the server issued no resume token: acknowledgements are off")
	rc.tok = tok
	return rc
}

// receive returns the next message of ch and counts it.
func (rc *resumeClient) receive(ctx context.Context, ch *transport.Channel) string {
	rc.t.Helper()
	b, err := ch.Receive(ctx)
	require.NoError(rc.t, err)
	rc.received[ch.Name()]++
	return string(b)
}

// kill ends the connection abruptly, as a client that crashed would: the
// server sees an error code, not a close it should end the session for.
func (rc *resumeClient) kill() {
	_ = rc.conn.CloseWithError(transport.CodeInternalError, "test: connection lost")
}

// resume dials again with the latest token and claims, in its resume
// state, claims (nil: what it received); it returns the server's claims.
func (rc *resumeClient) resume(ctx context.Context, claims map[string]uint64) (map[string]uint64, error) {
	return rc.resumeWith(ctx, rc.tok, claims)
}

// resumeWith is resume with a given token.
func (rc *resumeClient) resumeWith(ctx context.Context, tok transport.ResumeToken, claims map[string]uint64) (map[string]uint64, error) {
	cfg := rc.cfg
	cfg.Resume = &tok
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := transport.Dial(dctx, rc.addr, testTLS(rc.t).client, &cfg)
	if err != nil {
		return nil, err
	}
	rc.t.Cleanup(func() { _ = c.CloseWithError(transport.CodeNoError, "") })
	if !c.Resumed() {
		return nil, errors.New("the connection did not resume")
	}
	if claims == nil {
		claims = rc.received
	}
	if err := c.SendResumeState(claims); err != nil {
		return nil, err
	}
	state, err := c.PeerResumeState(dctx)
	if err != nil {
		return nil, err
	}
	rc.conn = c
	if tok, ok := c.ResumeToken(); ok {
		rc.tok = tok
	}
	return state, nil
}

// hookLog records the session hooks, in order, and lets a test wait for
// each.
type hookLog struct {
	mu     sync.Mutex
	events []string
	ends   []error
	waitCh chan struct{}
}

func (h *hookLog) add(e string) {
	h.mu.Lock()
	h.events = append(h.events, e)
	if h.waitCh != nil {
		close(h.waitCh)
		h.waitCh = nil
	}
	h.mu.Unlock()
}

// config sets the hooks in cfg.
func (h *hookLog) config(cfg *Config) *Config {
	cfg.OnSessionDetached = func(s *Session, cause error) { h.add("detached") }
	cfg.OnSessionResumed = func(s *Session) { h.add("resumed") }
	cfg.OnSessionEnd = func(s *Session, cause error) {
		h.mu.Lock()
		h.ends = append(h.ends, cause)
		h.mu.Unlock()
		h.add("end")
	}
	return cfg
}

// count returns how many times event e was recorded.
func (h *hookLog) count(e string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.countLocked(e)
}

// wait waits until event e was recorded n times.
func (h *hookLog) wait(t testing.TB, e string, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		h.mu.Lock()
		if h.countLocked(e) >= n {
			h.mu.Unlock()
			return
		}
		if h.waitCh == nil {
			h.waitCh = make(chan struct{})
		}
		ch := h.waitCh
		h.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no %d×%q within 30 s; events: %v", n, e, h.snapshot())
		}
	}
}

func (h *hookLog) countLocked(e string) int {
	n := 0
	for _, x := range h.events {
		if x == e {
			n++
		}
	}
	return n
}

func (h *hookLog) snapshot() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.events...)
}

// lastEnd returns the cause of the last OnSessionEnd.
func (h *hookLog) lastEnd() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ends[len(h.ends)-1]
}

// sessionRecorder is a handler that records the sessions it saw messages
// from, and the messages.
type sessionRecorder struct {
	mu       sync.Mutex
	sessions map[*Session]int
	msgs     []string
}

func (r *sessionRecorder) HandleMessage(_ context.Context, s *Session, m Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sessions == nil {
		r.sessions = make(map[*Session]int)
	}
	r.sessions[s]++
	r.msgs = append(r.msgs, m.Channel+":"+string(m.Data))
}

func (r *sessionRecorder) only(t testing.TB) *Session {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, r.sessions, 1, "the handler saw one session")
	for s := range r.sessions {
		return s
	}
	return nil
}

// byID returns the session with id the handler saw.
func (r *sessionRecorder) byID(id transport.SessionID) (*Session, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := range r.sessions {
		if s.ID() == id {
			return s, true
		}
	}
	return nil, false
}

func (r *sessionRecorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// waitSeen waits until the handler has seen n messages.
func (r *sessionRecorder) waitSeen(t testing.TB, n int) {
	t.Helper()
	// Real sockets, so the wall clock: the messages cross QUIC (see helpers_test.go).
	require.Eventually(t, func() bool { return len(r.seen()) >= n }, 20*time.Second, time.Millisecond)
}

// numbered returns "prefix-i" for i in [from, to).
func numbered(prefix string, from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, fmt.Sprintf("%s-%d", prefix, i))
	}
	return s
}

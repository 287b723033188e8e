package client

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// resumeServer is a small server that resumes sessions, on a
// transport.Listener, the way the design asks of session.Server, so that
// the client's side can be tested against a server whose behaviour the
// test controls: per session and channel name it counts what it received
// and keeps what it wrote until acknowledged; on a resumed connection it
// exchanges the resume state and sends again what the client did not
// receive, before anything new. It echoes every message received on a
// channel whose name begins with "echo", and records, per channel name,
// the sequence numbers ("seq:N") it received, in order, over all sessions.
//
// Goroutines: the accept loop, one per connection (serve) and one reader
// per channel, all in wg; close stops them through the listener and waits.
type resumeServer struct {
	t   testing.TB
	ln  *transport.Listener
	ctx context.Context
	end context.CancelFunc
	wg  sync.WaitGroup

	mu         sync.Mutex
	sessions   map[transport.SessionID]*rsession
	got        map[string][]int
	claimExtra uint64 // added to every count this server states: a claim of messages never sent
}

// rsession is one session of a resumeServer; its fields are guarded by
// resumeServer.mu, its channels' by their own mu.
type rsession struct {
	gen      uint64
	attached bool // a connection has it, or is resuming it
	conn     *transport.Conn
	chans    map[string]*rchan
}

type rchan struct {
	name string

	mu       sync.Mutex
	tch      *transport.Channel // nil while detached
	recvd    uint64             // messages received over the session
	base     uint64             // messages sent before held (before tch's first while attached)
	held     []transport.UnsentMessage
	nUnacked int // how many of held were written and not acknowledged
}

// startResumeServer serves on addr ("127.0.0.1:0" for an ephemeral port)
// with key, until cleanup.
func startResumeServer(t testing.TB, addr string, key transport.ResumeKey) *resumeServer {
	t.Helper()
	s := &resumeServer{t: t, sessions: make(map[transport.SessionID]*rsession), got: make(map[string][]int)}
	serverTLS, _ := testTLS(t)
	ln, err := transport.Listen(addr, serverTLS, &transport.Config{ResumeKey: &key, OnResume: s.onResume})
	require.NoError(t, err)
	s.ln = ln
	s.ctx, s.end = context.WithCancel(context.Background())
	s.wg.Go(s.accept)
	t.Cleanup(s.close)
	return s
}

func (s *resumeServer) addr() string { return s.ln.Addr().String() }

// close closes the listener and its connections and waits for the
// server's goroutines. It is idempotent.
func (s *resumeServer) close() {
	s.end()
	_ = s.ln.Close()
	s.wg.Wait()
}

func (s *resumeServer) onResume(req transport.ResumeRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[req.ID]
	switch {
	case !ok:
		return transport.ErrResumeExpired
	case req.Generation != sess.gen:
		return transport.ErrResumeTokenReplayed
	case sess.attached:
		return transport.ErrSessionAttached
	}
	sess.attached = true
	return nil
}

// forget drops every detached session, as if their resume window had
// passed.
func (s *resumeServer) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sess := range s.sessions {
		if !sess.attached {
			delete(s.sessions, id)
		}
	}
}

// received returns the sequence numbers received on channel, in order.
func (s *resumeServer) received(channel string) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.got[channel]...)
}

// goAway sends GOAWAY on every attached connection.
func (s *resumeServer) goAway() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.sessions {
		if sess.conn != nil {
			_ = sess.conn.SendGoAway(transport.CodeGoingAway, "move along")
		}
	}
}

func (s *resumeServer) accept() {
	for {
		conn, err := s.ln.Accept(s.ctx)
		if err != nil {
			return
		}
		s.wg.Go(func() { s.serve(conn) })
	}
}

// serve runs one connection of a session, new or resumed, and detaches
// the session when the connection ends.
func (s *resumeServer) serve(conn *transport.Conn) {
	defer func() { _ = conn.CloseWithError(transport.CodeNoError, "") }()
	s.mu.Lock()
	sess, ok := s.sessions[conn.SessionID()]
	if !conn.Resumed() || !ok {
		sess = &rsession{chans: make(map[string]*rchan)}
		s.sessions[conn.SessionID()] = sess
	}
	sess.attached, sess.conn, sess.gen = true, conn, conn.ResumeGeneration()
	s.mu.Unlock()
	if !conn.Resumed() || s.exchange(conn, sess) {
		var readers sync.WaitGroup
		for {
			tch, err := conn.AcceptChannel(s.ctx)
			if err != nil {
				break
			}
			rc := s.channel(sess, tch.Name())
			rc.attach(s.ctx, tch)
			readers.Go(func() { s.read(rc, tch) })
		}
		_ = conn.CloseWithError(transport.CodeNoError, "")
		readers.Wait()
	}
	s.mu.Lock()
	chans := make([]*rchan, 0, len(sess.chans))
	for _, rc := range sess.chans {
		chans = append(chans, rc)
	}
	s.mu.Unlock()
	for _, rc := range chans {
		rc.detach(conn)
	}
	s.mu.Lock()
	sess.attached, sess.conn = false, nil
	s.mu.Unlock()
}

func (s *resumeServer) channel(sess *rsession, name string) *rchan {
	s.mu.Lock()
	defer s.mu.Unlock()
	rc, ok := sess.chans[name]
	if !ok {
		rc = &rchan{name: name}
		sess.chans[name] = rc
	}
	return rc
}

// exchange is the server's half of the resume state exchange; it reports
// whether the session goes on.
func (s *resumeServer) exchange(conn *transport.Conn, sess *rsession) bool {
	s.mu.Lock()
	recv := make(map[string]uint64)
	chans := make([]*rchan, 0, len(sess.chans))
	for name, rc := range sess.chans {
		rc.mu.Lock()
		recv[name] = rc.recvd + s.claimExtra
		rc.mu.Unlock()
		chans = append(chans, rc)
	}
	s.mu.Unlock()
	if conn.SendResumeState(recv) != nil {
		return false
	}
	peer, err := conn.PeerResumeState(s.ctx)
	if err != nil {
		return false
	}
	for _, rc := range chans {
		if err := rc.checkClaim(peer[rc.name]); err != nil {
			_ = conn.RejectResume(err.Error())
			return false
		}
	}
	for _, rc := range chans {
		rc.mu.Lock()
		r := peer[rc.name]
		rc.held, rc.base, rc.nUnacked = rc.held[r-rc.base:], r, 0
		rc.mu.Unlock()
	}
	return true
}

func (rc *rchan) checkClaim(r uint64) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if r < rc.base || r-rc.base > uint64(rc.nUnacked) {
		return fmt.Errorf("channel %q: claim %d outside [%d, %d]", rc.name, r, rc.base, rc.base+uint64(rc.nUnacked))
	}
	return nil
}

// attach makes tch the channel's stream and sends what it holds first.
func (rc *rchan) attach(ctx context.Context, tch *transport.Channel) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.tch = tch
	held := rc.held
	rc.held = nil
	for i, m := range held {
		if tch.Send(ctx, m.Data) != nil {
			rc.held = held[i:]
			return
		}
	}
}

// detach keeps, once conn has ended, what the channel's stream on it did
// not deliver.
func (rc *rchan) detach(conn *transport.Conn) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.tch == nil || rc.tch.Conn() != conn {
		return
	}
	un := rc.tch.Unacked()
	held := append(append(un, rc.tch.Unsent()...), rc.held...)
	rc.base += rc.tch.Acked()
	rc.held, rc.nUnacked, rc.tch = held, len(un), nil
}

// read receives from tch until it ends, recording and echoing.
func (s *resumeServer) read(rc *rchan, tch *transport.Channel) {
	for {
		msg, err := tch.Receive(s.ctx)
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimPrefix(string(msg), "seq:"))
		if err != nil {
			n = -1
		}
		s.mu.Lock()
		s.got[rc.name] = append(s.got[rc.name], n)
		s.mu.Unlock()
		rc.mu.Lock()
		rc.recvd++
		if strings.HasPrefix(rc.name, "echo") {
			// A message the stream did not take waits for the session's
			// next connection.
			if rc.tch == nil || rc.tch.Send(s.ctx, msg) != nil {
				rc.held = append(rc.held, transport.UnsentMessage{Data: msg})
			}
		}
		rc.mu.Unlock()
	}
}

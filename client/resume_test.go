package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/udpproxy"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// resumingServer is a session.Server whose sessions can be resumed: its
// listener comes from Server.Listen. startResumingServer serves h on addr
// ("127.0.0.1:0" for an ephemeral port) until cleanup; close is idempotent.
type resumingServer struct {
	*session.Server
	addr   string
	served chan error
	once   sync.Once
}

func startResumingServer(t testing.TB, addr string, cfg *session.Config, h session.Handler) *resumingServer {
	t.Helper()
	srv, err := session.NewServer(cfg, h)
	require.NoError(t, err)
	serverTLS, _ := testTLS(t)
	ln, err := srv.Listen(addr, serverTLS)
	require.NoError(t, err)
	s := &resumingServer{Server: srv, addr: ln.Addr().String(), served: make(chan error, 1)}
	go func() { s.served <- srv.Serve(ln) }()
	t.Cleanup(func() { s.close(t) })
	return s
}

// close closes the server. A session whose client is partitioned away, or
// whose server-side connection has not noticed it is gone, cannot leave
// within the close timeout: Close then says so, which is not what these
// tests check.
func (s *resumingServer) close(t testing.TB) {
	s.once.Do(func() {
		if err := s.Close(); err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
		}
		require.ErrorIs(t, <-s.served, session.ErrServerClosed)
	})
}

// resumeRig is a Client behind a udpproxy in front of a resumingServer,
// with an "echo" channel: numbered messages go up, the server's handler
// records and echoes them down. The traffic goroutines are owned by the
// rig: start starts them, wait joins them.
type resumeRig struct {
	srv      *resumingServer
	rec      *recorder
	proxy    *udpproxy.Proxy
	c        *Client
	ch       *Channel
	log      *eventLog
	up, down *seqFlow
	flowRunner
}

// newResumeRig starts the rig; scfg configures the server (nil for the
// defaults), edit the client's config.
func newResumeRig(t *testing.T, n int, scfg *session.Config, edit func(*Config)) *resumeRig {
	t.Helper()
	r := &resumeRig{rec: newRecorder(), log: &eventLog{}, up: newSeqFlow("up", n), down: newSeqFlow("down", n)}
	if scfg == nil {
		scfg = &session.Config{}
	}
	scfg.CloseTimeout = cmp.Or(scfg.CloseTimeout, time.Second)
	r.srv = startResumingServer(t, "127.0.0.1:0", scfg, r.rec)
	proxy, err := udpproxy.New(r.srv.addr)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, proxy.Close()) })
	r.proxy = proxy
	cfg := fastConfig(t, r.log)
	if edit != nil {
		edit(cfg)
	}
	ctx := testCtx(t)
	r.c, err = Dial(ctx, proxy.Addr().String(), testClientTLS(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.c.Close() })
	r.ch, err = r.c.Channel(ctx, "echo")
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			r.log.mu.Lock()
			t.Logf("events: %+v\nstats: %+v\nfailed echoes: %v", r.log.events, r.c.Stats(), r.rec.echoErrors())
			r.log.mu.Unlock()
		}
	})
	return r
}

// start sends the up flow, one message every pace, and receives the
// echoes as the down flow.
func (r *resumeRig) start(ctx context.Context, pace time.Duration) {
	r.goSend(ctx, r.up, r.ch.Send, pace)
	r.goReceive(ctx, r.down, r.ch)
}

// startMidway starts the traffic and waits for a third of it.
func (r *resumeRig) startMidway(ctx context.Context, t *testing.T) {
	t.Helper()
	r.start(ctx, 2*time.Millisecond)
	r.down.waitArrived(t, r.down.n/3)
}

// requireResumedExactlyOnce checks that both flows arrived whole, each
// message once and in order, through resumes only.
func (r *resumeRig) requireResumedExactlyOnce(t *testing.T) {
	t.Helper()
	require.NoError(t, r.wait())
	r.down.waitArrived(t, r.down.n)
	require.Empty(t, r.rec.echoErrors(), "every echo accepted")
	requireSequence(t, r.rec.got("echo"), 0, r.up.n)
	st := r.c.Stats()
	require.Zero(t, st.MessagesInDoubt, "nothing in doubt")
	require.Zero(t, st.MessagesUnacked)
	require.Zero(t, st.MessagesFailed)
	require.Equal(t, st.Reconnects, st.Resumes, "every reconnect resumed the session")
	require.False(t, r.log.has(func(e Event) bool { return e.Type == EventResumeFailed }))
	require.False(t, r.log.has(func(e Event) bool { return e.Type == EventReconnected && !e.Resumed }))
}

// waitEvent waits for an event that match accepts and returns it.
func (l *eventLog) waitEvent(t *testing.T, match func(Event) bool) Event {
	t.Helper()
	var found Event
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, e := range l.events {
			if match(e) {
				found = e
				return true
			}
		}
		return false
	}, 30*time.Second, 5*time.Millisecond)
	return found
}

func TestResumeAfterPartitionLongerThanIdleTimeout(t *testing.T) {
	const n, pushed = 300, 50
	r := newResumeRig(t, n, nil, nil)
	ctx := testCtx(t)
	push, err := r.c.Channel(ctx, "push")
	require.NoError(t, err)
	require.NoError(t, push.Send(ctx, []byte("hello"))) // the server learns of "push"
	r.rec.waitFor(t, "push", 1)
	sess := r.srv.Sessions()[0]
	r.startMidway(ctx, t)
	r.proxy.SetBlackHole(true) // the idle timeout is 1 s
	waitStatus(t, r.c, StatusReconnecting)
	// The server's Send while the client is away waits for the resume.
	for i := range pushed {
		require.NoError(t, sess.Send(ctx, "push", seq(i)))
	}
	r.proxy.SetBlackHole(false)
	r.requireResumedExactlyOnce(t)
	pf := newSeqFlow("push", pushed)
	for range pushed {
		msg, err := push.Receive(ctx)
		require.NoError(t, err)
		pf.arrive(msg)
	}
	pf.waitArrived(t, pushed)
	require.GreaterOrEqual(t, r.c.Stats().Resumes, uint64(1))
	r.log.waitEvent(t, func(e Event) bool { return e.Type == EventReconnected && e.Resumed })
	ss := r.srv.Sessions()
	require.Len(t, ss, 1)
	require.Same(t, sess, ss[0], "the same session")
}

// A NAT rebinding mid-traffic: QUIC moves the connection to the new path;
// if it could not, the session would be resumed. Either way every message
// arrives once, in order, and nothing is in doubt.
func TestResumeAcrossNATRebinding(t *testing.T) {
	const n = 300
	r := newResumeRig(t, n, nil, nil)
	ctx := testCtx(t)
	r.startMidway(ctx, t)
	rebound, err := r.proxy.Rebind()
	require.NoError(t, err)
	require.Equal(t, 1, rebound)
	r.requireResumedExactlyOnce(t)
}

// A NAT rebinding during a partition longer than the idle timeout: the
// session resumes from the client's new address.
func TestResumeFromNewAddressAfterPartition(t *testing.T) {
	const n = 200
	r := newResumeRig(t, n, nil, nil)
	ctx := testCtx(t)
	r.startMidway(ctx, t)
	sess := r.srv.Sessions()[0]
	before := sess.RemoteAddr().String()
	r.proxy.SetBlackHole(true)
	waitStatus(t, r.c, StatusReconnecting)
	_, err := r.proxy.Rebind()
	require.NoError(t, err)
	r.proxy.SetBlackHole(false)
	r.requireResumedExactlyOnce(t)
	require.GreaterOrEqual(t, r.c.Stats().Resumes, uint64(1))
	require.NotEqual(t, before, sess.RemoteAddr().String(), "the session now has the client's new address")
}

// The server sends GOAWAY and keeps the session: the client closes its
// connection gracefully, comes back to the same server (it has no other)
// and resumes.
func TestResumeAfterGoAwayToSameServer(t *testing.T) {
	const n = 300
	r := newResumeRig(t, n, nil, nil)
	ctx := testCtx(t)
	r.startMidway(ctx, t)
	sess := r.srv.Sessions()[0]
	require.NoError(t, sess.SendGoAway(transport.CodeGoingAway, "move along"))
	r.requireResumedExactlyOnce(t)
	require.GreaterOrEqual(t, r.c.Stats().Resumes, uint64(1))
	r.log.waitEvent(t, func(e Event) bool { return e.Type == EventReconnected && e.Resumed })
	require.True(t, r.log.has(func(e Event) bool { return e.Type == EventDisconnected && errors.Is(e.Err, transport.CodeGoingAway) }))
}

// The client's connection ends without the server hearing of it: the
// server still has the session attached to it and refuses the resume with
// ErrSessionAttached until it notices (its idle timeout); the client
// retries with backoff and resumes.
func TestResumeRetriesWhileSessionAttached(t *testing.T) {
	const n = 200
	r := newResumeRig(t, n, nil, nil)
	ctx := testCtx(t)
	r.startMidway(ctx, t)
	r.proxy.SetDropRate(udpproxy.ToServer, 1)
	require.NoError(t, r.c.Conn().CloseWithError(transport.CodeNoError, "gone without a word"))
	// Long enough for the proxy to have dropped the close, short of the
	// server's idle timeout (1 s).
	time.Sleep(300 * time.Millisecond)
	r.proxy.SetDropRate(udpproxy.ToServer, 0)
	r.requireResumedExactlyOnce(t)
	require.GreaterOrEqual(t, r.srv.Stats().ResumesRefused.Attached, uint64(1), "refused while attached")
	require.GreaterOrEqual(t, r.c.Stats().Resumes, uint64(1))
}

// A channel closed while the client is away still counts in the resume
// state with what it received, so that the server finds the state
// possible and the session resumes.
func TestResumeAfterChannelClosedWhileDisconnected(t *testing.T) {
	r := newResumeRig(t, 0, nil, nil)
	ctx := testCtx(t)
	other, err := r.c.Channel(ctx, "echo-other")
	require.NoError(t, err)
	for i := range 5 {
		require.NoError(t, other.Send(ctx, seq(i)))
		_, err := other.Receive(ctx)
		require.NoError(t, err)
	}
	require.NoError(t, r.ch.Send(ctx, seq(0)))
	_, err = r.ch.Receive(ctx)
	require.NoError(t, err)
	sess := r.srv.Sessions()[0]
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool {
		tch, ok := sess.Channel("echo-other")
		return ok && tch.Acked() == 5
	}, 30*time.Second, 5*time.Millisecond, "the server has the acknowledgements of what the client received")
	r.proxy.SetBlackHole(true)
	waitStatus(t, r.c, StatusReconnecting)
	require.NoError(t, other.Close())
	require.NoError(t, r.ch.Send(ctx, seq(1)))
	r.proxy.SetBlackHole(false)
	msg, err := r.ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "seq:1", string(msg))
	require.Equal(t, uint64(1), r.c.Stats().Resumes)
	require.False(t, r.log.has(func(e Event) bool { return e.Type == EventResumeFailed }))
}

// acked returns how many of the messages sent on ch's current transport
// channel the server acknowledged.
func acked(ch *Channel) uint64 {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.cur == nil {
		return 0
	}
	return ch.cur.Acked()
}

// partitionWithUnacked sends 0..9 on channel name and waits for their
// acknowledgement, then partitions the client from the server and sends
// 10..19, which are written and never acknowledged, and, once the client
// has lost its connection, 20..29, which wait in the reconnect buffer.
func (r *resumeRig) partitionWithUnacked(ctx context.Context, t *testing.T, name string) *Channel {
	t.Helper()
	ch, err := r.c.Channel(ctx, name)
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, ch.Send(ctx, seq(i)))
	}
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return acked(ch) == 10 }, 30*time.Second, 5*time.Millisecond)
	r.proxy.SetBlackHole(true)
	for i := 10; i < 20; i++ {
		require.NoError(t, ch.Send(ctx, seq(i)), "written, never acknowledged")
	}
	waitStatus(t, r.c, StatusReconnecting)
	for i := 20; i < 30; i++ {
		require.NoError(t, ch.Send(ctx, seq(i)), "buffered")
	}
	return ch
}

// requireRefused checks that the resume was refused with want and reported
// exactly the messages the server never received (of 10..19 on name),
// that the rest went out on a new session, once, in order, and that the
// new session works.
func (r *resumeRig) requireRefused(ctx context.Context, t *testing.T, ch *Channel, want error) {
	t.Helper()
	e := r.log.waitEvent(t, func(e Event) bool { return e.Type == EventResumeFailed })
	var rfe *ResumeFailedError
	require.ErrorAs(t, e.Err, &rfe)
	require.ErrorIs(t, e.Err, want)
	var re *transport.ResumeError
	require.ErrorAs(t, e.Err, &re)
	var unacked []int
	for _, m := range rfe.Unacked[ch.name] {
		var i int
		_, err := fmt.Sscanf(string(m.Data), "seq:%d", &i)
		require.NoError(t, err)
		unacked = append(unacked, i)
	}
	require.Equal(t, len(unacked), rfe.Messages())
	require.NotEmpty(t, unacked, "messages 10.. were written during the partition")
	requireSequence(t, unacked, 10, 10+len(unacked))
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	got := r.rec.waitFor(t, ch.name, 30-len(unacked))
	requireSequence(t, got[:10], 0, 10)
	requireSequence(t, got[10:], 10+len(unacked), 30)
	st := r.c.Stats()
	require.Equal(t, uint64(len(unacked)), st.MessagesUnacked)
	require.Equal(t, st.MessagesUnacked, st.MessagesInDoubt, "in doubt are exactly those reported")
	require.Zero(t, st.Resumes)
	require.NoError(t, ch.Send(ctx, seq(30)), "the new session works")
	r.rec.waitFor(t, ch.name, 31-len(unacked))
}

func TestResumeRefusedAfterResumeWindowReportsUnacknowledged(t *testing.T) {
	ended := make(chan error, 1)
	r := newResumeRig(t, 0, &session.Config{
		ResumeWindow: 200 * time.Millisecond,
		OnSessionEnd: func(_ *session.Session, cause error) { ended <- cause },
	}, nil)
	ctx := testCtx(t)
	ch := r.partitionWithUnacked(ctx, t, "x")
	<-ended // the resume window passed
	r.proxy.SetBlackHole(false)
	r.requireRefused(ctx, t, ch, transport.ErrResumeExpired)
}

func TestResumeRefusedByRestartedServerWithAnotherKey(t *testing.T) {
	r := newResumeRig(t, 0, &session.Config{ResumeKey: &transport.ResumeKey{1}}, nil)
	ctx := testCtx(t)
	ch := r.partitionWithUnacked(ctx, t, "x")
	r.srv.close(t)
	startResumingServer(t, r.srv.addr, &session.Config{ResumeKey: &transport.ResumeKey{2}, CloseTimeout: time.Second}, r.rec)
	r.proxy.SetBlackHole(false)
	r.requireRefused(ctx, t, ch, transport.ErrResumeTokenInvalid)
}

// The client checks the server's resume state: a server that claims fewer
// messages received than it acknowledged is refused (here the client's
// count is raised instead), and the client starts a new session.
func TestResumeRefusesImpossibleClaim(t *testing.T) {
	r := newResumeRig(t, 0, nil, nil)
	ctx := testCtx(t)
	ch := r.partitionWithUnacked(ctx, t, "x")
	r.c.handoff.Lock()
	ch.base += 5
	r.c.handoff.Unlock()
	r.proxy.SetBlackHole(false)
	e := r.log.waitEvent(t, func(e Event) bool { return e.Type == EventResumeFailed })
	require.ErrorIs(t, e.Err, transport.ErrResumeClaim)
	require.ErrorIs(t, e.Err, transport.CodeResumeClaim)
	require.NoError(t, ch.Send(ctx, seq(30)))
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return slices.Contains(r.rec.got("x"), 30) }, 30*time.Second, 5*time.Millisecond)
	require.Zero(t, r.c.Stats().Resumes)
}

// With DisableResume a reconnect begins a new session, as before
// resumption existed: what was written to the lost connection is in doubt
// and not sent again.
func TestResumeDisabledLeavesWrittenMessagesInDoubt(t *testing.T) {
	r := newResumeRig(t, 0, nil, func(c *Config) { c.DisableResume = true })
	ctx := testCtx(t)
	r.partitionWithUnacked(ctx, t, "x")
	r.proxy.SetBlackHole(false)
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return slices.Contains(r.rec.got("x"), 29) }, 30*time.Second, 5*time.Millisecond)
	waitStatus(t, r.c, StatusConnected)
	st := r.c.Stats()
	got := r.rec.got("x")
	require.Positive(t, st.MessagesInDoubt)
	require.Equal(t, 30-int(st.MessagesInDoubt), len(got), "what was in doubt never arrived; the rest arrived once: %v", got)
	requireSequence(t, got[:10], 0, 10)
	requireSequence(t, got[10:], 10+int(st.MessagesInDoubt), 30)
	require.Zero(t, st.Resumes)
	require.Zero(t, st.MessagesUnacked)
	require.False(t, r.log.has(func(e Event) bool { return e.Type == EventResumeFailed || e.Resumed }))
}

// Closing the client ends the session: what a lost connection wrote
// without acknowledgement, held for a resume that will not come, is in
// doubt, and what waited in the reconnect buffer is undelivered.
func TestResumeHeldMessagesAreInDoubtWhenTheClientCloses(t *testing.T) {
	r := newResumeRig(t, 0, nil, nil)
	ctx := testCtx(t)
	r.partitionWithUnacked(ctx, t, "x")
	err := r.c.Close()
	var ue *UndeliveredError
	require.ErrorAs(t, err, &ue)
	st := r.c.Stats()
	require.Equal(t, 20, ue.Messages+int(st.MessagesInDoubt), "10..29: written or buffered")
	require.GreaterOrEqual(t, ue.Messages, 10, "20..29 were buffered")
	require.Positive(t, st.MessagesInDoubt)
	require.Equal(t, uint64(ue.Messages), st.MessagesFailed)
	require.Zero(t, st.MessagesUnacked)
}

// Messages the transport channel held, but Receive had not returned, when
// the connection died were not counted as received: the server sends them
// again on the resumed session, and each is returned once.
func TestResumeResendsMessagesNotYetReceived(t *testing.T) {
	r := newResumeRig(t, 0, nil, nil)
	ctx := testCtx(t)
	const n = 50
	for i := range n {
		require.NoError(t, r.ch.Send(ctx, seq(i)))
	}
	for i := range 10 {
		msg, err := r.ch.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, string(seq(i)), string(msg))
	}
	r.rec.waitFor(t, "echo", n)
	r.proxy.BlackHole(2500 * time.Millisecond) // the idle timeout is 1 s
	waitStatus(t, r.c, StatusReconnecting)
	require.Equal(t, uint64(10), r.ch.recvd.Load(), "only what Receive returned counts")
	for i := 10; i < n; i++ {
		msg, err := r.ch.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, string(seq(i)), string(msg))
	}
	require.GreaterOrEqual(t, r.c.Stats().Resumes, uint64(1))
	require.Zero(t, r.c.Stats().MessagesInDoubt)
}

// A message on a transport channel that is no longer the channel's rx is
// never returned, so never counted: receiveOn leaves it to the transport,
// and the server sends it again on the resumed session.
func TestResumeReceiveFromRetiredChannelIsNotCounted(t *testing.T) {
	r := newResumeRig(t, 0, nil, nil)
	ctx := testCtx(t)
	require.NoError(t, r.ch.Send(ctx, seq(0)))
	tch, err := r.ch.current(ctx)
	require.NoError(t, err)
	r.ch.setRx(nil) // as the reconnect loop does once tch's connection ended
	recv := func(t *transport.Channel) ([]byte, error) { return t.ReceiveBuf(ctx, nil) }
	msg, ok, err := receiveOn(r.ch, tch, recv)
	require.False(t, ok)
	require.NoError(t, err)
	require.Nil(t, msg)
	require.Zero(t, r.ch.recvd.Load())
	r.ch.setRx(tch)
	msg, ok, err = receiveOn(r.ch, tch, recv)
	require.True(t, ok)
	require.NoError(t, err)
	require.Equal(t, "seq:0", string(msg))
	require.Equal(t, uint64(1), r.ch.recvd.Load())
}

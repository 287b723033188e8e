//go:build soak

package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// The server restart: restartClients client.Clients with resMatrixChannels
// channels each exchange numbered messages with a session server, both
// ways; the server crashes (its socket and every connection dropped at
// once) and a new one starts on the same address, so that every client's
// resume is refused. Nothing may be lost without being reported: what a
// client's Send accepted is delivered, to one server or the other, or
// listed in its ResumeFailedError; what the old server's Send accepted is
// received by the client or counted in the session's UnackedError; on the
// new session everything arrives once, in order.
const (
	restartClients = 20
	restartPace    = 50 * time.Millisecond
	restartWarmup  = 2 * time.Second
	restartGap     = time.Second
	restartSettle  = 3 * time.Second
	restartWait    = 60 * time.Second
)

// restartKey is the resume key of the first server, and of the second in
// the case where the operator kept it.
var restartKey = transport.ResumeKey{0x5e, 0x55, 0x10}

// TestSoakResumeServerRestart restarts the server with the same resume
// key (the client's token is valid, its session unknown: ErrResumeExpired)
// and with another one (ErrResumeTokenInvalid).
func TestSoakResumeServerRestart(t *testing.T) {
	t.Run("sameKey", func(t *testing.T) { runServerRestart(t, restartKey, transport.ErrResumeExpired) })
	t.Run("otherKey", func(t *testing.T) {
		runServerRestart(t, transport.ResumeKey{0x07, 0x4e, 0x12}, transport.ErrResumeTokenInvalid)
	})
}

// restartServer is one incarnation of the server: what it received on
// each channel, in order, and its own numbered messages, each carrying
// the incarnation before the number.
type restartServer struct {
	inc     byte
	srv     *session.Server
	ln      *transport.Listener
	served  chan error
	started time.Time
	once    sync.Once
	stop    chan struct{}
	ctx     context.Context // the senders' sends; stopSenders cancels it
	cancel  context.CancelFunc
	senders sync.WaitGroup
	firstUp atomic.Int64 // Unix ns of the first message received

	mu                        sync.Mutex
	up                        map[string][]uint32 // client → server, by channel name
	down                      map[string]*resFlow // server → client, by channel name
	unacked                   map[string]int      // from the sessions' UnackedError
	ends                      map[string]int      // sessions ended, by why
	unackedSessions, sessions int                 // sessions ended, and those with an UnackedError
}

func startRestartServer(t *testing.T, addr string, key transport.ResumeKey, inc byte) *restartServer {
	r := &restartServer{inc: inc, served: make(chan error, 1), stop: make(chan struct{}),
		up: make(map[string][]uint32), down: make(map[string]*resFlow), unacked: make(map[string]int), ends: make(map[string]int)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	cfg := &session.Config{
		Transport:     transport.Config{IdleTimeout: 2 * time.Second, KeepAlivePeriod: 500 * time.Millisecond},
		ResumeKey:     &key,
		OnChannelOpen: r.channelOpen,
		OnSessionEnd:  r.sessionEnd,
		PendingCap:    100000,
		PendingBytes:  64 << 20,
		CloseTimeout:  2 * time.Second,
	}
	srv, err := session.NewServer(cfg, r)
	require.NoError(t, err)
	serverTLS, _ := testTLS(t)
	r.ln, err = srv.Listen(addr, serverTLS)
	require.NoError(t, err)
	r.srv, r.started = srv, time.Now()
	go func() { r.served <- srv.Serve(r.ln) }()
	t.Cleanup(func() { r.close(t) })
	return r
}

func (r *restartServer) HandleMessage(_ context.Context, _ *session.Session, m session.Message) {
	r.firstUp.CompareAndSwap(0, time.Now().UnixNano())
	r.mu.Lock()
	r.up[m.Channel] = append(r.up[m.Channel], binary.BigEndian.Uint32(m.Data))
	r.mu.Unlock()
}

// channelOpen starts this incarnation's sender on a channel the first
// time it sees it.
func (r *restartServer) channelOpen(s *session.Session, name string) {
	r.mu.Lock()
	if _, seen := r.down[name]; seen {
		r.mu.Unlock()
		return
	}
	f := &resFlow{pace: restartPace}
	r.down[name] = f
	r.mu.Unlock()
	r.senders.Go(func() {
		f.sendLoop(r.ctx, r.stop, func(ctx context.Context, msg []byte) error {
			return s.Send(ctx, name, append([]byte{r.inc}, msg...))
		})
	})
}

func (r *restartServer) sessionEnd(_ *session.Session, cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions++
	var ue *session.UnackedError
	if errors.As(cause, &ue) {
		r.unackedSessions++
		for name, n := range ue.Messages {
			r.unacked[name] += n
		}
	}
	var ce *transport.ConnError
	switch {
	case errors.As(cause, &ce):
		r.ends[fmt.Sprintf("%v remote=%v", ce.Code, ce.Remote)]++
	default:
		r.ends[fmt.Sprint(errors.Unwrap(cause))]++
	}
}

// stopSenders stops this incarnation's senders and waits for them; a send
// under way is cancelled (and does not count as accepted).
func (r *restartServer) stopSenders() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.cancel()
	r.senders.Wait()
}

// crash drops the server's socket and every connection at once, without
// GOAWAY, then closes the server, whose sessions end and report what their
// clients never acknowledged.
func (r *restartServer) crash(t *testing.T) {
	require.NoError(t, r.ln.Close())
	r.close(t)
}

// close closes the server, then stops its senders; it is idempotent.
func (r *restartServer) close(t *testing.T) {
	r.once.Do(func() {
		if err := r.srv.Close(); err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
		}
		require.ErrorIs(t, <-r.served, session.ErrServerClosed)
		r.stopSenders()
	})
}

// flows returns what this incarnation received on name, and how many
// messages it sent there.
func (r *restartServer) flows(name string) (up []uint32, down int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.down[name]; f != nil {
		down = f.accepted.Load()
	}
	return append([]uint32(nil), r.up[name]...), down
}

// restartRecv is what one client channel received from the server, by
// incarnation, in order.
type restartRecv struct {
	mu    sync.Mutex
	got   [3][]uint32 // index: incarnation (1 old, 2 new)
	first atomic.Int64
	bad   atomic.Int64 // messages with no valid incarnation
}

func (rr *restartRecv) arrive(msg []byte) {
	if len(msg) < 5 || msg[0] < 1 || msg[0] > 2 {
		rr.bad.Add(1)
		return
	}
	if msg[0] == 2 {
		rr.first.CompareAndSwap(0, time.Now().UnixNano())
	}
	rr.mu.Lock()
	rr.got[msg[0]] = append(rr.got[msg[0]], binary.BigEndian.Uint32(msg[1:]))
	rr.mu.Unlock()
}

func (rr *restartRecv) incarnation(inc byte) []uint32 {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return append([]uint32(nil), rr.got[inc]...)
}

// restartRun is one case: the clients, what each channel received, and
// both incarnations of the server.
type restartRun struct {
	clients  []*resClient
	recv     [][]*restartRecv
	old, cur *restartServer
	want     error
}

func runServerRestart(t *testing.T, newKey transport.ResumeKey, want error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := &restartRun{want: want}
	run.old = startRestartServer(t, "127.0.0.1:0", restartKey, 1)
	addr := run.old.ln.Addr().String()
	run.clients = dialResClients(ctx, t, addr, restartClients)
	rctx, stopReceivers := context.WithCancel(ctx)
	stop := make(chan struct{})
	var senders, receivers sync.WaitGroup
	run.startTraffic(ctx, rctx, t, stop, &senders, &receivers)
	time.Sleep(restartWarmup)

	run.old.crash(t)
	time.Sleep(restartGap)
	run.cur = startRestartServer(t, addr, newKey, 2)
	time.Sleep(restartSettle)

	close(stop)
	senders.Wait()
	run.cur.stopSenders()
	run.waitSettled(t)
	stopReceivers()
	receivers.Wait()
	run.report(t)
	for _, rc := range run.clients {
		require.NoError(t, rc.c.Close(), "nothing left undelivered")
	}
}

// startTraffic starts, per client channel, a sender of numbered messages
// and a receiver; the senders stop when stop closes, the receivers when
// rctx ends.
func (run *restartRun) startTraffic(ctx, rctx context.Context, t *testing.T, stop <-chan struct{}, senders, receivers *sync.WaitGroup) {
	for _, rc := range run.clients {
		var rcv []*restartRecv
		for j, name := range rc.names {
			ch, err := rc.c.Channel(ctx, name)
			require.NoError(t, err)
			up, down := rc.up[j], &restartRecv{}
			up.pace = restartPace
			rcv = append(rcv, down)
			senders.Go(func() { up.sendLoop(ctx, stop, ch.Send) })
			receivers.Go(func() {
				for {
					msg, err := ch.Receive(rctx)
					if err != nil {
						return
					}
					down.arrive(msg)
				}
			})
		}
		run.recv = append(run.recv, rcv)
	}
}

// refusals returns the client's ResumeFailedError events.
func refusals(rc *resClient) []*ResumeFailedError {
	rc.log.mu.Lock()
	defer rc.log.mu.Unlock()
	var out []*ResumeFailedError
	for _, e := range rc.log.events {
		if e.Type != EventResumeFailed {
			continue
		}
		var rfe *ResumeFailedError
		if !errors.As(e.Err, &rfe) {
			rfe = &ResumeFailedError{Err: e.Err}
		}
		out = append(out, rfe)
	}
	return out
}

// listed returns the numbers of the messages rfe lists for name.
func listed(rfes []*ResumeFailedError, name string) map[uint32]bool {
	out := make(map[uint32]bool)
	for _, rfe := range rfes {
		for _, m := range rfe.Unacked[name] {
			out[binary.BigEndian.Uint32(m.Data)] = true
		}
	}
	return out
}

// restartCount is one channel's figures, or their sum.
type restartCount struct {
	upAccepted, upOld, upNew, upListed, upListedDelivered, upLost, upDup, upDisorder, upResent int64
	oldAccepted, oldReceived, oldReported, oldShort, oldDup, oldBeyond                         int64
	newAccepted, newReceived, newWrong                                                         int64
	bad                                                                                        int64
}

func (c *restartCount) add(o restartCount) {
	c.upAccepted += o.upAccepted
	c.upOld += o.upOld
	c.upNew += o.upNew
	c.upListed += o.upListed
	c.upListedDelivered += o.upListedDelivered
	c.upLost += o.upLost
	c.upDup += o.upDup
	c.upDisorder += o.upDisorder
	c.upResent += o.upResent
	c.oldAccepted += o.oldAccepted
	c.oldReceived += o.oldReceived
	c.oldReported += o.oldReported
	c.oldShort += o.oldShort
	c.oldDup += o.oldDup
	c.oldBeyond += o.oldBeyond
	c.newAccepted += o.newAccepted
	c.newReceived += o.newReceived
	c.newWrong += o.newWrong
	c.bad += o.bad
}

// upCount checks one channel's client → server flow.
func (run *restartRun) upCount(c *restartCount, accepted int64, name string, list map[uint32]bool) {
	oldUp, _ := run.old.flows(name)
	newUp, _ := run.cur.flows(name)
	c.upAccepted, c.upOld, c.upNew, c.upListed = accepted, int64(len(oldUp)), int64(len(newUp)), int64(len(list))
	seen := make(map[uint32]bool)
	for _, got := range [][]uint32{oldUp, newUp} {
		for k, i := range got {
			if seen[i] {
				c.upDup++
			}
			seen[i] = true
			if k > 0 && i <= got[k-1] {
				c.upDisorder++
			}
		}
	}
	for _, i := range newUp {
		if list[i] {
			c.upResent++ // listed as not sent again, and sent
		}
	}
	for i := range uint32(accepted) {
		switch {
		case seen[i] && list[i]:
			c.upListedDelivered++
		case !seen[i] && !list[i]:
			c.upLost++
		}
	}
}

// downCount checks one channel's server → client flows, of both
// incarnations.
func (run *restartRun) downCount(c *restartCount, name string, rr *restartRecv) {
	_, oldAcc := run.old.flows(name)
	_, newAcc := run.cur.flows(name)
	run.old.mu.Lock()
	c.oldReported = int64(run.old.unacked[name])
	run.old.mu.Unlock()
	old := rr.incarnation(1)
	c.oldAccepted, c.oldReceived = oldAcc, int64(len(old))
	seen := make(map[uint32]bool)
	for _, i := range old {
		if seen[i] {
			c.oldDup++
		}
		seen[i] = true
		if int64(i) >= oldAcc {
			c.oldBeyond++
		}
	}
	if oldAcc > c.oldReceived+c.oldReported {
		c.oldShort = oldAcc - c.oldReceived - c.oldReported
	}
	cur := rr.incarnation(2)
	c.newAccepted, c.newReceived = newAcc, int64(len(cur))
	for k, i := range cur {
		if int64(i) != int64(k) {
			c.newWrong++
		}
	}
	c.newWrong += max(newAcc-c.newReceived, c.newReceived-newAcc)
	c.bad = rr.bad.Load()
}

// count returns the figures of every channel, summed, and per client.
func (run *restartRun) count() (sum restartCount, perClient []restartCount) {
	for k, rc := range run.clients {
		rfes := refusals(rc)
		var cc restartCount
		for j, name := range rc.names {
			var c restartCount
			run.upCount(&c, rc.up[j].accepted.Load(), name, listed(rfes, name))
			run.downCount(&c, name, run.recv[k][j])
			cc.add(c)
		}
		sum.add(cc)
		perClient = append(perClient, cc)
	}
	return sum, perClient
}

// settled reports whether every flow has come to rest: each client has
// had its refusal, what it sent is delivered or listed, and what the new
// server sent has arrived.
func (c restartCount) settled() bool {
	return c.upLost == 0 && c.newWrong == 0
}

func (run *restartRun) waitSettled(t *testing.T) {
	deadline := time.Now().Add(restartWait)
	for {
		sum, _ := run.count()
		refused := 0
		for _, rc := range run.clients {
			refused += min(len(refusals(rc)), 1)
		}
		if sum.settled() && refused == len(run.clients) {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("not settled after %v: %+v, %d clients refused", restartWait, sum, refused)
			return // report says what is missing
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (run *restartRun) report(t *testing.T) {
	sum, perClient := run.count()
	var st Stats
	var refused, wrongRefusal int
	for _, rc := range run.clients {
		cs := rc.c.Stats()
		st.MessagesUnacked += cs.MessagesUnacked
		st.MessagesInDoubt += cs.MessagesInDoubt
		st.MessagesFailed += cs.MessagesFailed
		st.Resumes += cs.Resumes
		st.Reconnects += cs.Reconnects
		for _, rfe := range refusals(rc) {
			refused++
			if !errors.Is(rfe, run.want) {
				wrongRefusal++
			}
		}
	}
	for _, f := range []struct {
		name  string
		value any
	}{
		{"up_accepted", sum.upAccepted}, {"up_delivered_old_server", sum.upOld}, {"up_delivered_new_server", sum.upNew},
		{"up_reported_unacked", sum.upListed}, {"up_reported_and_delivered", sum.upListedDelivered},
		{"up_lost_unreported", sum.upLost}, {"up_duplicates", sum.upDup},
		{"down_old_accepted", sum.oldAccepted}, {"down_old_received", sum.oldReceived},
		{"down_old_reported_unacked", sum.oldReported}, {"down_old_unaccounted", sum.oldShort},
		{"down_new_accepted", sum.newAccepted}, {"down_new_received", sum.newReceived},
		{"resume_refusals", refused}, {"client_unacked_stat", st.MessagesUnacked}, {"client_in_doubt_stat", st.MessagesInDoubt},
		{"old_sessions_ended", run.old.sessions}, {"old_sessions_with_unacked_error", run.old.unackedSessions},
		{"old_session_end_causes", run.old.ends},
	} {
		testenv.Figure(t, f.name, "%v", f.value)
	}
	if f := run.cur.firstUp.Load(); f != 0 {
		testenv.Figure(t, "new_server_start_to_first_up_ms", "%.1f", float64(f-run.cur.started.UnixNano())/1e6)
	}
	var firstDown int64
	for _, rcv := range run.recv {
		for _, rr := range rcv {
			if f := rr.first.Load(); f != 0 && (firstDown == 0 || f < firstDown) {
				firstDown = f
			}
		}
	}
	if firstDown != 0 {
		testenv.Figure(t, "new_server_start_to_first_down_ms", "%.1f", float64(firstDown-run.cur.started.UnixNano())/1e6)
	}
	run.check(t, sum, perClient, st, refused, wrongRefusal)
}

func (run *restartRun) check(t *testing.T, sum restartCount, perClient []restartCount, st Stats, refused, wrongRefusal int) {
	require.Zero(t, sum.bad, "messages without a valid incarnation")
	require.Zero(t, sum.upLost, "client → server: accepted, not delivered and not reported")
	require.Zero(t, sum.upDup, "client → server: delivered twice")
	require.Zero(t, sum.upDisorder, "client → server: out of order on one server")
	require.Zero(t, sum.upResent, "client → server: reported as not sent again, and sent")
	require.Zero(t, sum.oldShort, "server → client, old server: accepted, not received and not reported")
	require.Zero(t, sum.oldDup, "server → client, old server: received twice")
	require.Zero(t, sum.oldBeyond, "server → client, old server: received but never accepted")
	require.Equal(t, sum.newAccepted, sum.newReceived, "server → client, new server: every accepted message")
	require.Zero(t, sum.newWrong, "server → client, new server: once and in order")
	require.Equal(t, len(run.clients), refused, "one refused resume per client")
	require.Zero(t, wrongRefusal, "every refusal is %v", run.want)
	require.Equal(t, uint64(sum.upListed), st.MessagesUnacked, "Stats.MessagesUnacked counts the listed messages")
	require.Equal(t, st.MessagesUnacked, st.MessagesInDoubt, "in doubt are exactly those reported")
	require.Zero(t, st.MessagesFailed)
	require.Zero(t, st.Resumes)
	require.Equal(t, restartClients, run.old.sessions, "every old session ended")
	for k, c := range perClient {
		require.Positive(t, c.upNew, "client %d: the new session carries messages up", k)
		require.Positive(t, c.newReceived, "client %d: the new session carries messages down", k)
	}
}

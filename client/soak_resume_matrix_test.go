//go:build soak

package client

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/internal/udpproxy"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// The resume matrix: resMatrixClients client.Clients with resMatrixChannels
// channels each send numbered messages to a session server through
// internal/udpproxy, and the server sends numbered messages back on every
// channel, while one fault is in effect. With acknowledgements and
// resumption on, every message Send accepted, in either direction, must be
// delivered exactly once and in order, with nothing in doubt.
const (
	resMatrixClients  = 100
	resMatrixChannels = 8
	// resPace is the gap between two sends of one sender: 1,600 senders at
	// 10 messages/s each, 8,000 messages/s each way. QUICMSG_SOAK_PACE
	// (a duration) sets another, for runs under -race on a small machine.
	resPace   = 100 * time.Millisecond
	resWarmup = 2 * time.Second
	resWindow = 10 * time.Second
	// resSettle is how long traffic runs after the fault has healed.
	resSettle = 3 * time.Second
	// resWait bounds every wait for delivery after the senders stopped.
	resWait = 40 * time.Second
)

// resFlow is one direction of one channel: messages numbered from 0, sent
// by one goroutine, received by one.
type resFlow struct {
	accepted atomic.Int64  // messages Send accepted (numbered 0..accepted-1)
	failed   atomic.Int64  // Send errors (those messages count as not accepted)
	next     atomic.Int64  // the number the next message must carry
	dups     atomic.Int64  // messages that arrived again or out of order
	gaps     atomic.Int64  // messages that arrived with a number past the next
	pace     time.Duration // the gap between two sends; 0 for resPace
}

// resHealed is when the current case's fault healed (Unix ns, 0 before),
// and resFirstUp/resFirstDown when a message first arrived after that, in
// each direction: the cases run one after the other.
var resHealed, resFirstUp, resFirstDown atomic.Int64

// arrive checks that msg carries the next number; first records the first
// arrival after the fault healed.
func (f *resFlow) arrive(msg []byte, first *atomic.Int64) {
	if h := resHealed.Load(); h != 0 && first.Load() == 0 {
		first.CompareAndSwap(0, time.Now().UnixNano())
	}
	if len(msg) < 4 {
		f.gaps.Add(1)
		return
	}
	i := int64(binary.BigEndian.Uint32(msg))
	next := f.next.Load()
	switch {
	case i == next:
		f.next.Store(next + 1)
	case i < next:
		f.dups.Add(1)
	default:
		f.gaps.Add(1)
		f.next.Store(i + 1)
	}
}

// sendLoop sends numbered messages until stop is closed. A message whose
// Send fails was not accepted; the number is used again.
func (f *resFlow) sendLoop(ctx context.Context, stop <-chan struct{}, send func(context.Context, []byte) error) {
	pace := cmp.Or(f.pace, matrixPace())
	tick := time.NewTicker(pace)
	defer tick.Stop()
	// Start at a random point of the period so that the senders spread.
	time.Sleep(rand.N(pace))
	for i := uint32(0); ; {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		msg := binary.BigEndian.AppendUint32(make([]byte, 0, 64), i)
		msg = append(msg, make([]byte, 60)...)
		sctx, cancel := context.WithTimeout(ctx, resWait)
		err := send(sctx, msg)
		cancel()
		if err != nil {
			f.failed.Add(1)
			continue
		}
		f.accepted.Add(1)
		i++
	}
}

// matrixPace is resPace, or QUICMSG_SOAK_PACE when set.
func matrixPace() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("QUICMSG_SOAK_PACE")); err == nil && d > 0 {
		return d
	}
	return resPace
}

// resServer is the server side: it checks what the clients send and sends
// its own numbered messages on every channel, from the first time it sees
// the channel until stop.
type resServer struct {
	srv  *session.Server
	addr string
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	stopped bool                // stopSenders ran: no new sender starts
	causes  []error             // why sessions ended
	up      map[string]*resFlow // client → server, by channel name
	down    map[string]*resFlow // server → client, by channel name
	sess    map[transport.SessionID]*session.Session
	ended   atomic.Int64 // sessions ended (OnSessionEnd)
}

func (r *resServer) flow(m map[string]*resFlow, name string) *resFlow {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := m[name]
	if f == nil {
		f = &resFlow{}
		m[name] = f
	}
	return f
}

func (r *resServer) HandleMessage(_ context.Context, _ *session.Session, m session.Message) {
	r.flow(r.up, m.Channel).arrive(m.Data, &resFirstUp)
}

// channelOpen starts the server's sender for a channel the first time the
// channel is seen; a resumed session reopens its channels, which must not
// start a second sender.
func (r *resServer) channelOpen(s *session.Session, name string) {
	r.mu.Lock()
	_, seen := r.down[name]
	if !seen {
		r.down[name] = &resFlow{}
	}
	f := r.down[name]
	r.sess[s.ID()] = s
	stopped := r.stopped
	r.mu.Unlock()
	if seen || stopped {
		return
	}
	r.wg.Go(func() {
		f.sendLoop(context.Background(), r.stop, func(ctx context.Context, msg []byte) error {
			return s.Send(ctx, name, msg)
		})
	})
}

// sessionEnd counts a session that ended and keeps why, for the report.
func (r *resServer) sessionEnd(_ *session.Session, cause error) {
	r.ended.Add(1)
	r.mu.Lock()
	r.causes = append(r.causes, cause)
	r.mu.Unlock()
}

func startResServer(t *testing.T) *resServer {
	r := &resServer{stop: make(chan struct{}), up: make(map[string]*resFlow), down: make(map[string]*resFlow),
		sess: make(map[transport.SessionID]*session.Session)}
	cfg := &session.Config{
		Transport:     transport.Config{IdleTimeout: 2 * time.Second, KeepAlivePeriod: 500 * time.Millisecond},
		OnChannelOpen: r.channelOpen,
		OnSessionEnd:  r.sessionEnd,
		PendingCap:    100000,
		PendingBytes:  64 << 20,
	}
	srv, err := session.NewServer(cfg, r)
	require.NoError(t, err)
	serverTLS, _ := testTLS(t)
	ln, err := srv.Listen("127.0.0.1:0", serverTLS)
	require.NoError(t, err)
	r.srv, r.addr = srv, ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		r.stopSenders()
		require.NoError(t, srv.Close())
		require.ErrorIs(t, <-served, session.ErrServerClosed)
	})
	return r
}

func (r *resServer) stopSenders() {
	r.mu.Lock()
	if !r.stopped {
		r.stopped = true // no sender starts after this
		close(r.stop)
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// resClient is one client with its channels' flows.
type resClient struct {
	c     *Client
	names []string
	up    []*resFlow
	down  []*resFlow
	log   *eventLog
}

// resFault is one row of the matrix.
type resFault struct {
	name  string
	start func(p *udpproxy.Proxy, srv *resServer) error
	heal  func(p *udpproxy.Proxy)
}

func resFaults() []resFault {
	none := func(*udpproxy.Proxy) {}
	return []resFault{
		{name: "loss5pct", start: func(p *udpproxy.Proxy, _ *resServer) error { p.SetDropRate(udpproxy.Both, 0.05); return nil },
			heal: func(p *udpproxy.Proxy) { p.SetDropRate(udpproxy.Both, 0) }},
		{name: "reorder20pct", start: func(p *udpproxy.Proxy, _ *resServer) error {
			p.SetReorder(udpproxy.Both, 0.2, 20*time.Millisecond)
			return nil
		}, heal: func(p *udpproxy.Proxy) { p.SetReorder(udpproxy.Both, 0, 0) }},
		{name: "duplicate10pct", start: func(p *udpproxy.Proxy, _ *resServer) error { p.SetDuplicateRate(udpproxy.Both, 0.1); return nil },
			heal: func(p *udpproxy.Proxy) { p.SetDuplicateRate(udpproxy.Both, 0) }},
		{name: "jitter100ms", start: nil, heal: nil}, // run by runResFault with a ticker
		{name: "partition10s", start: func(p *udpproxy.Proxy, _ *resServer) error { p.SetBlackHole(true); return nil },
			heal: func(p *udpproxy.Proxy) { p.SetBlackHole(false) }},
		{name: "natRebinding", start: func(p *udpproxy.Proxy, _ *resServer) error { _, err := p.Rebind(); return err }, heal: none},
		{name: "goAwaySameServer", start: func(_ *udpproxy.Proxy, srv *resServer) error {
			srv.mu.Lock()
			defer srv.mu.Unlock()
			for _, s := range srv.sess {
				_ = s.SendGoAway(transport.CodeGoingAway, "move along (test)")
			}
			return nil
		}, heal: none},
	}
}

// TestSoakResumeMatrix runs each fault against a fresh server and clients.
func TestSoakResumeMatrix(t *testing.T) {
	for _, f := range resFaults() {
		t.Run(f.name, func(t *testing.T) { runResFault(t, f) })
	}
}

func dialResClients(ctx context.Context, t *testing.T, addr string, n int) []*resClient {
	out := make([]*resClient, n)
	for k := range n {
		log := &eventLog{}
		cfg := &Config{
			Transport: transport.Config{IdleTimeout: 2 * time.Second, KeepAlivePeriod: 500 * time.Millisecond, HandshakeTimeout: 2 * time.Second},
			Backoff:   Backoff{InitialDelay: 50 * time.Millisecond, MaxDelay: time.Second},
			OnEvent:   log.add,
		}
		c, err := Dial(ctx, addr, testClientTLS(t), cfg)
		require.NoError(t, err)
		rc := &resClient{c: c, log: log}
		for j := range resMatrixChannels {
			rc.names = append(rc.names, fmt.Sprintf("c%03d.%d", k, j))
			rc.up = append(rc.up, &resFlow{})
			rc.down = append(rc.down, &resFlow{})
		}
		out[k] = rc
	}
	return out
}

// runTraffic starts, per channel, a sender and a receiver; the senders stop
// when stop closes, the receivers when rctx ends.
func runTraffic(ctx, rctx context.Context, t *testing.T, clients []*resClient, stop <-chan struct{}, senders, receivers *sync.WaitGroup) {
	for _, rc := range clients {
		for j, name := range rc.names {
			ch, err := rc.c.Channel(ctx, name)
			require.NoError(t, err)
			up, down := rc.up[j], rc.down[j]
			senders.Go(func() { up.sendLoop(ctx, stop, ch.Send) })
			receivers.Go(func() {
				for {
					msg, err := ch.Receive(rctx)
					if err != nil {
						return
					}
					down.arrive(msg, &resFirstDown)
				}
			})
		}
	}
}

func runResFault(t *testing.T, f resFault) {
	srv := startResServer(t)
	proxy, err := udpproxy.New(srv.addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	clients := dialResClients(ctx, t, proxy.Addr().String(), resMatrixClients)
	rctx, stopReceivers := context.WithCancel(ctx)
	stop := make(chan struct{})
	var senders, receivers sync.WaitGroup
	runTraffic(ctx, rctx, t, clients, stop, &senders, &receivers)
	time.Sleep(resWarmup)

	faultStart := time.Now()
	if f.start == nil {
		jitter(proxy, resWindow)
	} else {
		require.NoError(t, f.start(proxy, srv))
		time.Sleep(resWindow)
		f.heal(proxy)
	}
	healed := time.Now()
	resHealed.Store(healed.UnixNano())
	defer func() { resHealed.Store(0); resFirstUp.Store(0); resFirstDown.Store(0) }()
	time.Sleep(resSettle)
	close(stop)
	senders.Wait()
	srv.stopSenders()
	drained := waitResDelivered(t, srv, clients)
	stopReceivers()
	receivers.Wait()
	reportResFault(t, srv, clients, proxy, faultStart, healed, drained)
	for _, rc := range clients {
		require.NoError(t, rc.c.Close(), "nothing left undelivered")
	}
}

// jitter gives every datagram a one-way delay drawn uniformly from
// [0, 100 ms] for d.
func jitter(p *udpproxy.Proxy, d time.Duration) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		<-tick.C
		p.SetDelay(udpproxy.Both, rand.N(100*time.Millisecond))
	}
	p.SetDelay(udpproxy.Both, 0)
}

// waitResDelivered waits until every accepted message of every flow has
// arrived, and returns when that was.
func waitResDelivered(t *testing.T, srv *resServer, clients []*resClient) time.Time {
	deadline := time.Now().Add(resWait)
	for {
		lag := resLagging(srv, clients)
		if len(lag) == 0 {
			return time.Now()
		}
		if time.Now().After(deadline) {
			logLaggards(t, clients, lag)
			srv.mu.Lock()
			for _, c := range srv.causes {
				t.Logf("a session ended: %v", c)
			}
			srv.mu.Unlock()
			require.Failf(t, "accepted messages not delivered", "%d flows behind, first ones: %v", len(lag), lag[:min(len(lag), 8)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logLaggards logs, for the clients with a flow behind, their stats and
// events.
func logLaggards(t *testing.T, clients []*resClient, lag []string) {
	for k, rc := range clients {
		behind := false
		for _, l := range lag {
			behind = behind || strings.HasPrefix(l, fmt.Sprintf("c%03d.", k))
		}
		rc.log.mu.Lock()
		var evs []string
		for _, e := range rc.log.events {
			evs = append(evs, fmt.Sprintf("%v(resumed=%v err=%v)", e.Type, e.Resumed, e.Err))
		}
		rc.log.mu.Unlock()
		if len(evs) > 1 || behind {
			t.Logf("client %d: stats %+v events %v", k, rc.c.Stats(), evs)
		}
	}
}

// resLagging lists the flows whose receiver has not got every accepted
// message yet.
func resLagging(srv *resServer, clients []*resClient) []string {
	var lag []string
	for _, rc := range clients {
		for j, name := range rc.names {
			srv.mu.Lock()
			up, down := srv.up[name], srv.down[name]
			srv.mu.Unlock()
			if acc := rc.up[j].accepted.Load(); acc > 0 && (up == nil || up.next.Load() < acc) {
				got := int64(0)
				if up != nil {
					got = up.next.Load()
				}
				lag = append(lag, fmt.Sprintf("%s up %d/%d (client %v)", name, got, acc, rc.c.Status()))
			}
			if down != nil && rc.down[j].next.Load() < down.accepted.Load() {
				lag = append(lag, fmt.Sprintf("%s down %d/%d (client %v)", name, rc.down[j].next.Load(), down.accepted.Load(), rc.c.Status()))
			}
		}
	}
	return lag
}

func reportResFault(t *testing.T, srv *resServer, clients []*resClient, proxy *udpproxy.Proxy, faultStart, healed, drained time.Time) {
	var upAcc, upDel, downAcc, downDel, dups, gaps, failed int64
	var st Stats
	var resumed, disconnects int
	for _, rc := range clients {
		cs := rc.c.Stats()
		st.Reconnects += cs.Reconnects
		st.MessagesInDoubt += cs.MessagesInDoubt
		st.MessagesResent += cs.MessagesResent
		st.MessagesFailed += cs.MessagesFailed
		for j, name := range rc.names {
			srv.mu.Lock()
			up, down := srv.up[name], srv.down[name]
			srv.mu.Unlock()
			upAcc += rc.up[j].accepted.Load()
			failed += rc.up[j].failed.Load()
			if up != nil {
				upDel += up.next.Load()
				dups += up.dups.Load()
				gaps += up.gaps.Load()
			}
			if down != nil {
				downAcc += down.accepted.Load()
				failed += down.failed.Load()
			}
			downDel += rc.down[j].next.Load()
			dups += rc.down[j].dups.Load()
			gaps += rc.down[j].gaps.Load()
		}
		rc.log.mu.Lock()
		for _, e := range rc.log.events {
			switch e.Type {
			case EventDisconnected:
				disconnects++
			case EventReconnected:
				if e.Resumed {
					resumed++
				}
			}
		}
		rc.log.mu.Unlock()
	}
	testenv.Figure(t, "up_accepted", "%d", upAcc)
	testenv.Figure(t, "up_delivered", "%d", upDel)
	testenv.Figure(t, "down_accepted", "%d", downAcc)
	testenv.Figure(t, "down_delivered", "%d", downDel)
	testenv.Figure(t, "send_errors", "%d", failed)
	testenv.Figure(t, "duplicates", "%d", dups)
	testenv.Figure(t, "gaps", "%d", gaps)
	testenv.Figure(t, "in_doubt", "%d", st.MessagesInDoubt)
	testenv.Figure(t, "resent", "%d", st.MessagesResent)
	testenv.Figure(t, "disconnects", "%d", disconnects)
	testenv.Figure(t, "reconnects", "%d", st.Reconnects)
	testenv.Figure(t, "resumed", "%d", resumed)
	testenv.Figure(t, "sessions_ended", "%d", srv.ended.Load())
	testenv.Figure(t, "drain_after_heal_ms", "%d", drained.Sub(healed).Milliseconds())
	for _, f := range []struct {
		name  string
		first int64
	}{{"first_up_after_heal_ms", resFirstUp.Load()}, {"first_down_after_heal_ms", resFirstDown.Load()}} {
		if f.first != 0 {
			testenv.Figure(t, f.name, "%.1f", float64(f.first-healed.UnixNano())/1e6)
		}
	}
	ps := proxy.Stats()
	testenv.Figure(t, "proxy_dropped", "%d", ps.ToServer.Dropped+ps.ToClient.Dropped)
	testenv.Figure(t, "proxy_duplicated", "%d", ps.ToServer.Duplicated+ps.ToClient.Duplicated)
	_ = faultStart
	require.Zero(t, dups, "messages delivered twice or out of order")
	require.Zero(t, gaps, "messages missing")
	require.Equal(t, upAcc, upDel, "client→server: every accepted message delivered once")
	require.Equal(t, downAcc, downDel, "server→client: every accepted message delivered once")
	require.Zero(t, st.MessagesInDoubt, "nothing in doubt")
	require.Zero(t, st.MessagesFailed)
	require.Zero(t, srv.ended.Load(), "no session ended: each one survived or was resumed")
}

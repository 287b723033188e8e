//go:build soak

package client

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
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

// The fault matrix: a reconnecting client.Client and a plain transport.Conn
// send checksummed messages to a session server that checks and echoes them,
// through internal/udpproxy, while one fault is in effect for faultWindow.
// Every message Send accepted must reach the server handler intact, once and
// in order, or be counted by the client as in doubt or failed.
const (
	faultWarmup   = time.Second
	faultWindow   = 10 * time.Second
	faultCooldown = 2 * time.Second
	faultChannels = 4
	// faultPace is the gap between two sends of one sender: 4 channels at
	// 500 messages/s each.
	faultPace = 2 * time.Millisecond
	// faultWait bounds every wait for a message or a state.
	faultWait = 60 * time.Second
)

// faultCase is one row of the matrix. start begins the fault; heal ends it,
// and recovery is measured from its return. direct cases dial the server
// without the proxy, and have no transport.Conn (a restart ends it).
type faultCase struct {
	name   string
	direct bool
	window time.Duration // how long the fault lasts; zero means faultWindow
	start  func(e *faultEnv)
	heal   func(e *faultEnv)
}

// faultEnv is what a case acts on.
type faultEnv struct {
	t     *testing.T
	rs    *restartable
	proxy *udpproxy.Proxy
	stop  chan struct{} // closed to end background fault goroutines
	wg    sync.WaitGroup
}

func steady(set func(p *udpproxy.Proxy, on bool)) (func(*faultEnv), func(*faultEnv)) {
	return func(e *faultEnv) { set(e.proxy, true) }, func(e *faultEnv) { set(e.proxy, false) }
}

func faultCases() []faultCase {
	loss, lossHeal := steady(func(p *udpproxy.Proxy, on bool) { p.SetDropRate(udpproxy.Both, onOff(on, 0.05)) })
	reorder, reorderHeal := steady(func(p *udpproxy.Proxy, on bool) {
		p.SetReorder(udpproxy.Both, onOff(on, 0.2), time.Duration(onOff(on, float64(20*time.Millisecond))))
	})
	dup, dupHeal := steady(func(p *udpproxy.Proxy, on bool) { p.SetDuplicateRate(udpproxy.Both, onOff(on, 0.1)) })
	return []faultCase{
		{name: "loss5pct", start: loss, heal: lossHeal},
		{name: "reorder20pct", start: reorder, heal: reorderHeal},
		{name: "duplicate10pct", start: dup, heal: dupHeal},
		{name: "jitter100ms", start: startJitter, heal: stopJitter},
		{name: "partition10s", start: func(e *faultEnv) { e.proxy.SetBlackHole(true) }, heal: func(e *faultEnv) { e.proxy.SetBlackHole(false) }},
		{name: "restartKeptKeys", direct: true, window: restartDown, start: killServer, heal: func(e *faultEnv) { e.rs.start() }},
		{name: "restartNewKeys", direct: true, window: restartDown, start: killServer, heal: func(e *faultEnv) {
			e.rs.keys = [][32]byte{{byte(rand.Uint32())}}
			e.rs.start()
		}},
	}
}

func onOff(on bool, v float64) float64 {
	if on {
		return v
	}
	return 0
}

// startJitter gives every datagram a one-way delay drawn uniformly from
// [0, 100 ms]: the proxy keeps the delay a datagram was queued with, so
// changing it every millisecond spreads the delays.
func startJitter(e *faultEnv) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-e.stop:
				e.proxy.SetDelay(udpproxy.Both, 0)
				return
			case <-tick.C:
				e.proxy.SetDelay(udpproxy.Both, rand.N(100*time.Millisecond))
			}
		}
	}()
}

func stopJitter(e *faultEnv) {
	close(e.stop)
	e.wg.Wait()
	e.stop = make(chan struct{})
}

// restartDown is how long a restarted server stays down: long enough for
// the client to notice and start reconnecting.
const restartDown = 2 * time.Second

func killServer(e *faultEnv) { e.rs.kill() }

// checker is the server's handler: it checks each checksummed message,
// records the order per channel, and echoes it.
type checker struct {
	mu      sync.Mutex
	last    map[string]int // highest index handled per channel
	handled map[string]map[int]bool
	corrupt int
	misord  int // duplicates or messages older than one already handled
}

func newChecker() *checker {
	return &checker{last: make(map[string]int), handled: make(map[string]map[int]bool)}
}

func (c *checker) HandleMessage(ctx context.Context, s *session.Session, m session.Message) {
	c.record(m.Channel, m.Data)
	_ = s.Send(ctx, m.Channel, m.Data)
}

func (c *checker) record(channel string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(data) < 4 {
		c.corrupt++
		return
	}
	i := int(binary.BigEndian.Uint32(data))
	if testenv.VerifyChecksummed(data, i) != nil {
		c.corrupt++
		return
	}
	last, seen := c.last[channel]
	if seen && i <= last {
		c.misord++
		return
	}
	c.last[channel] = i
	if c.handled[channel] == nil {
		c.handled[channel] = make(map[int]bool)
	}
	c.handled[channel][i] = true
}

// reached reports whether channel's handled index is at least i.
func (c *checker) reached(channel string, i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	last, ok := c.last[channel]
	return ok && last >= i
}

// faultSender sends checksummed messages on one channel until stopped, and
// remembers which ones Send accepted.
type faultSender struct {
	name     string
	send     func(ctx context.Context, msg []byte) error
	next     atomic.Int64 // index of the next message to send
	mu       sync.Mutex
	accepted []bool
	errs     int
}

func (s *faultSender) run(ctx context.Context, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		sctx, cancel := context.WithTimeout(ctx, faultWait)
		err := s.send(sctx, testenv.Checksummed(s.name, i))
		cancel()
		s.mu.Lock()
		s.accepted = append(s.accepted, err == nil)
		if err != nil {
			s.errs++
		}
		s.mu.Unlock()
		s.next.Store(int64(i + 1))
		time.Sleep(faultPace)
	}
}

// sendMarker sends one more message, after the others, and returns its index.
func (s *faultSender) sendMarker(ctx context.Context) (int, error) {
	i := int(s.next.Load())
	err := s.send(ctx, testenv.Checksummed(s.name, i))
	s.mu.Lock()
	s.accepted = append(s.accepted, err == nil)
	s.mu.Unlock()
	s.next.Store(int64(i + 1))
	return i, err
}

// echoReader reads echoes until ctx ends and checks each is intact and
// newer than the one before (echoes of a connection that died are lost with
// it, so gaps are allowed).
type echoReader struct {
	echoed, bad atomic.Int64
	last        atomic.Int64
}

func (r *echoReader) run(ctx context.Context, recv func(context.Context) ([]byte, error)) {
	r.last.Store(-1)
	for {
		msg, err := recv(ctx)
		if err != nil {
			return
		}
		if len(msg) < 4 {
			r.bad.Add(1)
			continue
		}
		i := int64(binary.BigEndian.Uint32(msg))
		if testenv.VerifyChecksummed(msg, int(i)) != nil || i <= r.last.Load() {
			r.bad.Add(1)
			continue
		}
		r.last.Store(i)
		r.echoed.Add(1)
	}
}

// TestSoakFaultMatrix runs each fault of the matrix against a fresh server
// for faultWindow, with traffic before, during and after it.
func TestSoakFaultMatrix(t *testing.T) {
	for _, fc := range faultCases() {
		t.Run(fc.name, func(t *testing.T) { runFaultCase(t, fc) })
	}
}

// traffic is the load of one case: the client's senders and echo readers,
// and the transport.Conn's (nil in direct cases).
type traffic struct {
	client   *Client
	senders  []*faultSender
	readers  []*echoReader
	tx       *faultSender
	txReader *echoReader
	txConn   *transport.Conn
	stop     chan struct{}
	sendWG   sync.WaitGroup
	readWG   sync.WaitGroup
	cancel   context.CancelFunc
	log      *eventLog
}

func startTraffic(ctx context.Context, t *testing.T, addr string, withTransport bool, log *eventLog) *traffic {
	c, err := Dial(ctx, addr, testClientTLS(t), fastConfig(t, log))
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	tr := &traffic{client: c, stop: make(chan struct{}), cancel: cancel, log: log}
	for i := range faultChannels {
		ch, err := c.Channel(ctx, "ch"+string(rune('0'+i)))
		require.NoError(t, err)
		tr.add(ctx, rctx, &faultSender{name: ch.Name(), send: ch.Send}, ch.Receive)
	}
	if withTransport {
		_, clientTLS := testTLS(t)
		tr.txConn, err = transport.Dial(ctx, addr, clientTLS, nil)
		require.NoError(t, err)
		tch, err := tr.txConn.OpenChannel(ctx, "tx")
		require.NoError(t, err)
		tr.tx = &faultSender{name: "tx", send: tch.Send}
		tr.txReader = tr.add(ctx, rctx, tr.tx, tch.Receive)
	}
	return tr
}

func (tr *traffic) add(ctx, rctx context.Context, s *faultSender, recv func(context.Context) ([]byte, error)) *echoReader {
	r := &echoReader{}
	if s.name != "tx" {
		tr.senders = append(tr.senders, s)
		tr.readers = append(tr.readers, r)
	}
	tr.sendWG.Add(1)
	go func() { defer tr.sendWG.Done(); s.run(ctx, tr.stop) }()
	tr.readWG.Add(1)
	go func() { defer tr.readWG.Done(); r.run(rctx, recv) }()
	return r
}

// all is every sender with its reader, the transport's last.
func (tr *traffic) all() ([]*faultSender, []*echoReader) {
	ss, rs := tr.senders, tr.readers
	if tr.tx != nil {
		ss, rs = append(append([]*faultSender(nil), ss...), tr.tx), append(append([]*echoReader(nil), rs...), tr.txReader)
	}
	return ss, rs
}

// finish stops the senders, waits until the client has a connection and an
// empty reconnect buffer, sends one marker per sender and waits for the
// server to handle it (what came before it has then arrived or is lost) and
// for its echo, and stops everything.
func (tr *traffic) finish(ctx context.Context, t *testing.T, chk *checker) {
	close(tr.stop)
	tr.sendWG.Wait()
	waitStatus(t, tr.client, StatusConnected)
	require.Eventually(t, func() bool { return tr.client.Stats().BufferedMessages == 0 }, faultWait, 5*time.Millisecond)
	ss, rs := tr.all()
	for k, s := range ss {
		mctx, cancel := context.WithTimeout(ctx, faultWait)
		i, err := s.sendMarker(mctx)
		cancel()
		require.NoError(t, err, "marker on %s", s.name)
		require.Eventually(t, func() bool { return chk.reached(s.name, i) }, faultWait, 5*time.Millisecond, "marker %d on %s", i, s.name)
		require.Eventually(t, func() bool { return rs[k].last.Load() >= int64(i) }, faultWait, 5*time.Millisecond, "echo of marker %d on %s", i, s.name)
	}
	tr.cancel()
	tr.readWG.Wait()
	if tr.txConn != nil {
		require.NoError(t, tr.txConn.Close())
	}
}

// measureRecovery waits until the server has handled, on every channel, a
// message sent after heal returned, and returns how long that took for the
// client's channels and for the transport's (0 without one).
func (tr *traffic) measureRecovery(t *testing.T, chk *checker) (client, tx time.Duration) {
	healed := time.Now()
	marks := make(map[*faultSender]int)
	ss, _ := tr.all()
	for _, s := range ss {
		marks[s] = int(s.next.Load())
	}
	done := func(s *faultSender) bool { return chk.reached(s.name, marks[s]) }
	require.Eventually(t, func() bool {
		if tr.tx != nil && tx == 0 && done(tr.tx) {
			tx = time.Since(healed)
		}
		for _, s := range tr.senders {
			if !done(s) {
				return false
			}
		}
		if client == 0 {
			client = time.Since(healed)
		}
		return tr.tx == nil || tx != 0
	}, faultWait, 2*time.Millisecond, "traffic did not resume after the fault")
	return client, tx
}

func runFaultCase(t *testing.T, fc faultCase) {
	chk := newChecker()
	rs := newRestartable(t, chk)
	e := &faultEnv{t: t, rs: rs, stop: make(chan struct{})}
	addr := rs.addr
	if !fc.direct {
		p, err := udpproxy.New(rs.addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		e.proxy, addr = p, p.Addr().String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log eventLog
	tr := startTraffic(ctx, t, addr, !fc.direct, &log)
	defer func() {
		if t.Failed() {
			t.Logf("client stats %+v; server: corrupt %d, out of order %d", tr.client.Stats(), chk.corrupt, chk.misord)
		}
	}()
	time.Sleep(faultWarmup)
	began := time.Now()
	fc.start(e)
	window := fc.window
	if window == 0 {
		window = faultWindow
	}
	time.Sleep(window - time.Since(began))
	fc.heal(e)
	recClient, recTx := tr.measureRecovery(t, chk)
	time.Sleep(faultCooldown)
	tr.finish(ctx, t, chk)
	st := tr.client.Stats()
	require.NoError(t, tr.client.Close(), "nothing left undelivered")
	st.MessagesFailed = tr.client.Stats().MessagesFailed
	reportFaultCase(t, e, tr, chk, st, recClient, recTx)
}

func reportFaultCase(t *testing.T, e *faultEnv, tr *traffic, chk *checker, st Stats, recClient, recTx time.Duration) {
	chk.mu.Lock()
	defer chk.mu.Unlock()
	var accepted, delivered, unaccepted, sendErrs int
	for _, s := range tr.senders {
		a, d, u := tally(s, chk.handled[s.name])
		accepted, delivered, unaccepted, sendErrs = accepted+a, delivered+d, unaccepted+u, sendErrs+s.errs
	}
	var echoed, badEchoes int64
	for _, r := range tr.readers {
		echoed, badEchoes = echoed+r.echoed.Load(), badEchoes+r.bad.Load()
	}
	lost := accepted - delivered
	logDisconnects(t, tr.log)
	testenv.Figure(t, "accepted", "%d", accepted)
	testenv.Figure(t, "delivered", "%d", delivered)
	testenv.Figure(t, "resent", "%d", st.MessagesResent)
	testenv.Figure(t, "in_doubt", "%d", st.MessagesInDoubt)
	testenv.Figure(t, "failed", "%d", st.MessagesFailed)
	testenv.Figure(t, "lost_of_in_doubt", "%d", lost)
	testenv.Figure(t, "send_errors", "%d", sendErrs)
	testenv.Figure(t, "reconnects", "%d", st.Reconnects)
	testenv.Figure(t, "echoes_received", "%d", echoed)
	testenv.Figure(t, "recover_ms", "%d", recClient.Milliseconds())
	require.Zero(t, chk.corrupt, "corrupted messages reached the handler")
	require.Zero(t, chk.misord, "messages reached the handler twice or out of order")
	require.Zero(t, badEchoes, "echoes corrupted, repeated or out of order")
	require.Zero(t, unaccepted, "messages delivered whose Send failed")
	require.LessOrEqual(t, lost, int(st.MessagesInDoubt+st.MessagesFailed), "accepted messages lost without being counted")
	if tr.tx != nil {
		a, d, u := tally(tr.tx, chk.handled["tx"])
		testenv.Figure(t, "transport_accepted", "%d", a)
		testenv.Figure(t, "transport_delivered", "%d", d)
		testenv.Figure(t, "transport_recover_ms", "%d", recTx.Milliseconds())
		require.Equal(t, a, d, "the transport.Conn lost messages")
		require.Zero(t, u+tr.tx.errs, "transport sends failed")
		require.Equal(t, int64(d), tr.txReader.echoed.Load(), "every transport message echoed")
	}
	if e.proxy != nil {
		ps := e.proxy.Stats()
		testenv.Figure(t, "proxy_dropped", "%d", ps.ToServer.Dropped+ps.ToClient.Dropped)
		testenv.Figure(t, "proxy_duplicated", "%d", ps.ToServer.Duplicated+ps.ToClient.Duplicated)
		testenv.Figure(t, "proxy_delayed", "%d", ps.ToServer.Delayed+ps.ToClient.Delayed)
	}
}

// tally counts a sender's accepted messages, those of them the server
// handled, and messages handled that Send had not accepted.
func tally(s *faultSender, handled map[int]bool) (accepted, delivered, unaccepted int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, ok := range s.accepted {
		switch {
		case ok:
			accepted++
			if handled[i] {
				delivered++
			}
		case handled[i]:
			unaccepted++
		}
	}
	return accepted, delivered, unaccepted
}

// logDisconnects reports how many times the client lost its connection, and
// logs why.
func logDisconnects(t *testing.T, log *eventLog) {
	log.mu.Lock()
	defer log.mu.Unlock()
	n := 0
	for _, e := range log.events {
		if e.Type == EventDisconnected {
			n++
			t.Logf("disconnected from %s: %v", e.Addr, e.Err)
		}
	}
	testenv.Figure(t, "disconnects", "%d", n)
}

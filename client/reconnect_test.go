package client

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/udpproxy"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// recorder is a handler that records the sequence numbers it receives, per
// channel, in the order they were handled, and echoes those of the "echo"
// channels; echoFailed keeps the echoes whose Send failed, which the
// client will never receive.
type recorder struct {
	mu         sync.Mutex
	seqs       map[string][]int
	echoFailed []error
}

func newRecorder() *recorder { return &recorder{seqs: make(map[string][]int)} }

func (r *recorder) HandleMessage(ctx context.Context, s *session.Session, m session.Message) {
	n, err := strconv.Atoi(strings.TrimPrefix(string(m.Data), "seq:"))
	if err != nil {
		n = -1
	}
	r.mu.Lock()
	r.seqs[m.Channel] = append(r.seqs[m.Channel], n)
	r.mu.Unlock()
	if !strings.HasPrefix(m.Channel, "echo") {
		return
	}
	if err := s.Send(ctx, m.Channel, m.Data); err != nil {
		r.mu.Lock()
		r.echoFailed = append(r.echoFailed, fmt.Errorf("echo of %q on %s: %w", m.Data, m.Channel, err))
		r.mu.Unlock()
	}
}

// echoErrors returns the echoes whose Send failed.
func (r *recorder) echoErrors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.echoFailed)
}

func (r *recorder) got(channel string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.seqs[channel]...)
}

func (r *recorder) waitFor(t *testing.T, channel string, n int) []int {
	t.Helper()
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return len(r.got(channel)) >= n }, 30*time.Second, 5*time.Millisecond,
		"channel %s: %d of %d messages", channel, len(r.got(channel)), n)
	return r.got(channel)
}

func seq(i int) []byte { return fmt.Appendf(nil, "seq:%d", i) }

// restartable is a session server on a fixed port that a test can kill
// abruptly, with no CONNECTION_CLOSE, as if its process had died, and start
// again on the same port.
type restartable struct {
	t        *testing.T
	addr     string
	keys     [][32]byte
	resetKey quic.StatelessResetKey
	handler  session.Handler

	udp    *net.UDPConn
	tr     *quic.Transport
	srv    *session.Server
	served chan error
}

func newRestartable(t *testing.T, h session.Handler) *restartable {
	r := &restartable{t: t, addr: "127.0.0.1:0", keys: [][32]byte{{1, 2, 3}}, resetKey: quic.StatelessResetKey{9}, handler: h}
	r.start()
	t.Cleanup(func() {
		if r.srv != nil {
			r.kill()
		}
	})
	return r
}

func (r *restartable) start() {
	t := r.t
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", r.addr)
	require.NoError(t, err)
	r.udp, err = net.ListenUDP("udp", ua)
	require.NoError(t, err)
	r.addr = r.udp.LocalAddr().String()
	r.tr = &quic.Transport{Conn: r.udp, StatelessResetKey: &r.resetKey}
	serverTLS, _ := testTLS(t)
	tc := serverTLS.Clone()
	tc.SetSessionTicketKeys(r.keys)
	cfg := &session.Config{Transport: transport.Config{Allow0RTT: true}}
	ln, err := transport.ListenTransport(r.tr, tc, &cfg.Transport)
	require.NoError(t, err)
	r.srv, err = session.NewServer(cfg, r.handler)
	require.NoError(t, err)
	r.served = make(chan error, 1)
	go func() { r.served <- r.srv.Serve(ln) }()
}

// kill drops the server without a word to its clients.
func (r *restartable) kill() {
	require.NoError(r.t, r.tr.Close())
	require.NoError(r.t, r.udp.Close())
	require.NoError(r.t, r.srv.Close())
	require.ErrorIs(r.t, <-r.served, session.ErrServerClosed)
	r.srv = nil
}

// eventLog collects client events.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) has(match func(Event) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if match(e) {
			return true
		}
	}
	return false
}

// fastConfig reconnects quickly and notices a dead server within a second.
func fastConfig(_ *testing.T, log *eventLog) *Config {
	return &Config{
		Transport: transport.Config{IdleTimeout: time.Second, KeepAlivePeriod: 200 * time.Millisecond, HandshakeTimeout: time.Second},
		Backoff:   Backoff{InitialDelay: 20 * time.Millisecond, MaxDelay: 300 * time.Millisecond},
		OnEvent:   log.add,
	}
}

func waitStatus(t *testing.T, c *Client, s Status) {
	t.Helper()
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return c.Status() == s }, 30*time.Second, 5*time.Millisecond, "status %s, want %s", c.Status(), s)
}

func requireSequence(t *testing.T, got []int, from, to int) {
	t.Helper()
	require.Len(t, got, to-from, "exactly once")
	for i, v := range got {
		require.Equal(t, from+i, v, "in order")
	}
}

// ticketedClient dials addr with cfg and returns the client and its "echo"
// channel after one echo, by which time the client holds a session ticket.
// The client is closed at cleanup.
func ticketedClient(ctx context.Context, t *testing.T, addr string, cfg *Config) (*Client, *Channel) {
	t.Helper()
	c, err := Dial(ctx, addr, testClientTLS(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ch, err := c.Channel(ctx, "echo")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, seq(0)))
	_, err = ch.Receive(ctx)
	require.NoError(t, err)
	return c, ch
}

func TestClientSurvivesServerRestart(t *testing.T) {
	rec := newRecorder()
	rs := newRestartable(t, rec)
	var log eventLog
	ctx := testCtx(t)
	c, err := Dial(ctx, rs.addr, testClientTLS(t), fastConfig(t, &log))
	require.NoError(t, err)
	defer c.Close()
	ch, err := c.Channel(ctx, "orders")
	require.NoError(t, err)
	for i := range 100 {
		require.NoError(t, ch.Send(ctx, seq(i)))
	}
	rec.waitFor(t, "orders", 100)

	rs.kill()
	waitStatus(t, c, StatusReconnecting)
	accepted, failed := 0, 0
	for i := 100; i < 300; i++ {
		if err := ch.Send(ctx, seq(i)); err != nil {
			failed++
			continue
		}
		accepted++
	}
	require.Equal(t, 200, accepted+failed, "every send is counted")
	require.Equal(t, 200, c.Stats().BufferedMessages)

	rs.start()
	got := rec.waitFor(t, "orders", 100+accepted)
	requireSequence(t, got, 0, 300)
	waitStatus(t, c, StatusConnected)
	require.Zero(t, c.Stats().BufferedMessages)
	require.GreaterOrEqual(t, c.Stats().Reconnects, uint64(1))
	require.True(t, log.has(func(e Event) bool { return e.Type == EventDisconnected && e.Err != nil }))
	require.True(t, log.has(func(e Event) bool { return e.Type == EventReconnected }))
}

func TestClientSurvivesBlackHole(t *testing.T) {
	rec := newRecorder()
	srv, err := session.NewServer(nil, rec)
	require.NoError(t, err)
	serverTLS, _ := testTLS(t)
	ln, err := transport.Listen("127.0.0.1:0", serverTLS, nil)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		require.NoError(t, srv.Close())
		<-served
	}()
	proxy, err := udpproxy.New(ln.Addr().String())
	require.NoError(t, err)
	defer proxy.Close()

	var log eventLog
	ctx := testCtx(t)
	c, err := Dial(ctx, proxy.Addr().String(), testClientTLS(t), fastConfig(t, &log))
	require.NoError(t, err)
	defer c.Close()
	ch, err := c.Channel(ctx, "ticks")
	require.NoError(t, err)
	for i := range 50 {
		require.NoError(t, ch.Send(ctx, seq(i)))
	}
	rec.waitFor(t, "ticks", 50)

	proxy.BlackHole(3 * time.Second)
	waitStatus(t, c, StatusReconnecting)
	accepted := 0
	for i := 50; i < 150; i++ {
		require.NoError(t, ch.Send(ctx, seq(i)))
		accepted++
	}
	got := rec.waitFor(t, "ticks", 50+accepted)
	requireSequence(t, got, 0, 150)
	require.False(t, proxy.BlackHoled())
	// The server dropped the old session when it went quiet.
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 1 }, 30*time.Second, 5*time.Millisecond)
}

// slowFirstAttempt gives the test time to bring the server back before the
// client's first reconnect attempt, which then offers its session ticket to
// a live server.
func slowFirstAttempt(cfg *Config) *Config {
	cfg.Backoff.Delay = func(int) time.Duration { return 300 * time.Millisecond }
	return cfg
}

func TestReconnectUsesZeroRTTAfterRestartWithKeptKeys(t *testing.T) {
	rec := newRecorder()
	rs := newRestartable(t, rec)
	var log eventLog
	ctx := testCtx(t)
	c, ch := ticketedClient(ctx, t, rs.addr, slowFirstAttempt(fastConfig(t, &log)))

	rs.kill()
	waitStatus(t, c, StatusReconnecting)
	require.NoError(t, ch.SendReplaySafe(ctx, seq(1)), "buffered; rides 0-RTT on reconnect")
	rs.start()
	msg, err := ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "seq:1", string(msg))

	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool {
		return log.has(func(e Event) bool { return e.Type == EventReconnected && e.Used0RTT })
	}, 10*time.Second, 5*time.Millisecond, "the client saw 0-RTT")
	require.Equal(t, uint64(1), c.Stats().ZeroRTT)
	sessions := rs.srv.Sessions()
	require.Len(t, sessions, 1)
	<-sessions[0].Conn().HandshakeComplete()
	require.True(t, sessions[0].Used0RTT(), "the server saw 0-RTT")
}

// A Receive that waits while the server is down carries on through 0-RTT
// attempts that time out, and returns the first message of the connection
// that finally comes up.
func TestReceiveWaitsThroughFailedZeroRTTAttempts(t *testing.T) {
	rec := newRecorder()
	rs := newRestartable(t, rec)
	var log eventLog
	ctx := testCtx(t)
	_, ch := ticketedClient(ctx, t, rs.addr, fastConfig(t, &log))

	type result struct {
		msg []byte
		err error
	}
	received := make(chan result, 1)
	go func() {
		msg, err := ch.Receive(ctx)
		received <- result{msg, err}
	}()
	rs.kill()
	// Each attempt opens a 0-RTT connection at once and loses it when its
	// handshake times out; wait for two of them to fail.
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool {
		return log.has(func(e Event) bool { return e.Type == EventReconnecting && e.Attempt >= 2 })
	}, 30*time.Second, 5*time.Millisecond)
	select {
	case r := <-received:
		t.Fatalf("Receive returned while the server was down: %q, %v", r.msg, r.err)
	default:
	}
	rs.start()
	require.NoError(t, ch.Send(ctx, seq(1)))
	r := <-received
	require.NoError(t, r.err)
	require.Equal(t, "seq:1", string(r.msg))
}

func TestRejectedZeroRTTIsResentExactlyOnce(t *testing.T) {
	rec := newRecorder()
	rs := newRestartable(t, rec)
	var log eventLog
	ctx := testCtx(t)
	cfg := slowFirstAttempt(fastConfig(t, &log))
	// A client that resumes its session after a loss dials with a full
	// handshake, and after the refusal (the restarted server has another
	// resume key) with the ticket the refused connection brought: 0-RTT
	// data is rejected only on a reconnect without resumption.
	cfg.DisableResume = true
	c, ch := ticketedClient(ctx, t, rs.addr, cfg)

	rs.kill()
	waitStatus(t, c, StatusReconnecting)
	for i := 1; i <= 20; i++ {
		require.NoError(t, ch.SendReplaySafe(ctx, seq(i)))
	}
	rs.keys = [][32]byte{{7, 7, 7}} // the server forgot its ticket keys
	rs.start()
	got := rec.waitFor(t, "echo", 21)
	requireSequence(t, got, 0, 21)
	defer func() {
		if t.Failed() {
			log.mu.Lock()
			t.Logf("events: %+v stats %+v", log.events, c.Stats())
			log.mu.Unlock()
		}
	}()
	require.Greater(t, c.Stats().MessagesResent, uint64(0), "the rejected early data was sent again")
	require.True(t, log.has(func(e Event) bool {
		return e.Type == EventDisconnected && strings.Contains(fmt.Sprint(e.Err), "0-RTT")
	}))
}

func TestGoAwayMovesClientToFallbackWithoutLoss(t *testing.T) {
	rec := newRecorder()
	a := newRestartable(t, rec)
	b := newRestartable(t, rec)
	var log eventLog
	ctx := testCtx(t)
	cfg := fastConfig(t, &log)
	cfg.Fallback = []string{b.addr}
	c, err := Dial(ctx, a.addr, testClientTLS(t), cfg)
	require.NoError(t, err)
	defer c.Close()
	ch, err := c.Channel(ctx, "jobs")
	require.NoError(t, err)
	for i := range 100 {
		require.NoError(t, ch.Send(ctx, seq(i)))
	}
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return a.srv.ActiveSessions() == 1 }, 10*time.Second, time.Millisecond)
	shutdown := make(chan error, 1)
	go func() { shutdown <- a.srv.Shutdown(ctx) }()
	for i := 100; i < 300; i++ {
		require.NoError(t, ch.Send(ctx, seq(i)))
	}
	require.NoError(t, <-shutdown, "the client left when asked")
	defer func() {
		if t.Failed() {
			log.mu.Lock()
			t.Logf("events: %+v stats %+v", log.events, c.Stats())
			log.mu.Unlock()
		}
	}()
	got := rec.waitFor(t, "jobs", 300)
	seen := make(map[int]int)
	for _, v := range got {
		seen[v]++
	}
	for i := range 300 {
		require.Equal(t, 1, seen[i], "message %d exactly once", i)
	}
	waitStatus(t, c, StatusConnected)
	require.Equal(t, b.addr, c.Conn().RemoteAddr().String())
}

func TestCloseReportsUndeliveredBufferedMessages(t *testing.T) {
	rs := newRestartable(t, newRecorder())
	var log eventLog
	ctx := testCtx(t)
	c, err := Dial(ctx, rs.addr, testClientTLS(t), fastConfig(t, &log))
	require.NoError(t, err)
	ch, err := c.Channel(ctx, "x")
	require.NoError(t, err)
	rs.kill()
	waitStatus(t, c, StatusReconnecting)
	for i := range 7 {
		require.NoError(t, ch.Send(ctx, seq(i)))
	}
	err = c.Close()
	var ue *UndeliveredError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, 7, ue.Messages)
	require.Equal(t, uint64(7), c.Stats().MessagesFailed)
	require.ErrorIs(t, ch.Send(ctx, seq(8)), ErrClosed)
	require.Equal(t, err, c.Close(), "Close is idempotent")
	rs.start()
}

func TestTrySendFailsWhenReconnectBufferFull(t *testing.T) {
	rs := newRestartable(t, newRecorder())
	var log eventLog
	ctx := testCtx(t)
	cfg := fastConfig(t, &log)
	cfg.ReconnectBufferSize = 1000
	c, err := Dial(ctx, rs.addr, testClientTLS(t), cfg)
	require.NoError(t, err)
	defer c.Close()
	ch, err := c.Channel(ctx, "x")
	require.NoError(t, err)
	rs.kill()
	waitStatus(t, c, StatusReconnecting)
	require.NoError(t, ch.TrySend(make([]byte, 600)))
	require.ErrorIs(t, ch.TrySend(make([]byte, 600)), ErrBufferFull)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, ch.Send(short, make([]byte, 600)), context.DeadlineExceeded)
	rs.start()
}

func TestSendWithRetryReportsAttempts(t *testing.T) {
	rs := newRestartable(t, newRecorder())
	var log eventLog
	ctx := testCtx(t)
	cfg := fastConfig(t, &log)
	cfg.RetryAttempts = 3
	c, err := Dial(ctx, rs.addr, testClientTLS(t), cfg)
	require.NoError(t, err)
	defer c.Close()
	ch, err := c.Channel(ctx, "x")
	require.NoError(t, err)
	require.NoError(t, ch.SendWithRetry(ctx, seq(1)))

	rs.kill()
	waitStatus(t, c, StatusReconnecting)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err = ch.SendWithRetry(short, seq(2))
	var re *RetryError
	require.ErrorAs(t, err, &re)
	require.GreaterOrEqual(t, re.Attempts, 1)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	rs.start()
}

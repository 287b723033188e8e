package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// shutdownRun is one run of clients sending while the server shuts down.
type shutdownRun struct {
	Clients   int
	SendEvery time.Duration // pause between two sends of one client
	Before    time.Duration // sending before Shutdown starts
	Deadline  time.Duration // Shutdown's context
}

// shutdownTally is what one run counted, summed over its clients.
type shutdownTally struct {
	Accepted, Handled, InDoubt, Failed uint64
	ShutdownErr                        error
	ShutdownAfterLast                  time.Duration // Shutdown's return after the last message handled
	Sessions                           uint64        // sessions the server accepted
}

// handledLog records, per client, the sequence numbers the server handled.
type handledLog struct {
	mu   sync.Mutex
	seen map[int]map[int]int
	last time.Time
}

func (h *handledLog) HandleMessage(_ context.Context, _ *session.Session, m session.Message) {
	id, n, ok := strings.Cut(string(m.Data), ":")
	c, err1 := strconv.Atoi(id)
	s, err2 := strconv.Atoi(n)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = time.Now()
	if !ok || err1 != nil || err2 != nil {
		c, s = -1, -1
	}
	if h.seen[c] == nil {
		h.seen[c] = make(map[int]int)
	}
	h.seen[c][s]++
}

// sender is one client sending numbered messages until told to stop.
type sender struct {
	id       int
	c        *Client
	accepted map[int]bool
	closeErr error
}

func (s *sender) loop(ctx context.Context, ch *Channel, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; i < 100000; i++ {
		if ch.Send(ctx, fmt.Appendf(nil, "%d:%d", s.id, i)) == nil {
			s.accepted[i] = true
		}
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runShutdown starts a server and run.Clients clients that send while the
// server shuts down, and checks the delivery guarantee for every client:
// every accepted message is handled at most once, or counted in doubt or
// failed; a handled message is never counted failed; nothing not accepted is
// handled.
func runShutdown(t *testing.T, run shutdownRun, clientCfg func(*Config)) shutdownTally {
	t.Helper()
	ctx := testCtx(t)
	log := &handledLog{seen: make(map[int]map[int]int)}
	srv, err := session.NewServer(&session.Config{Transport: transport.Config{Allow0RTT: true}}, log)
	require.NoError(t, err)
	serverTLS, clientTLS := testTLS(t)
	ln, err := transport.Listen("127.0.0.1:0", serverTLS, &transport.Config{Allow0RTT: true})
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()

	senders := make([]*sender, run.Clients)
	var dials sync.WaitGroup
	slots := make(chan struct{}, 16) // a few handshakes at a time on a small machine
	for i := range senders {
		cfg := &Config{
			// A connection the closing server's listener dropped in its
			// handshake gets no CONNECTION_CLOSE: Close waits this long.
			Transport: transport.Config{HandshakeTimeout: 10 * time.Second, CloseTimeout: 2 * time.Second},
			Backoff:   Backoff{InitialDelay: 50 * time.Millisecond, MaxDelay: time.Second},
		}
		if clientCfg != nil {
			clientCfg(cfg)
		}
		s := &sender{id: i, accepted: make(map[int]bool)}
		senders[i] = s
		dials.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			c, err := Dial(ctx, addr, clientTLS, cfg)
			if err != nil {
				t.Errorf("client %d: %v", s.id, err)
				return
			}
			s.c = c
		})
	}
	dials.Wait()
	if t.Failed() {
		t.FailNow()
	}
	stop := make(chan struct{})
	var sending sync.WaitGroup
	for _, s := range senders {
		ch, err := s.c.Channel(ctx, "load")
		require.NoError(t, err)
		sending.Go(func() { s.loop(ctx, ch, run.SendEvery, stop) })
	}
	// Wall clock: the clients send over real sockets for this long first,
	// which a synctest bubble cannot hold.
	time.Sleep(run.Before)
	sctx, cancel := context.WithTimeout(ctx, run.Deadline)
	var tally shutdownTally
	tally.ShutdownErr = srv.Shutdown(sctx)
	returned := time.Now()
	cancel()
	close(stop)
	sending.Wait()
	require.ErrorIs(t, <-served, session.ErrServerClosed)
	var closing sync.WaitGroup
	for _, s := range senders {
		closing.Go(func() { s.closeErr = s.c.Close() })
	}
	closing.Wait()

	log.mu.Lock()
	defer log.mu.Unlock()
	tally.ShutdownAfterLast = returned.Sub(log.last)
	tally.Sessions = srv.Stats().SessionsAccepted
	require.Empty(t, log.seen[-1], "malformed messages handled")
	for _, s := range senders {
		st := s.c.Stats()
		undelivered := 0
		var ue *UndeliveredError
		if errors.As(s.closeErr, &ue) {
			undelivered = ue.Messages
		}
		require.Equal(t, st.MessagesFailed, uint64(undelivered), "client %d: Stats.MessagesFailed is what Close reported undelivered", s.id)
		handled := 0
		for n, times := range log.seen[s.id] {
			require.True(t, s.accepted[n], "client %d: message %d handled but never accepted", s.id, n)
			require.Equal(t, 1, times, "client %d: message %d handled %d times", s.id, n, times)
			handled++
		}
		accepted := len(s.accepted)
		missing := uint64(accepted - handled)
		require.LessOrEqual(t, missing, st.MessagesInDoubt+st.MessagesFailed,
			"client %d: %d accepted, %d handled, %d in doubt, %d failed: messages lost uncounted (close: %v)",
			s.id, accepted, handled, st.MessagesInDoubt, st.MessagesFailed, s.closeErr)
		require.GreaterOrEqual(t, missing, st.MessagesFailed, "client %d: a handled message was counted failed", s.id)
		tally.Accepted += uint64(accepted)
		tally.Handled += uint64(handled)
		tally.InDoubt += st.MessagesInDoubt
		tally.Failed += st.MessagesFailed
	}
	return tally
}

// Clients keep sending while the server shuts down, given time to drain,
// and those that got GOAWAY reconnect: Shutdown returns nil (the clients do
// not hold the drain open), and every message Send accepted is handled or
// counted. Then the same with a deadline that cuts the drain short: what the
// server could not read is counted in doubt by the clients.
func TestShutdownAccountsForEveryAcceptedMessage(t *testing.T) {
	for i := range 2 {
		tl := runShutdown(t, shutdownRun{Clients: 50, SendEvery: 10 * time.Millisecond, Before: 100 * time.Millisecond, Deadline: time.Minute}, nil)
		require.NoError(t, tl.ShutdownErr, "run %d: the clients left when asked", i)
		t.Logf("run %d: %+v", i, tl)
	}
	tl := runShutdown(t, shutdownRun{Clients: 50, SendEvery: 10 * time.Millisecond, Before: 100 * time.Millisecond, Deadline: 5 * time.Millisecond}, nil)
	t.Logf("cut short: %+v", tl)
}

// drainingServer runs a session server and one raw connection that ignores
// GOAWAY, so that a Shutdown started on the server drains until the test
// lets the holder go: it returns the server's address, a function that
// starts Shutdown, and one that lets the holder leave and returns what
// Shutdown returned.
func drainingServer(t *testing.T, h session.Handler) (srv *session.Server, addr string, start func(), finish func() error) {
	t.Helper()
	ctx := testCtx(t)
	srv, addr = startTestServer(t, nil, h)
	_, clientTLS := testTLS(t)
	holder, err := transport.Dial(ctx, addr, clientTLS, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = holder.CloseWithError(transport.CodeNoError, "") })
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 1 }, 10*time.Second, time.Millisecond)
	done := make(chan error, 1)
	start = func() {
		go func() { done <- srv.Shutdown(ctx) }()
		select {
		case <-holder.GoAwayReceived():
		case <-ctx.Done():
			t.Fatal("no GOAWAY")
		}
	}
	finish = func() error {
		require.NoError(t, holder.Close())
		return <-done
	}
	return srv, addr, start, finish
}

func reconnectDelays(log *eventLog) []time.Duration {
	log.mu.Lock()
	defer log.mu.Unlock()
	var d []time.Duration
	for _, e := range log.events {
		if e.Type == EventReconnecting {
			d = append(d, e.Delay)
		}
	}
	return d
}

// A client told to go away by the only server it knows waits its backoff
// delay before it dials that server again, instead of coming straight back
// to the drain; the server's Shutdown then finishes as soon as its other
// session leaves.
func TestClientWaitsBeforeReturningToDrainingServer(t *testing.T) {
	rec := newRecorder()
	srv, addr, start, finish := drainingServer(t, rec)
	ctx := testCtx(t)
	var log eventLog
	_, clientTLS := testTLS(t)
	c, err := Dial(ctx, addr, clientTLS, &Config{
		Backoff: Backoff{MaxDelay: time.Hour, Delay: func(int) time.Duration { return time.Hour }},
		OnEvent: log.add,
	})
	require.NoError(t, err)
	ch, err := c.Channel(ctx, "jobs")
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, ch.Send(ctx, seq(i)))
	}
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 2 }, 10*time.Second, time.Millisecond)

	start()
	require.Eventually(t, func() bool { return len(reconnectDelays(&log)) > 0 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []time.Duration{time.Hour}, reconnectDelays(&log), "the client waits its backoff delay")
	require.NoError(t, finish(), "Shutdown ends when the sessions leave")
	requireSequence(t, rec.got("jobs"), 0, 10)
	require.Equal(t, uint64(2), srv.Stats().SessionsAccepted, "the client did not come back during the drain")
	require.NoError(t, c.Close())
	require.Zero(t, c.Stats().MessagesInDoubt)
}

// A GOAWAY that arrives right after connecting (the server is still
// draining) counts as a failed attempt: each wait is longer than the last,
// so that the client does not spin on a server that is going away.
func TestGoAwayAtConnectBacksOffFurther(t *testing.T) {
	_, addr, start, finish := drainingServer(t, newRecorder())
	start()
	ctx := testCtx(t)
	var log eventLog
	_, clientTLS := testTLS(t)
	step := 200 * time.Millisecond
	c, err := Dial(ctx, addr, clientTLS, &Config{
		Backoff: Backoff{MaxDelay: time.Hour, Delay: func(n int) time.Duration { return time.Duration(n+1) * step }},
		OnEvent: log.add,
	})
	require.NoError(t, err)
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return len(reconnectDelays(&log)) >= 3 }, 30*time.Second, time.Millisecond)
	require.Equal(t, []time.Duration{step, 2 * step, 3 * step}, reconnectDelays(&log)[:3])
	require.NoError(t, c.Close())
	require.NoError(t, finish())
}

package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// poolTestCtx bounds a pool test.
func poolTestCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newTestPool makes a pool to addr and closes it at cleanup, before the
// server (cleanups run last-in, first-out).
func newTestPool(t *testing.T, addr string, cfg *PoolConfig) *Pool {
	t.Helper()
	_, cli := testTLS(t)
	p, err := NewPool(poolTestCtx(t), addr, cli, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

// connEnded waits until c's Context ends (it ends shortly after the QUIC
// connection closes) and returns why it ended.
func connEnded(t *testing.T, c *transport.Conn) error {
	t.Helper()
	select {
	case <-c.Context().Done():
		return context.Cause(c.Context())
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not end")
		return nil
	}
}

// fastBackoff keeps re-dials quick in tests.
var fastBackoff = Backoff{InitialDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond}

// echoOnce sends msg on a new channel of c and checks that the echo server
// sends it back. name must be new on c: the server keeps a channel's name
// until the connection ends.
func echoOnce(ctx context.Context, c *transport.Conn, name string, msg []byte) error {
	ch, err := c.OpenChannel(ctx, name)
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Send(ctx, msg); err != nil {
		return err
	}
	got, err := ch.Receive(ctx)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo on %s: got %q, want %q", name, got, msg)
	}
	return nil
}

func TestPoolAcquiredConnectionCarriesARequestAndItsEcho(t *testing.T) {
	srv, addr := startEchoServer(t, nil)
	p := newTestPool(t, addr, &PoolConfig{Size: 3})
	ctx := poolTestCtx(t)
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 3 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, PoolStats{Size: 3, Idle: 3, Dials: 3}, p.Stats())

	pc, err := p.Acquire(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, p.Stats().InUse)
	require.NoError(t, echoOnce(ctx, pc.Conn(), "greetings", []byte("hello over the pool")))
	pc.Release()
	pc.Release()
	require.Equal(t, PoolStats{Size: 3, Idle: 3, Dials: 3}, p.Stats(), "a second Release changes nothing")
}

func TestPoolConnectionIsExclusiveUntilReleased(t *testing.T) {
	_, addr := startEchoServer(t, nil)
	p := newTestPool(t, addr, &PoolConfig{Size: 2})
	ctx := poolTestCtx(t)

	a, err := p.Acquire(ctx)
	require.NoError(t, err)
	b, err := p.Acquire(ctx)
	require.NoError(t, err)
	require.NotEqual(t, a.Conn().SessionID(), b.Conn().SessionID())

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = p.Acquire(short)
	require.ErrorIs(t, err, context.DeadlineExceeded, "both connections are held")

	got := make(chan *PooledConn, 1)
	go func() {
		pc, err := p.Acquire(ctx)
		if err != nil {
			pc = nil
		}
		got <- pc
	}()
	b.Release()
	c := <-got
	require.NotNil(t, c)
	require.Same(t, b.Conn(), c.Conn(), "the waiter gets the released connection")
	a.Release()
	c.Release()
}

func TestPoolAcquireWithExpiredContextFails(t *testing.T) {
	_, addr := startEchoServer(t, nil)
	p := newTestPool(t, addr, &PoolConfig{Size: 1})
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := p.Acquire(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "even with an idle connection")
	require.Equal(t, 1, p.Stats().Idle)
}

// The pool must never hand out a connection whose Context had ended when
// Acquire returned. The killer only kills connections it holds itself, and
// releases each only once its Context has ended, so a connection a worker
// acquires can die only after Acquire returned if something else killed it;
// nothing else does, so the check at Acquire is exact.
func TestPoolNeverHandsOutADeadConnectionUnderChurn(t *testing.T) {
	srv, addr := startEchoServer(t, nil)
	// The workers run at least minIterations and go on until the killer
	// has made all its kills (at most maxIterations), so that the kills
	// always happen under churn however slow the machine is.
	const size, workers, minIterations, maxIterations, kills = 4, 64, 2000, 200_000, 30
	p := newTestPool(t, addr, &PoolConfig{Size: size, Backoff: fastBackoff})
	ctx := poolTestCtx(t)

	var killed sync.Map // *transport.Conn -> how it was killed
	killerDone := make(chan struct{})
	var killer errgroup.Group
	killer.Go(func() error {
		defer close(killerDone)
		for k := range kills {
			if err := killOne(ctx, p, srv, &killed, k); err != nil {
				return err
			}
		}
		return nil
	})

	var next atomic.Int64
	var workersGroup errgroup.Group
	for range workers {
		workersGroup.Go(func() error {
			for i := next.Add(1); i <= maxIterations; i = next.Add(1) {
				if i > minIterations && isDone(killerDone) {
					return nil
				}
				if err := churnOnce(ctx, p, &killed, i); err != nil {
					return err
				}
			}
			return nil
		})
	}

	require.NoError(t, workersGroup.Wait())
	require.NoError(t, killer.Wait())
	iterations := next.Load()

	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool {
		st := p.Stats()
		return st.Idle == size && st.Replaced == uint64(kills)
	}, 10*time.Second, 5*time.Millisecond, "every killed connection is replaced: %+v after %d kills", p.Stats(), kills)
	killed.Range(func(k, _ any) bool {
		connEnded(t, k.(*transport.Conn))
		return true
	})
	st := p.Stats()
	t.Logf("%d iterations, %d kills: %+v", iterations, kills, st)
	require.Equal(t, uint64(size+kills), st.Dials)
	require.Zero(t, st.DialFailures)
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// churnOnce is one worker iteration of
// TestPoolNeverHandsOutADeadConnectionUnderChurn: acquire, check that the
// connection is alive and was not killed, echo on every 16th, release.
func churnOnce(ctx context.Context, p *Pool, killed *sync.Map, i int64) error {
	pc, err := p.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("iteration %d: %w", i, err)
	}
	c := pc.Conn()
	if c.Context().Err() != nil {
		return fmt.Errorf("iteration %d: Acquire returned a connection that had ended: %w", i, context.Cause(c.Context()))
	}
	if how, ok := killed.Load(c); ok {
		return fmt.Errorf("iteration %d: Acquire returned a connection killed (%s) before its release", i, how)
	}
	if i%16 == 0 {
		if err := echoOnce(ctx, c, fmt.Sprintf("echo-%d", i), []byte(fmt.Sprintf("message %d", i))); err != nil {
			return fmt.Errorf("iteration %d: %w", i, err)
		}
	}
	pc.Release()
	return nil
}

// killOne is the killer's k-th kill: it acquires a connection and closes
// it, has the server disconnect it, or discards it, in turn, and releases
// a killed one only once its Context has ended.
func killOne(ctx context.Context, p *Pool, srv *session.Server, killed *sync.Map, k int) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * time.Millisecond):
	}
	pc, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	c := pc.Conn()
	how := [...]string{"closed by the client", "disconnected by the server", "discarded"}[k%3]
	killed.Store(c, how)
	switch k % 3 {
	case 0:
		_ = c.CloseWithError(transport.CodeInternalError, "test kill")
	case 1:
		// A fresh connection may not be a session yet.
		if srv.Disconnect(c.SessionID(), transport.CodeDisconnected, "test kill") != nil {
			_ = c.CloseWithError(transport.CodeInternalError, "test kill")
		}
	case 2:
		pc.Discard()
		return nil
	}
	select {
	case <-c.Context().Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	pc.Release()
	return nil
}

func TestPoolReplacesIdleConnectionsTheServerDropped(t *testing.T) {
	srv, addr := startEchoServer(t, nil)
	p := newTestPool(t, addr, &PoolConfig{Size: 3, Backoff: fastBackoff})
	ctx := poolTestCtx(t)
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 3 }, 10*time.Second, 5*time.Millisecond)

	old := map[transport.SessionID]bool{}
	for _, s := range srv.Sessions() {
		old[s.ID()] = true
		require.NoError(t, s.Disconnect(transport.CodeDisconnected, "operator"))
	}
	require.Eventually(t, func() bool {
		st := p.Stats()
		return st.Replaced == 3 && st.Idle == 3
	}, 10*time.Second, 5*time.Millisecond, "replaced without any Acquire: %+v", p.Stats())

	var held []*PooledConn
	for range 3 {
		pc, err := p.Acquire(ctx)
		require.NoError(t, err)
		require.NoError(t, pc.Conn().Context().Err())
		require.False(t, old[pc.Conn().SessionID()], "a dropped connection came back")
		held = append(held, pc)
	}
	for _, pc := range held {
		pc.Release()
	}
}

// A connection that ends while idle races the slot's watcher, which takes
// it out, against the next Acquire, which must check it too.
func TestPoolDoesNotHandOutAConnectionThatEndedIdle(t *testing.T) {
	_, addr := startEchoServer(t, nil)
	p := newTestPool(t, addr, &PoolConfig{Size: 1, Backoff: fastBackoff})
	ctx := poolTestCtx(t)
	for round := range 30 {
		pc, err := p.Acquire(ctx)
		require.NoError(t, err)
		idle := pc.Conn()
		pc.Release()
		require.NoError(t, idle.CloseWithError(transport.CodeInternalError, "killed while idle"))
		connEnded(t, idle)

		pc, err = p.Acquire(ctx)
		require.NoError(t, err)
		require.NotSame(t, idle, pc.Conn(), "round %d", round)
		require.NoError(t, pc.Conn().Context().Err(), "round %d", round)
		pc.Release()
	}
}

func TestPoolDiscardClosesAndReplacesTheConnection(t *testing.T) {
	_, addr := startEchoServer(t, nil)
	p := newTestPool(t, addr, &PoolConfig{Size: 1, Backoff: fastBackoff})
	ctx := poolTestCtx(t)

	pc, err := p.Acquire(ctx)
	require.NoError(t, err)
	bad := pc.Conn()
	pc.Discard()
	pc.Release()

	next, err := p.Acquire(ctx)
	require.NoError(t, err)
	require.NotSame(t, bad, next.Conn())
	require.NoError(t, next.Conn().Context().Err())
	next.Release()
	connEnded(t, bad)
	require.Equal(t, uint64(1), p.Stats().Replaced)
}

// A server at its session limit completes the handshake and then closes the
// connection with CodeTooManySessions. The pool counts those as failed dials
// and, with MaxAttempts set, stops re-dialling after that many.
func TestPoolCountsRefusedSessionsAsFailedDialsAndGivesUp(t *testing.T) {
	srv, addr := startEchoServer(t, &session.Config{MaxSessions: 3})
	const maxAttempts = 3
	p := newTestPool(t, addr, &PoolConfig{Size: 5, Backoff: Backoff{InitialDelay: 2 * time.Millisecond, MaxDelay: 10 * time.Millisecond, MaxAttempts: maxAttempts}})
	ctx := poolTestCtx(t)

	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return p.Stats().Failed == 2 }, 10*time.Second, 5*time.Millisecond, "%+v", p.Stats())
	// Two slots were refused on the first dial and on each of their re-dials.
	refusals := 2 * (1 + maxAttempts)
	require.Equal(t, PoolStats{Size: 5, Idle: 3, Failed: 2, Dials: uint64(3 + refusals), DialFailures: uint64(refusals)}, p.Stats())
	require.Equal(t, uint64(refusals), srv.Stats().SessionsRefused)

	var held []*PooledConn
	for range 3 {
		pc, err := p.Acquire(ctx)
		require.NoError(t, err)
		_, admitted := srv.Session(pc.Conn().SessionID())
		require.True(t, admitted)
		held = append(held, pc)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err := p.Acquire(short)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	for _, pc := range held {
		pc.Release()
	}
}

// Server.Shutdown sends GOAWAY and waits for clients to leave; the pool
// closes its connections gracefully, so the shutdown drains instead of
// timing out.
func TestPoolLeavesAServerThatSendsGoAway(t *testing.T) {
	srv, addr := startEchoServer(t, nil)
	p := newTestPool(t, addr, &PoolConfig{Size: 3, Backoff: fastBackoff})
	ctx := poolTestCtx(t)
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 3 }, 10*time.Second, 5*time.Millisecond)

	pc, err := p.Acquire(ctx)
	require.NoError(t, err)
	held := pc.Conn()
	shutdown, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(shutdown) }()
	<-held.GoAwayReceived()
	pc.Release()
	require.NoError(t, <-done, "the server drained: every pooled connection left")
	require.Eventually(t, func() bool { return p.Stats().Replaced >= 3 }, 10*time.Second, 5*time.Millisecond)
	connEnded(t, held)
}

func TestPoolCloseWaitsForHeldConnectionThenClosesIt(t *testing.T) {
	_, addr := startEchoServer(t, nil)
	p := newTestPool(t, addr, &PoolConfig{Size: 1})
	ctx := poolTestCtx(t)
	pc, err := p.Acquire(ctx)
	require.NoError(t, err)

	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	_, err = p.Acquire(ctx)
	require.ErrorIs(t, err, ErrPoolClosed, "Close wakes waiting callers")
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a connection was held", err)
	default:
	}
	require.NoError(t, pc.Conn().Context().Err(), "the holder keeps a working connection")

	pc.Release()
	require.NoError(t, <-closed)
	var ce *transport.ConnError
	require.ErrorAs(t, connEnded(t, pc.Conn()), &ce)
	require.Equal(t, transport.CodeNoError, ce.Code, "closed gracefully")
	require.NoError(t, p.Close(), "Close is idempotent")
	pc.Release()
	require.Equal(t, PoolStats{Size: 1, Dials: 1}, p.Stats())
}

func TestPoolCloseClosesConnectionsHeldPastCloseTimeout(t *testing.T) {
	_, addr := startEchoServer(t, nil)
	p := newTestPool(t, addr, &PoolConfig{Size: 2, CloseTimeout: 20 * time.Millisecond})
	pc, err := p.Acquire(poolTestCtx(t))
	require.NoError(t, err)

	require.NoError(t, p.Close())
	var ce *transport.ConnError
	require.ErrorAs(t, connEnded(t, pc.Conn()), &ce)
	require.Equal(t, transport.CodeGoingAway, ce.Code)
	require.False(t, ce.Remote)
	pc.Release()
	_, err = p.Acquire(context.Background())
	require.ErrorIs(t, err, ErrPoolClosed)
}

// Shutdown waits for a held connection until its context ends, whatever
// the CloseTimeout, and closes it under its holder then.
func TestPoolShutdownClosesHeldConnectionsWhenItsContextEnds(t *testing.T) {
	_, addr := startEchoServer(t, nil)
	p := newTestPool(t, addr, &PoolConfig{Size: 1, CloseTimeout: time.Hour})
	pc, err := p.Acquire(poolTestCtx(t))
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(poolTestCtx(t))
	shut := make(chan error, 1)
	go func() { shut <- p.Shutdown(ctx) }()
	_, err = p.Acquire(poolTestCtx(t))
	require.ErrorIs(t, err, ErrPoolClosed)
	require.Empty(t, shut, "Shutdown waits for the holder")
	cancel()
	require.NoError(t, <-shut)
	var ce *transport.ConnError
	require.ErrorAs(t, connEnded(t, pc.Conn()), &ce)
	require.Equal(t, transport.CodeGoingAway, ce.Code)
	pc.Release()
	require.NoError(t, p.Close(), "Close after Shutdown returns its result")
}

func TestNewPoolFailsWhenNoConnectionComesUp(t *testing.T) {
	_, addr := startEchoServer(t, nil)
	untrusting := &tls.Config{ServerName: "localhost"} // system roots do not know the test CA
	p, err := NewPool(poolTestCtx(t), addr, untrusting, &PoolConfig{Size: 3})
	require.Nil(t, p)
	require.ErrorIs(t, err, ErrPoolUnavailable)
	require.ErrorIs(t, err, transport.ErrUntrusted, "the dial error is kept")
	require.ErrorContains(t, err, "0 of 3 dials")
}

func TestNewPoolRejectsBadConfigNamingTheField(t *testing.T) {
	_, cli := testTLS(t)
	for _, tc := range []struct {
		cfg   PoolConfig
		field string
	}{
		{PoolConfig{Size: -1}, "PoolConfig.Size"},
		{PoolConfig{Size: 2, MinHealthy: 3}, "PoolConfig.MinHealthy"},
		{PoolConfig{MinHealthy: -1}, "PoolConfig.MinHealthy"},
		{PoolConfig{DialTimeout: -time.Second}, "PoolConfig.DialTimeout"},
		{PoolConfig{CloseTimeout: -time.Second}, "PoolConfig.CloseTimeout"},
		{PoolConfig{Backoff: Backoff{Factor: 0.5}}, "PoolConfig.Backoff: client: Backoff.Factor"},
	} {
		_, err := NewPool(context.Background(), "127.0.0.1:1", cli, &tc.cfg)
		require.ErrorContains(t, err, tc.field)
	}
	_, err := NewPool(context.Background(), "127.0.0.1:1", nil, nil)
	require.ErrorContains(t, err, "tls.Config")

	c, err := (*PoolConfig)(nil).withDefaults()
	require.NoError(t, err)
	require.Equal(t, DefaultPoolSize, c.Size)
	require.Equal(t, DefaultPoolMinHealthy, c.MinHealthy)
	require.Equal(t, DefaultPoolDialTimeout, c.DialTimeout)
	require.Equal(t, DefaultPoolCloseTimeout, c.CloseTimeout)
	require.Equal(t, DefaultInitialDelay, c.Backoff.InitialDelay)
}

// startSlots runs p's slots with dial, as NewPool does, without requiring any
// dial to succeed.
func startSlots(p *Pool) {
	for _, s := range p.slots {
		p.wg.Add(1)
		go p.runSlot(s, p.ctx, nil)
	}
}

func TestPoolRedialsOnACappedJitteredScheduleAndGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var at []time.Time
		errDown := errors.New("server down")
		cfg, err := (&PoolConfig{Size: 1, Backoff: Backoff{InitialDelay: 100 * time.Millisecond, MaxDelay: 400 * time.Millisecond, MaxAttempts: 5}}).withDefaults()
		require.NoError(t, err)
		p := newPool("test", cfg, func(context.Context) (*transport.Conn, error) {
			mu.Lock()
			at = append(at, time.Now())
			mu.Unlock()
			return nil, errDown
		})
		startSlots(p)

		waiting := make(chan error, 1)
		go func() {
			_, err := p.Acquire(context.Background())
			waiting <- err
		}()
		err = <-waiting
		require.ErrorIs(t, err, ErrPoolUnavailable, "a waiting Acquire learns that the pool gave up")
		require.ErrorIs(t, err, errDown)
		_, err = p.Acquire(context.Background())
		require.ErrorIs(t, err, ErrPoolUnavailable)

		mu.Lock()
		defer mu.Unlock()
		require.Len(t, at, 1+5, "the first dial and MaxAttempts re-dials")
		for i := 1; i < len(at); i++ {
			require.LessOrEqual(t, at[i].Sub(at[i-1]), cfg.Backoff.Ceiling(i-1), "re-dial %d", i)
		}
		require.Equal(t, PoolStats{Size: 1, Failed: 1, Dials: 6, DialFailures: 6}, p.Stats())
		require.NoError(t, p.Close())
	})
}

func TestPoolCloseInterruptsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, err := (&PoolConfig{Size: 3, Backoff: Backoff{InitialDelay: time.Hour, MaxDelay: time.Hour}}).withDefaults()
		require.NoError(t, err)
		var dials atomic.Int64
		p := newPool("test", cfg, func(context.Context) (*transport.Conn, error) {
			dials.Add(1)
			return nil, errors.New("server down")
		})
		startSlots(p)
		synctest.Wait()
		require.Equal(t, int64(3), dials.Load())

		short, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = p.Acquire(short)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "server down", "the timeout says why there was no connection")

		start := time.Now()
		require.NoError(t, p.Close())
		require.Zero(t, time.Since(start), "Close does not wait out the backoff")
		require.Equal(t, PoolStats{Size: 3, Dials: 3, DialFailures: 3}, p.Stats())
	})
}

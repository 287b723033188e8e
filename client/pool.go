package client

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/sync/semaphore"

	"github.com/quicmsg/quicmsg/transport"
)

// Defaults for [PoolConfig]. A zero field in PoolConfig means the default.
const (
	// DefaultPoolSize is how many connections a Pool keeps.
	DefaultPoolSize = 10
	// DefaultPoolMinHealthy is how many of the first dials must succeed for
	// NewPool to return a Pool.
	DefaultPoolMinHealthy = 1
	// DefaultPoolDialTimeout bounds one dial: QUIC and TLS handshakes and the
	// HELLO exchange.
	DefaultPoolDialTimeout = 5 * time.Second
	// DefaultPoolCloseTimeout bounds Pool.Close: how long it waits for held
	// connections to be released, and for connections to close gracefully,
	// before closing them at once.
	DefaultPoolCloseTimeout = 5 * time.Second
)

// Errors returned by a [Pool].
var (
	// ErrPoolClosed is returned by Acquire once the pool is closed.
	ErrPoolClosed = errors.New("client: pool closed")
	// ErrPoolUnavailable is wrapped by NewPool when too few connections came
	// up, and by Acquire once every slot has given up re-dialling
	// (PoolConfig.Backoff.MaxAttempts failures in a row).
	ErrPoolUnavailable = errors.New("client: pool has no usable connection")
)

// PoolConfig configures a [Pool]. The zero value is ready to use: every zero
// field takes its default. A PoolConfig must not be modified after being
// passed to NewPool.
type PoolConfig struct {
	// Size is how many connections the pool keeps to the server.
	// Default DefaultPoolSize (10).
	Size int
	// MinHealthy is how many of the first Size dials must succeed for NewPool
	// to return a pool; the others are re-dialled in the background.
	// Default DefaultPoolMinHealthy (1); at most Size.
	MinHealthy int
	// DialTimeout bounds each dial. Default DefaultPoolDialTimeout (5 s).
	DialTimeout time.Duration
	// CloseTimeout bounds Close (which is Shutdown with this timeout): how
	// long it waits for held connections to be released, and for connections
	// to close gracefully, before it closes them at once.
	// Default DefaultPoolCloseTimeout (5 s).
	CloseTimeout time.Duration
	// Backoff is the re-dial schedule of a connection slot: exponential
	// backoff with full jitter. The zero value re-dials from 100 ms up to
	// 30 s apart for ever; with MaxAttempts set, a slot that fails that many
	// re-dials in a row stays empty until Close.
	Backoff Backoff
	// Transport configures every connection.
	Transport transport.Config
	// QUICTransport, when set, carries every connection over one UDP socket
	// (transport.DialTransport). The caller owns it and closes it after the
	// pool. Default nil: each connection has its own socket, which spreads
	// packet processing across cores.
	QUICTransport *quic.Transport
}

func (c *PoolConfig) withDefaults() (PoolConfig, error) {
	var r PoolConfig
	if c != nil {
		r = *c
	}
	r.Size = cmp.Or(r.Size, DefaultPoolSize)
	r.MinHealthy = cmp.Or(r.MinHealthy, DefaultPoolMinHealthy)
	r.DialTimeout = cmp.Or(r.DialTimeout, DefaultPoolDialTimeout)
	r.CloseTimeout = cmp.Or(r.CloseTimeout, DefaultPoolCloseTimeout)
	switch {
	case r.Size < 0:
		return r, fmt.Errorf("client: PoolConfig.Size %d is negative", r.Size)
	case r.MinHealthy < 0 || r.MinHealthy > r.Size:
		return r, fmt.Errorf("client: PoolConfig.MinHealthy %d is outside 1..Size (%d)", r.MinHealthy, r.Size)
	case r.DialTimeout < 0:
		return r, fmt.Errorf("client: PoolConfig.DialTimeout %s is negative", r.DialTimeout)
	case r.CloseTimeout < 0:
		return r, fmt.Errorf("client: PoolConfig.CloseTimeout %s is negative", r.CloseTimeout)
	}
	b, err := r.Backoff.withDefaults()
	if err != nil {
		return r, fmt.Errorf("client: PoolConfig.Backoff: %w", err)
	}
	r.Backoff = b
	return r, nil
}

// PoolStats are a pool's gauges and counters.
type PoolStats struct {
	Size         int    // connection slots (PoolConfig.Size)
	InUse        int    // connections held between Acquire and Release
	Idle         int    // connections waiting in the pool
	Dialing      int    // slots without a connection: dialling or waiting to re-dial
	Failed       int    // slots that gave up after Backoff.MaxAttempts failures in a row
	Dials        uint64 // dial attempts
	DialFailures uint64 // failed dials, including connections the server refused right after the handshake
	Replaced     uint64 // connections taken out of service (ended, GOAWAY, discarded) and re-dialled
}

type slotState int

const (
	slotDialing slotState = iota // no connection in service: dialling, backing off, or closing the old one
	slotIdle                     // in Pool.idle, ready for Acquire
	slotHeld                     // handed out by Acquire
	slotFailed                   // gave up re-dialling
	slotClosed                   // the pool closed it
)

// poolSlot is one connection place. Its goroutine (Pool.runSlot) is the only
// one that dials for it, so a slot never has two dials in flight; other
// goroutines move it between states under Pool.mu and, when they take its
// connection out of service, tell the goroutine through out.
type poolSlot struct {
	out chan struct{} // capacity 1: the connection left service

	// Guarded by Pool.mu.
	state     slotState
	conn      *transport.Conn
	used      bool // the connection was returned healthy at least once
	discarded bool // the holder reported the connection bad
}

// takeOutLocked moves s out of service and wakes its goroutine, which
// closes the connection and dials a new one.
func (s *poolSlot) takeOutLocked() {
	s.state = slotDialing
	select {
	case s.out <- struct{}{}:
	default:
	}
}

// Pool keeps a fixed number of connections to one server, for spreading
// load across connections and so, on the server, across sessions, whose
// messages are handled one at a time each. Use it when the server's handler
// waits on something slow: N connections are N sessions at work. When the
// handler answers at once, many channels on one connection do more with the
// same cores (BENCHMARKS.md has the figures).
//
// A connection is exclusive to its holder from Acquire to Release: the pool
// hands it to nobody else meanwhile, so the holder may open channels on it
// and use them freely. Callers that want to share one connection between
// goroutines should share a [transport.Conn] and its channels instead.
//
// A connection whose Context has ended is never handed out: Acquire and
// Release check each connection, and every slot watches its idle one, so a
// connection that ends or receives GOAWAY is taken out of service, closed,
// and re-dialled in the background. A connection can still end while held;
// its holder sees the connection's error and should Release it.
//
// A Pool does not resume sessions: it hands out plain connections, whose
// channels belong to their holder, so a connection that ends is replaced by
// a new session, and what its channels had not delivered is its holder's
// to account for ([transport.Channel.Unacked], Unsent, InDoubt), as with
// any [transport.Conn]. For a session that outlives its connections, use a
// [Client].
//
// Close and Shutdown follow the convention of every closable type in
// quicmsg: Shutdown(ctx) is the graceful close, bounded by ctx; Close is
// Shutdown bounded by PoolConfig.CloseTimeout.
//
// Goroutines: a Pool owns one goroutine per slot (runSlot, started by
// NewPool), the only one that dials for the slot, watches its connection and
// closes it. Shutdown stops them through ctx and waits for them with wg.
// All methods are safe for concurrent use.
type Pool struct {
	// Immutable after NewPool.
	addr string
	cfg  PoolConfig
	dial func(ctx context.Context) (*transport.Conn, error)

	// ctx ends when Shutdown begins; it cancels dials and backoff waits.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// stop ends when the graceful part of closing must: when the context
	// of any Shutdown call ends. It bounds the slot goroutines' waits for
	// holders and their graceful closes, those after a GOAWAY included.
	stop       context.Context
	cancelStop context.CancelFunc
	// unavailable ends, with a cause wrapping ErrPoolUnavailable, once
	// every slot has failed.
	unavailable       context.Context
	cancelUnavailable context.CancelCauseFunc
	// idleSem holds one permit per entry of idle: an Acquire that gets a
	// permit is owed one idle connection. It queues waiters in FIFO order.
	idleSem *semaphore.Weighted

	mu      sync.Mutex  // guards the fields below and every slot's state
	slots   []*poolSlot // one per PoolConfig.Size; each owned by its runSlot goroutine
	idle    []*poolSlot // FIFO, so that use rotates over the connections
	closed  bool
	failed  int
	lastErr error
	errs    []error // from closing connections at Close

	dials, dialFailures, replaced atomic.Uint64

	wg        sync.WaitGroup // slot goroutines
	closeOnce sync.Once
	closeErr  error
}

// NewPool dials cfg.Size connections to the quicmsg server at addr, all at
// once, and returns when every dial has finished. It fails, wrapping
// ErrPoolUnavailable and the first dial error, unless cfg.MinHealthy of them
// succeeded; slots whose dial failed are re-dialled in the background on
// cfg.Backoff's schedule. ctx bounds the first dials only. tlsConf verifies
// the server (see package certs); cfg may be nil for the defaults.
//
// A connection that the server closes with CodeTooManySessions or
// CodeGoingAway before it was ever used counts as a failed dial once the
// refusal arrives: the server completes the handshake before it admits a
// session, so such a dial first looks like a success.
func NewPool(ctx context.Context, addr string, tlsConf *tls.Config, cfg *PoolConfig) (*Pool, error) {
	if tlsConf == nil {
		return nil, errors.New("client: NewPool needs a *tls.Config (see package certs)")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dial := func(ctx context.Context) (*transport.Conn, error) {
		if c.QUICTransport != nil {
			return transport.DialTransport(ctx, c.QUICTransport, addr, tlsConf, &c.Transport)
		}
		return transport.Dial(ctx, addr, tlsConf, &c.Transport)
	}
	p := newPool(addr, c, dial)
	first := make(chan error, c.Size)
	for _, s := range p.slots {
		p.wg.Add(1)
		go p.runSlot(s, ctx, first)
	}
	var up int
	var firstErr error
	for range c.Size {
		switch err := <-first; {
		case err == nil:
			up++
		case firstErr == nil:
			firstErr = err
		}
	}
	if up < c.MinHealthy {
		_ = p.Close()
		return nil, fmt.Errorf("%w: %d of %d dials to %s succeeded, %d needed: %w", ErrPoolUnavailable, up, c.Size, addr, c.MinHealthy, firstErr)
	}
	return p, nil
}

// newPool makes a pool whose slots are not running yet.
func newPool(addr string, cfg PoolConfig, dial func(context.Context) (*transport.Conn, error)) *Pool {
	p := &Pool{addr: addr, cfg: cfg, dial: dial, idleSem: semaphore.NewWeighted(int64(cfg.Size))}
	// Every permit starts taken: a permit is released when a connection
	// becomes idle.
	p.idleSem.TryAcquire(int64(cfg.Size))
	p.ctx, p.cancel = context.WithCancelCause(context.Background())
	p.stop, p.cancelStop = context.WithCancel(context.Background())
	p.unavailable, p.cancelUnavailable = context.WithCancelCause(context.Background())
	p.slots = make([]*poolSlot, cfg.Size)
	for i := range p.slots {
		p.slots[i] = &poolSlot{out: make(chan struct{}, 1)}
	}
	return p
}

// Acquire returns a healthy connection for the caller's exclusive use until
// [PooledConn.Release]. It waits, in FIFO order with other callers, until a
// connection is idle or ctx ends. It fails with ctx.Err() (wrapped with the
// last dial error when the pool has no live connection), with ErrPoolClosed
// once the pool is closed, and with an error wrapping ErrPoolUnavailable once
// every slot has given up re-dialling.
func (p *Pool) Acquire(ctx context.Context) (*PooledConn, error) {
	for {
		if err := p.waitIdle(ctx); err != nil {
			return nil, err
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrPoolClosed
		}
		s := p.idle[0]
		p.idle = slices.Delete(p.idle, 0, 1)
		if healthy(s.conn) {
			s.state = slotHeld
			pc := &PooledConn{p: p, s: s, conn: s.conn}
			p.mu.Unlock()
			return pc, nil
		}
		// The permit goes with the dead connection; wait for another.
		s.takeOutLocked()
		p.mu.Unlock()
	}
}

// waitIdle takes one permit of idleSem, that is, a claim on one entry of
// p.idle.
func (p *Pool) waitIdle(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.idleSem.TryAcquire(1) {
		return nil
	}
	if err := p.ctx.Err(); err != nil {
		return ErrPoolClosed
	}
	if p.unavailable.Err() != nil {
		return context.Cause(p.unavailable)
	}
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopClosed := context.AfterFunc(p.ctx, func() { cancel(ErrPoolClosed) })
	defer stopClosed()
	stopUnavailable := context.AfterFunc(p.unavailable, func() { cancel(context.Cause(p.unavailable)) })
	defer stopUnavailable()
	err := p.idleSem.Acquire(wctx, 1)
	if err == nil {
		return nil
	}
	if ctx.Err() == nil {
		return context.Cause(wctx)
	}
	p.mu.Lock()
	live := len(p.idle)
	for _, s := range p.slots {
		if s.state == slotHeld {
			live++
		}
	}
	last := p.lastErr
	p.mu.Unlock()
	if live == 0 && last != nil {
		return fmt.Errorf("client: pool has no live connection to %s (last dial error: %w): %w", p.addr, last, ctx.Err())
	}
	return ctx.Err()
}

// healthy reports whether c may be handed out: it has not ended and its peer
// has not asked it to go away.
func healthy(c *transport.Conn) bool {
	if c.Context().Err() != nil {
		return false
	}
	select {
	case <-c.GoAwayReceived():
		return false
	default:
		return true
	}
}

// put returns pc's connection to the pool, or takes it out of service.
func (p *Pool) put(pc *PooledConn, discard bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pc.released {
		return
	}
	pc.released = true
	s := pc.s
	if s.state != slotHeld || s.conn != pc.conn {
		return // Close already closed it under the holder.
	}
	if p.closed || discard || !healthy(pc.conn) {
		s.discarded = discard
		s.takeOutLocked()
		return
	}
	s.used = true
	s.state = slotIdle
	p.idle = append(p.idle, s)
	p.idleSem.Release(1)
}

// Stats returns the pool's gauges and counters.
func (p *Pool) Stats() PoolStats {
	st := PoolStats{
		Size:         p.cfg.Size,
		Dials:        p.dials.Load(),
		DialFailures: p.dialFailures.Load(),
		Replaced:     p.replaced.Load(),
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.slots {
		switch s.state {
		case slotDialing:
			st.Dialing++
		case slotIdle:
			st.Idle++
		case slotHeld:
			st.InUse++
		case slotFailed:
			st.Failed++
		}
	}
	return st
}

// Shutdown closes the pool gracefully: Acquire fails with ErrPoolClosed
// from then on, dials in progress are cancelled, and idle connections are
// closed gracefully. Connections still held are closed gracefully when
// released. Shutdown waits for that until ctx ends, then closes what is
// left at once: held connections under their holders with CodeGoingAway.
// It returns once every connection is closed and every goroutine of the
// pool has finished, with the errors of the graceful closes (for example
// transport.ErrUnflushed), if any. It is idempotent; every call waits for
// the first to finish and returns its result, and a later call whose ctx
// ends first cuts the graceful part short.
func (p *Pool) Shutdown(ctx context.Context) error {
	stop := context.AfterFunc(ctx, p.cancelStop)
	defer stop()
	p.closeOnce.Do(func() {
		defer p.cancelStop()
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.cancel(ErrPoolClosed)
		p.wg.Wait()
		p.cancelUnavailable(ErrPoolClosed)
		p.closeErr = errors.Join(p.errs...)
	})
	return p.closeErr
}

// Close is Shutdown bounded by PoolConfig.CloseTimeout.
func (p *Pool) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CloseTimeout)
	defer cancel()
	return p.Shutdown(ctx)
}

// runSlot dials for s until the pool closes or the slot gives up. The
// first dial uses firstCtx and reports to first; later ones use the pool's
// context. The backoff resets once a connection has been used and returned
// healthy, so that a server which accepts connections and drops them at once
// is retried on the same growing schedule as one that does not answer.
func (p *Pool) runSlot(s *poolSlot, firstCtx context.Context, first chan<- error) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		if s.state == slotDialing {
			s.state = slotClosed
		}
		p.mu.Unlock()
	}()
	ctx := firstCtx
	retry := 0
	for {
		conn, err := p.dialOnce(ctx)
		published := err == nil && p.publish(s, conn)
		if first != nil {
			// After publish, so that NewPool returns with the connections
			// that came up idle in the pool.
			first <- err
			first, ctx = nil, p.ctx
		}
		if err == nil && !published {
			return
		}
		if published {
			var used bool
			used, err = p.serve(s, conn)
			if p.ctx.Err() != nil {
				return
			}
			if used {
				retry = 0
			}
		}
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			p.dialFailures.Add(1)
			p.mu.Lock()
			p.lastErr = err
			p.mu.Unlock()
			if p.cfg.Backoff.exhausted(retry) {
				p.giveUp(s, err, retry)
				return
			}
		}
		if !p.sleep(p.cfg.Backoff.next(retry, rand.Int64N)) {
			return
		}
		retry++
	}
}

func (p *Pool) dialOnce(ctx context.Context) (*transport.Conn, error) {
	p.dials.Add(1)
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	return p.dial(ctx)
}

// sleep waits for d unless the pool closes first; it reports whether the
// pool is still open.
func (p *Pool) sleep(d time.Duration) bool {
	if d <= 0 {
		return p.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

func (p *Pool) giveUp(s *poolSlot, err error, retries int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.state = slotFailed
	p.failed++
	if p.failed == len(p.slots) {
		p.cancelUnavailable(fmt.Errorf("%w: every connection to %s failed %d re-dials in a row; last error: %w", ErrPoolUnavailable, p.addr, retries, err))
	}
}

// publish puts conn in service in s, idle. It closes conn and returns false
// if the pool has closed.
func (p *Pool) publish(s *poolSlot, conn *transport.Conn) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = conn.CloseWithError(transport.CodeNoError, "client pool closed")
		return false
	}
	s.conn, s.used, s.discarded = conn, false, false
	s.state = slotIdle
	p.idle = append(p.idle, s)
	p.idleSem.Release(1)
	p.mu.Unlock()
	return true
}

// serve watches s's connection, published by publish, and returns once it
// has left service and been closed. used reports whether the connection was
// returned healthy at least once; refused is non-nil when the server refused
// the connection before it was ever used.
func (p *Pool) serve(s *poolSlot, conn *transport.Conn) (used bool, refused error) {
	ended, goAway := conn.Context().Done(), conn.GoAwayReceived()
	for {
		select {
		case <-s.out:
			return p.retire(s, conn)
		case <-ended:
			ended = nil
			p.takeOutIfIdle(s)
		case <-goAway:
			goAway = nil
			p.takeOutIfIdle(s)
		case <-p.ctx.Done():
			p.shutdownSlot(s, conn)
			return false, nil
		}
	}
}

// takeOutIfIdle takes s's idle connection out of service. If every permit
// for idle connections is already claimed by callers of Acquire, one of them
// will find the connection unhealthy and take it out instead.
func (p *Pool) takeOutIfIdle(s *poolSlot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.state != slotIdle || !p.idleSem.TryAcquire(1) {
		return
	}
	if i := slices.Index(p.idle, s); i >= 0 {
		p.idle = slices.Delete(p.idle, i, i+1)
	}
	s.takeOutLocked()
}

// retire closes a connection taken out of service and says how it ended.
func (p *Pool) retire(s *poolSlot, conn *transport.Conn) (used bool, refused error) {
	p.mu.Lock()
	used, discarded := s.used, s.discarded
	s.conn = nil
	p.mu.Unlock()
	cause := context.Cause(conn.Context())
	switch {
	case cause != nil:
		_ = conn.CloseWithError(transport.CodeNoError, "")
	case discarded:
		_ = conn.CloseWithError(transport.CodeNoError, "discarded by the client pool")
	default:
		// The server sent GOAWAY: leave cleanly, so that it can drain,
		// for the close timeout and no longer than Shutdown allows.
		ctx, cancel := context.WithTimeout(p.stop, p.cfg.CloseTimeout)
		_ = conn.Shutdown(ctx)
		cancel()
	}
	var ce *transport.ConnError
	if !used && errors.As(cause, &ce) && ce.Remote &&
		(ce.Code == transport.CodeTooManySessions || ce.Code == transport.CodeGoingAway) {
		return false, cause
	}
	if p.ctx.Err() == nil {
		p.replaced.Add(1)
	}
	return used, nil
}

// shutdownSlot closes s's connection when the pool closes, waiting until
// Shutdown's context ends for its holder, if any, to release it.
func (p *Pool) shutdownSlot(s *poolSlot, conn *transport.Conn) {
	p.mu.Lock()
	held := s.state == slotHeld
	if s.state == slotIdle {
		if i := slices.Index(p.idle, s); i >= 0 {
			p.idle = slices.Delete(p.idle, i, i+1)
		}
	}
	p.mu.Unlock()
	if held {
		select {
		case <-s.out:
		case <-p.stop.Done():
		}
	}
	p.mu.Lock()
	forced := s.state == slotHeld
	discarded := s.discarded
	s.state, s.conn = slotClosed, nil
	p.mu.Unlock()
	switch {
	case forced:
		_ = conn.CloseWithError(transport.CodeGoingAway, "client pool closed")
	case discarded || conn.Context().Err() != nil:
		_ = conn.CloseWithError(transport.CodeNoError, "client pool closed")
	default:
		if err := conn.Shutdown(p.stop); err != nil {
			p.mu.Lock()
			p.errs = append(p.errs, err)
			p.mu.Unlock()
		}
	}
}

// PooledConn is a connection acquired from a [Pool], exclusive to its
// holder until Release or Discard. Its methods are safe for concurrent use.
type PooledConn struct {
	p    *Pool
	s    *poolSlot
	conn *transport.Conn

	released bool // guarded by p.mu
}

// Conn returns the connection. It must not be used after Release or
// Discard; close the channels opened on it before then, since they count
// against the server's channel limit for the connection's next holder.
func (pc *PooledConn) Conn() *transport.Conn { return pc.conn }

// Release returns the connection to the pool. A connection that has ended or
// received GOAWAY is closed and replaced in the background instead, and so
// is every connection released after the pool was closed. Release is
// idempotent and never blocks on the network.
func (pc *PooledConn) Release() { pc.p.put(pc, false) }

// Discard reports the connection as bad: the pool closes it (with
// CodeNoError) and dials a replacement in the background. Calling Discard or
// Release again does nothing.
func (pc *PooledConn) Discard() { pc.p.put(pc, true) }

package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/sync/semaphore"
)

// ListenerStats are a listener's counters. Until the listener closes, every
// connection quic-go hands over ends in exactly one of Accepted,
// HandshakeFailures, ResumesRefused, Refused, RefusedDraining,
// HelloTimeouts and EvictedHellos, or is still pending or queued.
type ListenerStats struct {
	Accepted          uint64 // connections returned by Accept
	Resumed           uint64 // of Accepted, those that resumed a session
	HandshakeFailures uint64 // HELLO exchanges that failed (bad HELLO, wrong version, connection lost)
	ResumesRefused    uint64 // resumes refused: a token not valid, or refused by Config.OnResume
	Refused           uint64 // connections closed because Accept was not called in time
	RefusedDraining   uint64 // connections refused with CodeGoingAway after Drain, before their HELLO was answered
	HelloTimeouts     uint64 // connections closed for sending no HELLO in time (Config.HelloTimeout)
	EvictedHellos     uint64 // connections waiting for HELLO closed to make room (Config.MaxPendingHellos, MaxPendingHellosPerIP)
	PendingHellos     int    // connections waiting for HELLO now
	// RefusedHandshakes counts Initials refused with CONNECTION_REFUSED
	// because their address had Config.MaxHandshakesPerIP handshakes in
	// progress; they never reached the listener, so they are not among the
	// connections above.
	RefusedHandshakes uint64
	// EarlyDataRefused counts resumptions whose 0-RTT data was refused by
	// the anti-replay check (a ticket used before, too old, or unknown); they
	// continue with a full round trip.
	EarlyDataRefused uint64
}

// quicListener is what *quic.Listener and *quic.EarlyListener share.
type quicListener interface {
	Accept(context.Context) (*quic.Conn, error)
	Close() error
	Addr() net.Addr
}

// Listener accepts quicmsg connections on one UDP socket. It takes every
// connection from quic-go as soon as its TLS handshake is done, so that a
// flood of connections that never speak cannot fill quic-go's accept queue
// and keep others out. Connections then wait for their HELLO, at most
// Config.MaxPendingHellos of them (Config.MaxPendingHellosPerIP per source
// address): a newcomer over either cap evicts the oldest such connection
// (of its own address when that cap is the one reached), which is closed
// with CodeTooManySessions. While more than half of either cap is used, a
// connection that sent no HELLO within Config.HelloTimeout of its TLS
// handshake is closed with CodeProtocolError; otherwise Config.HandshakeTimeout
// bounds the wait. Connections that completed the
// exchange wait for Accept, at most Config.AcceptBacklog in the queue and as
// many again blocked on it; one that finds both full, or waits longer than
// Config.HandshakeTimeout since it arrived, is refused with CodeGoingAway.
// Everything is counted in [ListenerStats]. All methods are safe for
// concurrent use.
type Listener struct {
	// Immutable after newListener.
	tr     *quic.Transport
	ownTr  bool // Listen made tr and closes it
	ln     quicListener
	cfg    Config
	replay *replayGuard    // nil unless Config.Allow0RTT
	gate   *handshakeGate  // nil for ListenTransport
	ctx    context.Context // ends when Close begins
	cancel context.CancelFunc
	// Immutable causes of a HELLO wait that ran out.
	handshakeExpired, helloExpired *helloAbort

	// queue holds connections whose HELLO arrived, for Accept: handshake
	// goroutines send, Accept receives. When it is full, at most
	// AcceptBacklog more handshake goroutines (sem) wait to put theirs in;
	// beyond that a connection is refused with GOAWAY.
	queue chan *Conn
	sem   *semaphore.Weighted

	// wg counts the accept loop and one handshake goroutine per connection
	// quic-go hands over; Close waits for it.
	wg sync.WaitGroup

	// mu guards conns: connections handed to Accept's queue and not yet
	// ended, which Close closes. Added by the handshake goroutine (track),
	// removed when the connection's context ends.
	mu    sync.Mutex
	conns map[*Conn]struct{}

	// pendMu guards pending: connections waiting for HELLO, added by the
	// accept loop (admit), removed by their handshake goroutine or evicted
	// by a later admit.
	pendMu  sync.Mutex
	pending *pendingSet

	// answerMu guards draining, set once by Drain, and the adds to
	// answering: each handshake goroutine whose HELLO the listener
	// answered counts in answering until it has queued the connection for
	// Accept or given up on it, so that Drain can wait for them.
	answerMu  sync.Mutex
	draining  bool
	answering sync.WaitGroup

	accepted, failures, refused, helloTimeouts, evicted atomic.Uint64
	resumed, resumesRefused, refusedDraining            atomic.Uint64

	closeOnce sync.Once
}

// Listen listens for quicmsg connections on the UDP address addr
// ("127.0.0.1:4433", ":0"). tlsConf must hold the server certificate; its
// MinVersion is raised to TLS 1.3 and NextProtos set to quicmsg/1, so that
// clients offering another protocol are refused during the handshake. cfg may
// be nil for the defaults.
func Listen(addr string, tlsConf *tls.Config, cfg *Config) (*Listener, error) {
	conf, tc, err := listenSetup(tlsConf, cfg)
	if err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	gate := newHandshakeGate(conf.MaxHandshakesPerIP)
	tr := &quic.Transport{Conn: udp, StatelessResetKey: conf.StatelessResetKey, ConnContext: gate.connContext,
		ConnectionIDGenerator: conf.ConnectionIDGenerator}
	l, err := newListener(tr, tc, conf, gate)
	if err != nil {
		_ = tr.Close()
		_ = udp.Close()
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	l.ownTr = true
	return l, nil
}

// listenSetup applies cfg's defaults and makes the server's TLS config.
func listenSetup(tlsConf *tls.Config, cfg *Config) (Config, *tls.Config, error) {
	conf, err := cfg.withDefaults()
	if err != nil {
		return Config{}, nil, err
	}
	tc, err := serverTLS(tlsConf)
	return conf, tc, err
}

// ListenTransport is Listen on a caller-owned [quic.Transport], which can
// also dial. Close leaves the transport open; the caller closes it after the
// listener. Config.StatelessResetKey, Config.ConnectionIDGenerator and
// Config.MaxHandshakesPerIP are not used: the first two are the transport's,
// and the third needs the transport's ConnContext hook, which is the caller's.
func ListenTransport(tr *quic.Transport, tlsConf *tls.Config, cfg *Config) (*Listener, error) {
	conf, tc, err := listenSetup(tlsConf, cfg)
	if err != nil {
		return nil, err
	}
	l, err := newListener(tr, tc, conf, nil)
	if err != nil {
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	return l, nil
}

func newListener(tr *quic.Transport, tc *tls.Config, conf Config, gate *handshakeGate) (*Listener, error) {
	conf.ResumeKey = listenerResumeKey(conf.ResumeKey)
	replay, err := withAntiReplay(tc, conf)
	if err != nil {
		return nil, err
	}
	var ln quicListener
	if conf.Allow0RTT {
		ln, err = tr.ListenEarly(tc, conf.quicConfig())
	} else {
		ln, err = tr.Listen(tc, conf.quicConfig())
	}
	if err != nil {
		return nil, err
	}
	l := &Listener{
		tr:      tr,
		ln:      ln,
		cfg:     conf,
		queue:   make(chan *Conn, conf.AcceptBacklog),
		sem:     semaphore.NewWeighted(int64(conf.AcceptBacklog)),
		conns:   make(map[*Conn]struct{}),
		pending: newPendingSet(conf.MaxPendingHellos, conf.MaxPendingHellosPerIP),
		gate:    gate,
	}
	l.handshakeExpired = &helloAbort{
		code:   CodeProtocolError,
		reason: fmt.Sprintf("no HELLO within the handshake timeout of %s", conf.HandshakeTimeout),
		count:  &l.helloTimeouts,
	}
	l.helloExpired = &helloAbort{
		code:   CodeProtocolError,
		reason: fmt.Sprintf("no HELLO within %s of the TLS handshake", conf.HelloTimeout),
		count:  &l.helloTimeouts,
	}
	l.replay = replay
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr returns the listener's UDP address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Limits returns the receive limits that the listener's connections
// announce in their HELLO (what [Conn.Limits] returns on each of them),
// defaults applied. A server that enforces the pending limits checks with
// it that the listener advertises what it enforces.
func (l *Listener) Limits() Limits { return l.cfg.advertised() }

// Stats returns the listener's counters.
func (l *Listener) Stats() ListenerStats {
	l.pendMu.Lock()
	pending := l.pending.len()
	l.pendMu.Unlock()
	var refusedHandshakes uint64
	if l.gate != nil {
		refusedHandshakes = l.gate.refused.Load()
	}
	return ListenerStats{
		RefusedHandshakes: refusedHandshakes,
		Accepted:          l.accepted.Load(),
		Resumed:           l.resumed.Load(),
		ResumesRefused:    l.resumesRefused.Load(),
		HandshakeFailures: l.failures.Load(),
		Refused:           l.refused.Load(),
		RefusedDraining:   l.refusedDraining.Load(),
		HelloTimeouts:     l.helloTimeouts.Load(),
		EvictedHellos:     l.evicted.Load(),
		PendingHellos:     pending,
		EarlyDataRefused:  l.replay.refusedCount(),
	}
}

// Accept returns the next connection whose handshake and HELLO exchange
// completed: a new session, or one that Config.OnResume let resume
// ([Conn.Resumed]); a refused resume never comes out of Accept. It fails
// with ErrClosed once the listener is closed.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-l.queue:
		l.countAccepted(c)
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.ctx.Done():
		return nil, ErrClosed
	}
}

// countAccepted counts c, handed out by Accept or Drain.
func (l *Listener) countAccepted(c *Conn) {
	l.accepted.Add(1)
	if c.Resumed() {
		l.resumed.Add(1)
	}
}

// Drain makes the listener refuse every connection whose HELLO it has not
// answered yet: it closes each with CodeGoingAway instead of answering, so
// that the client's Dial fails rather than returning a connection that
// nobody will serve (a client that sent 0-RTT data sees its connection
// close). It then returns the connections it had answered and Accept has
// not returned, waiting for those still on their way to Accept's queue,
// for the caller to serve or close: a server that shuts down takes them
// with Drain, so that no client whose Dial returned is left out of the
// shutdown. They count as accepted; what a concurrent Accept takes
// meanwhile is not among them. After Drain, no connection reaches
// Accept: it blocks until its ctx ends or the listener is closed. Drain is
// idempotent (a later call returns nothing) and safe for
// concurrent use.
func (l *Listener) Drain() []*Conn {
	l.answerMu.Lock()
	l.draining = true
	l.answerMu.Unlock()
	// No handshake joins answering from here, so Wait is not racing an Add
	// from zero; the goroutine ends before Drain returns.
	answered := make(chan struct{})
	go func() {
		l.answering.Wait()
		close(answered)
	}()
	var conns []*Conn
	for {
		select {
		case c := <-l.queue:
			l.countAccepted(c)
			conns = append(conns, c)
			continue
		case <-answered:
		}
		select {
		case c := <-l.queue:
			l.countAccepted(c)
			conns = append(conns, c)
		default:
			return conns
		}
	}
}

// answer is the handshake's last step before the server's HELLO goes out:
// after Drain it refuses the connection, otherwise it counts the
// handshake in answering, which the handshake goroutine counts down once
// the connection is queued or given up.
func (l *Listener) answer() error {
	l.answerMu.Lock()
	defer l.answerMu.Unlock()
	if l.draining {
		l.refusedDraining.Add(1) // before the close, which the client may see at once
		return errDraining
	}
	l.answering.Add(1)
	return nil
}

// errDraining is why a connection whose HELLO arrived after Drain is
// refused.
var errDraining = errors.New("transport: the server is shutting down (its listener was drained)")

// acceptLoop takes every connection quic-go has ready, at once: nothing
// in it waits for a peer.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		qc, err := l.ln.Accept(l.ctx)
		if err != nil {
			return
		}
		releaseHandshake(qc)
		ctx, cancel := context.WithTimeoutCause(l.ctx, l.cfg.HandshakeTimeout, l.handshakeExpired)
		hctx, hcancel := context.WithCancelCause(ctx)
		p := &pendingConn{src: sourceIP(qc.RemoteAddr()), cancel: hcancel}
		l.admit(p)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer cancel()
			defer hcancel(nil)
			l.handshake(ctx, hctx, qc, p)
		}()
	}
}

// admit adds p to the connections waiting for HELLO, evicting the oldest
// one if a cap is reached.
func (l *Listener) admit(p *pendingConn) {
	l.pendMu.Lock()
	defer l.pendMu.Unlock()
	old, global := l.pending.add(p)
	if old == nil {
		return
	}
	reason := fmt.Sprintf("closed to make room: %d connections were waiting for HELLO (Config.MaxPendingHellos)", l.cfg.MaxPendingHellos)
	if !global {
		reason = fmt.Sprintf("closed to make room: %d connections from %s were waiting for HELLO (Config.MaxPendingHellosPerIP)", l.cfg.MaxPendingHellosPerIP, p.src)
	}
	// Cancelled under pendMu, so that a connection whose HELLO exchange
	// already ended (and left the set) is never evicted.
	old.cancel(&helloAbort{code: CodeTooManySessions, reason: reason, count: &l.evicted})
}

// helloAbort is why the listener gave up on a connection waiting for
// HELLO: the close code and reason the peer sees, and what to count.
type helloAbort struct {
	code   ErrorCode
	reason string
	count  *atomic.Uint64
}

func (a *helloAbort) Error() string { return "transport: " + a.reason }

// handshake runs the HELLO exchange of one connection under hctx and
// queues the connection for Accept under ctx. When hctx ends first (the
// listener closes, a newer connection evicts this one, or it sends no HELLO
// in time), the connection is closed with the code of the cause.
func (l *Listener) handshake(ctx, hctx context.Context, qc *quic.Conn, p *pendingConn) {
	aborted := make(chan struct{})
	stopAbort := context.AfterFunc(hctx, func() {
		defer close(aborted)
		code, reason := CodeGoingAway, "listener closed"
		if a, ok := context.Cause(hctx).(*helloAbort); ok {
			code, reason = a.code, a.reason
		}
		_ = qc.CloseWithError(quic.ApplicationErrorCode(code), reason)
	})
	// Stopped also once the peer's HELLO is read and is being answered, so
	// that a connection whose HELLO arrived is never expired as late.
	stopHello := sync.OnceFunc(l.helloDeadline(qc, p))
	answered := false
	c, err := serverHandshake(hctx, qc, l.cfg, func() error {
		stopHello()
		err := l.answer()
		answered = err == nil
		return err
	})
	if answered {
		defer l.answering.Done()
	}
	stopHello()
	l.pendMu.Lock()
	l.pending.remove(p)
	l.pendMu.Unlock()
	if !stopAbort() {
		<-aborted
		if a, ok := context.Cause(hctx).(*helloAbort); ok {
			a.count.Add(1)
		}
		if c != nil {
			_ = c.CloseWithError(CodeGoingAway, "")
		}
		return
	}
	var re *ResumeError
	switch {
	case errors.As(err, &re):
		l.resumesRefused.Add(1)
		return
	case errors.Is(err, errDraining):
		return // counted by answer
	case err != nil:
		l.failures.Add(1)
		return
	}
	l.enqueue(ctx, c)
}

// helloDeadline gives the peer Config.HelloTimeout, from the completion of
// the TLS handshake, to send its HELLO, enforced while the listener is under
// pressure (see expireHello): an overdue connection is checked again every
// HelloTimeout, by a timer (p.hello) that expireHello re-arms. A connection
// from the 0-RTT listener may be accepted before its handshake completes;
// the wait starts when it does, and until then a goroutine waits for it
// (a full handshake has completed by the time quic-go hands the connection
// over, so most connections need none). The returned stop ends the wait;
// the handshake goroutine calls it before it takes p out of the pending
// set.
func (l *Listener) helloDeadline(qc *quic.Conn, p *pendingConn) (stop func()) {
	select {
	case <-qc.HandshakeComplete():
		l.armHello(p)
		return func() { l.stopHello(p) }
	default:
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-qc.HandshakeComplete():
			l.armHello(p)
		case <-done:
		}
	})
	return func() {
		close(done)
		wg.Wait()
		l.stopHello(p)
	}
}

// armHello starts p's HELLO timer, unless p's wait is already over.
func (l *Listener) armHello(p *pendingConn) {
	l.pendMu.Lock()
	defer l.pendMu.Unlock()
	if p.all == nil {
		return // evicted, or done
	}
	p.hello = time.AfterFunc(l.cfg.HelloTimeout, func() { l.expireHello(p) })
}

// stopHello stops p's HELLO timer. Under pendMu, so that a timer that
// fires meanwhile either re-armed itself before (and is stopped here) or
// finds p's wait over (expireHello).
func (l *Listener) stopHello(p *pendingConn) {
	l.pendMu.Lock()
	defer l.pendMu.Unlock()
	if p.hello != nil {
		p.hello.Stop()
		p.hello = nil
	}
}

// expireHello ends the HELLO wait of p, which is overdue, if the listener is
// under pressure: more than half of MaxPendingHellos connections waiting for
// HELLO, or more than half of MaxPendingHellosPerIP from p's address.
// Without pressure a slow client keeps its HandshakeTimeout, so that a
// loaded server does not turn away honest clients whose HELLO it has not
// yet read: p's timer is re-armed for another HelloTimeout. It runs on p's
// timer.
func (l *Listener) expireHello(p *pendingConn) {
	l.pendMu.Lock()
	defer l.pendMu.Unlock()
	if p.all == nil || p.hello == nil {
		return // evicted, done, or stopped
	}
	if l.pending.len() <= l.cfg.MaxPendingHellos/2 && l.pending.count(p.src) <= l.cfg.MaxPendingHellosPerIP/2 {
		p.hello.Reset(l.cfg.HelloTimeout)
		return
	}
	// Out of the set at once, so that another overdue connection's timer
	// firing before p's handshake goroutine removes it does not count p
	// towards the pressure and expire a second one.
	l.pending.remove(p)
	p.cancel(l.helloExpired)
}

// enqueue hands c to Accept, waiting at most until ctx ends; at most
// Config.AcceptBacklog connections wait for room at once.
func (l *Listener) enqueue(ctx context.Context, c *Conn) {
	if !l.track(c) {
		_ = c.CloseWithError(CodeGoingAway, "server is closing")
		return
	}
	select {
	case l.queue <- c:
		return
	default:
	}
	if !l.sem.TryAcquire(1) {
		l.refused.Add(1)
		_ = c.CloseWithError(CodeGoingAway, fmt.Sprintf("server's accept queue is full (%d waiting)", 2*l.cfg.AcceptBacklog))
		return
	}
	defer l.sem.Release(1)
	select {
	case l.queue <- c:
	case <-ctx.Done():
		if l.ctx.Err() != nil {
			_ = c.CloseWithError(CodeGoingAway, "listener closed")
			return
		}
		l.refused.Add(1)
		_ = c.CloseWithError(CodeGoingAway, "server did not accept the connection in time")
	}
}

// track remembers c until it ends, so that Close can close it. The
// connection forgets itself (untrack) from its end hook (Conn.connEnded,
// run by its control reader once quic-go's connection has ended), rather
// than from a hook of the listener's per connection.
func (l *Listener) track(c *Conn) bool {
	l.mu.Lock()
	if l.ctx.Err() != nil {
		l.mu.Unlock()
		return false
	}
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	c.tracker.Store(l)
	if c.ctx.Err() != nil && c.tracker.CompareAndSwap(l, nil) {
		l.untrack(c) // it ended before the hook could see the listener
	}
	return true
}

// untrack forgets c, which has ended; doing it again does nothing.
func (l *Listener) untrack(c *Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Close stops accepting, closes every connection that came from this
// listener with CodeGoingAway (for a graceful end, shut the connections
// down first, as the layer serving them does) and releases the UDP
// socket. It is idempotent and waits for the listener's goroutines.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.cancel()
		l.mu.Unlock()
		_ = l.ln.Close()
		l.wg.Wait()
		l.mu.Lock()
		conns := slices.Collect(maps.Keys(l.conns))
		l.mu.Unlock()
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() { _ = c.CloseWithError(CodeGoingAway, "listener closed") })
		}
		wg.Wait()
		if l.ownTr {
			_ = l.tr.Close()
			_ = l.tr.Conn.Close()
		}
	})
	return nil
}

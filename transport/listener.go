package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"
	"golang.org/x/sync/semaphore"
)

// ListenerStats are a listener's counters.
type ListenerStats struct {
	Accepted          uint64 // connections returned by Accept
	HandshakeFailures uint64 // QUIC or HELLO handshakes that failed
	Refused           uint64 // connections closed because Accept was not called in time
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

// Listener accepts quicmsg connections on one UDP socket. HELLO exchanges
// run in the background, at most Config.AcceptBacklog at once; connections
// that completed them wait, at most Config.AcceptBacklog of them, for Accept.
// A connection that waits longer than Config.HandshakeTimeout is refused
// with CodeGoingAway and counted. All methods are safe for concurrent use.
type Listener struct {
	tr    *quic.Transport
	ownTr bool // Listen made tr and closes it
	ln    quicListener
	cfg   Config
	queue chan *Conn
	sem   *semaphore.Weighted

	replay *replayGuard // nil unless Config.Allow0RTT

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[*Conn]struct{}

	accepted, failures, refused atomic.Uint64

	closeOnce sync.Once
}

// Listen listens for quicmsg connections on the UDP address addr
// ("127.0.0.1:4433", ":0"). tlsConf must hold the server certificate; its
// MinVersion is raised to TLS 1.3 and NextProtos set to quicmsg/1, so that
// clients offering another protocol are refused during the handshake. cfg may
// be nil for the defaults.
func Listen(addr string, tlsConf *tls.Config, cfg *Config) (*Listener, error) {
	conf, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tc, err := serverTLS(tlsConf)
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
	tr := &quic.Transport{Conn: udp, StatelessResetKey: conf.StatelessResetKey}
	l, err := newListener(tr, tc, conf)
	if err != nil {
		_ = tr.Close()
		_ = udp.Close()
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	l.ownTr = true
	return l, nil
}

// ListenTransport is Listen on a caller-owned [quic.Transport], which can
// also dial. Close leaves the transport open; the caller closes it after the
// listener. Config.StatelessResetKey is not used: set it on the transport.
func ListenTransport(tr *quic.Transport, tlsConf *tls.Config, cfg *Config) (*Listener, error) {
	conf, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tc, err := serverTLS(tlsConf)
	if err != nil {
		return nil, err
	}
	l, err := newListener(tr, tc, conf)
	if err != nil {
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	return l, nil
}

func newListener(tr *quic.Transport, tc *tls.Config, conf Config) (*Listener, error) {
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
		tr:    tr,
		ln:    ln,
		cfg:   conf,
		queue: make(chan *Conn, conf.AcceptBacklog),
		sem:   semaphore.NewWeighted(int64(conf.AcceptBacklog)),
		conns: make(map[*Conn]struct{}),
	}
	l.replay = replay
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr returns the listener's UDP address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Stats returns the listener's counters.
func (l *Listener) Stats() ListenerStats {
	s := ListenerStats{Accepted: l.accepted.Load(), HandshakeFailures: l.failures.Load(), Refused: l.refused.Load()}
	s.EarlyDataRefused = l.replay.refusedCount()
	return s
}

// Accept returns the next connection whose handshake and HELLO exchange
// completed. It fails with ErrClosed once the listener is closed.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-l.queue:
		l.accepted.Add(1)
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.ctx.Done():
		return nil, ErrClosed
	}
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		if err := l.sem.Acquire(l.ctx, 1); err != nil {
			return
		}
		qc, err := l.ln.Accept(l.ctx)
		if err != nil {
			l.sem.Release(1)
			return
		}
		l.wg.Add(1)
		go l.handshake(qc)
	}
}

func (l *Listener) handshake(qc *quic.Conn) {
	defer l.wg.Done()
	defer l.sem.Release(1)
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	defer cancel()
	c, err := serverHandshake(ctx, qc, l.cfg)
	if err != nil {
		l.failures.Add(1)
		return
	}
	if !l.track(c) {
		_ = c.CloseWithError(CodeGoingAway, "server is closing")
		return
	}
	select {
	case l.queue <- c:
	case <-ctx.Done():
		l.refused.Add(1)
		_ = c.CloseWithError(CodeGoingAway, "server did not accept the connection in time")
	}
}

// track remembers c until it ends, so that Close can close it.
func (l *Listener) track(c *Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil {
		return false
	}
	l.conns[c] = struct{}{}
	context.AfterFunc(c.Context(), func() {
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
	})
	return true
}

// Close stops accepting, closes every connection that came from this
// listener with CodeGoingAway (use session.Server.Shutdown, or close
// connections yourself first, for a graceful end) and releases the UDP
// socket. It is idempotent and waits for the listener's goroutines.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.cancel()
		l.mu.Unlock()
		_ = l.ln.Close()
		l.wg.Wait()
		l.mu.Lock()
		conns := make([]*Conn, 0, len(l.conns))
		for c := range l.conns {
			conns = append(conns, c)
		}
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

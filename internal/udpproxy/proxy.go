package udpproxy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultQueueLimit is the default capacity of each delay queue.
	DefaultQueueLimit = 10_000
	// DefaultIdleTimeout is the default lifetime of an idle client mapping.
	DefaultIdleTimeout = 60 * time.Second

	maxDatagram = 64 * 1024
)

// Direction selects which way of the relay a fault applies to.
type Direction uint8

const (
	// ToServer is the client → server direction.
	ToServer Direction = 1 << iota
	// ToClient is the server → client direction.
	ToClient
	// Both is ToServer | ToClient.
	Both = ToServer | ToClient
)

func (d Direction) String() string {
	switch d {
	case ToServer:
		return "ToServer"
	case ToClient:
		return "ToClient"
	case Both:
		return "Both"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// Config configures a Proxy.
type Config struct {
	// ServerAddr is the address datagrams are relayed to. It must be a
	// loopback address with a non-zero port.
	ServerAddr *net.UDPAddr
	// Seed, if non-zero, seeds the random number generators (one per
	// direction) so fault decisions are reproducible for a given sequence of
	// datagrams and settings. Zero picks a random seed.
	Seed uint64
	// QueueLimit caps each per-client, per-direction delay queue.
	// Zero means DefaultQueueLimit. Datagrams arriving at a full queue are
	// dropped and counted as Dropped and Overflowed.
	QueueLimit int
	// IdleTimeout is how long a client mapping survives without traffic.
	// Zero means DefaultIdleTimeout; negative disables expiry.
	IdleTimeout time.Duration
}

// Option adjusts the Config built by New.
type Option func(*Config)

// WithSeed sets Config.Seed.
func WithSeed(seed uint64) Option { return func(c *Config) { c.Seed = seed } }

// WithQueueLimit sets Config.QueueLimit.
func WithQueueLimit(n int) Option { return func(c *Config) { c.QueueLimit = n } }

// WithIdleTimeout sets Config.IdleTimeout.
func WithIdleTimeout(d time.Duration) Option { return func(c *Config) { c.IdleTimeout = d } }

// DirStats are the counters of one direction. Forwarded counts every datagram
// written out, duplicates included; Dropped counts datagrams discarded for any
// reason (random loss, drop func, black hole, queue overflow, write error);
// Duplicated counts extra copies created; Delayed counts datagrams queued with
// a non-zero delay; Reordered counts datagrams given the extra reorder delay;
// Overflowed counts datagrams dropped because the delay queue was full.
type DirStats struct {
	Forwarded  uint64
	Dropped    uint64
	Duplicated uint64
	Delayed    uint64
	Reordered  uint64
	Overflowed uint64
}

// Stats is a snapshot of both directions' counters.
type Stats struct {
	ToServer DirStats
	ToClient DirStats
}

type dirCounters struct {
	forwarded, dropped, duplicated, delayed, reordered, overflowed atomic.Uint64
}

// pushed accounts for the outcome of a delay-queue push and reports whether
// the datagram was queued.
func (c *dirCounters) pushed(r pushResult) bool {
	switch r {
	case pushed:
		return true
	case pushFull:
		c.overflowed.Add(1)
	}
	c.dropped.Add(1)
	return false
}

func (c *dirCounters) snapshot() DirStats {
	return DirStats{
		Forwarded:  c.forwarded.Load(),
		Dropped:    c.dropped.Load(),
		Duplicated: c.duplicated.Load(),
		Delayed:    c.delayed.Load(),
		Reordered:  c.reordered.Load(),
		Overflowed: c.overflowed.Load(),
	}
}

// dirState holds the fault settings and counters of one direction.
type dirState struct {
	mu           sync.Mutex
	rng          *rand.Rand
	delay        time.Duration
	dropRate     float64
	dupRate      float64
	reorderRate  float64
	reorderExtra time.Duration
	dropFunc     func([]byte) bool

	stats dirCounters
}

// verdict is the fate of one datagram.
type verdict struct {
	drop    bool
	dup     bool
	reorder bool
	delay   time.Duration
}

// decide draws the random fault decisions for one datagram.
func (s *dirState) decide(pkt []byte) verdict {
	s.mu.Lock()
	var v verdict
	if s.dropRate > 0 && s.rng.Float64() < s.dropRate {
		v.drop = true
	}
	if s.dupRate > 0 && s.rng.Float64() < s.dupRate {
		v.dup = true
	}
	if s.reorderRate > 0 && s.rng.Float64() < s.reorderRate {
		v.reorder = true
	}
	v.delay = s.delay
	if v.reorder {
		v.delay += s.reorderExtra
	}
	f := s.dropFunc
	s.mu.Unlock()
	if !v.drop && f != nil && f(pkt) {
		v.drop = true
	}
	return v
}

// Proxy is a fault-injecting UDP relay. All methods are safe for concurrent
// use.
type Proxy struct {
	cfg    Config
	server netip.AddrPort
	conn   *net.UDPConn // client-facing socket

	dirs [2]dirState // indexed by dirIndex

	blackHoleOn    atomic.Bool
	blackHoleUntil atomic.Int64 // unix nanoseconds

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	closed  bool
	clients map[netip.AddrPort]*client
}

const (
	idxToServer = 0
	idxToClient = 1
)

// client is the mapping of one client address to its upstream socket.
type client struct {
	addr       netip.AddrPort
	queues     [2]*delayQueue
	lastActive atomic.Int64 // unix nanoseconds
	done       chan struct{}

	// mu guards upstream and stopped. upstream, the socket connected to the
	// server, is replaced by Rebind; the ToServer drain writes to whichever
	// socket is current, and each socket has its own readServer goroutine,
	// which ends when that socket is closed (by Rebind or stop).
	mu       sync.Mutex
	upstream *net.UDPConn
	stopped  bool
}

func (c *client) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	close(c.done)
	_ = c.upstream.Close()
}

// write sends b to the server through the current upstream socket.
func (c *client) write(b []byte) error {
	c.mu.Lock()
	up := c.upstream
	c.mu.Unlock()
	_, err := up.Write(b)
	return err
}

// New starts a proxy relaying to serverAddr (host:port, loopback only) and
// listening on an ephemeral loopback port.
func New(serverAddr string, opts ...Option) (*Proxy, error) {
	ua, err := net.ResolveUDPAddr("udp", serverAddr)
	if err != nil {
		return nil, fmt.Errorf("udpproxy: resolve %q: %w", serverAddr, err)
	}
	cfg := Config{ServerAddr: ua}
	for _, o := range opts {
		o(&cfg)
	}
	return NewWithConfig(cfg)
}

// NewWithConfig starts a proxy described by cfg.
func NewWithConfig(cfg Config) (*Proxy, error) {
	if cfg.ServerAddr == nil {
		return nil, errors.New("udpproxy: no server address")
	}
	server := cfg.ServerAddr.AddrPort()
	ip := server.Addr().Unmap()
	if !ip.IsLoopback() {
		return nil, fmt.Errorf("udpproxy: refusing non-loopback target %s", cfg.ServerAddr)
	}
	if server.Port() == 0 {
		return nil, fmt.Errorf("udpproxy: target %s has no port", cfg.ServerAddr)
	}
	server = netip.AddrPortFrom(ip, server.Port())
	if cfg.QueueLimit <= 0 {
		cfg.QueueLimit = DefaultQueueLimit
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64() | 1
	}

	listen := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	if ip.Is6() {
		listen = &net.UDPAddr{IP: net.IPv6loopback}
	}
	conn, err := net.ListenUDP("udp", listen)
	if err != nil {
		return nil, fmt.Errorf("udpproxy: listen: %w", err)
	}
	p := &Proxy{
		cfg:     cfg,
		server:  server,
		conn:    conn,
		done:    make(chan struct{}),
		clients: make(map[netip.AddrPort]*client),
	}
	for i := range p.dirs {
		p.dirs[i].rng = rand.New(rand.NewPCG(seed, uint64(i)+0x9e3779b97f4a7c15))
	}
	p.wg.Add(1)
	go p.readClients()
	if cfg.IdleTimeout > 0 {
		p.wg.Add(1)
		go p.expireIdle()
	}
	return p, nil
}

// Addr is the address clients should send to.
func (p *Proxy) Addr() *net.UDPAddr { return p.conn.LocalAddr().(*net.UDPAddr) }

// ServerAddr is the address datagrams are relayed to.
func (p *Proxy) ServerAddr() *net.UDPAddr { return net.UDPAddrFromAddrPort(p.server) }

// NumClients reports how many client mappings are currently live.
func (p *Proxy) NumClients() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.clients)
}

// Close stops every goroutine started by the proxy, waits for them, and
// closes all sockets. It is idempotent; later calls return the first result.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		clients := p.clients
		p.clients = nil
		p.mu.Unlock()

		close(p.done)
		p.closeErr = p.conn.Close()
		for _, c := range clients {
			c.stop()
		}
		p.wg.Wait()
	})
	return p.closeErr
}

func (p *Proxy) each(dir Direction, f func(*dirState)) {
	if dir&ToServer != 0 {
		f(&p.dirs[idxToServer])
	}
	if dir&ToClient != 0 {
		f(&p.dirs[idxToClient])
	}
}

func clamp01(v float64) float64 {
	if v != v || v < 0 { // NaN or negative
		return 0
	}
	return min(v, 1)
}

// SetDelay sets a constant one-way delay for dir. Datagrams already queued
// keep the delay they were given.
func (p *Proxy) SetDelay(dir Direction, d time.Duration) {
	d = max(d, 0)
	p.each(dir, func(s *dirState) { s.mu.Lock(); s.delay = d; s.mu.Unlock() })
}

// SetDropRate makes dir drop each datagram with probability rate (clamped
// to [0, 1]).
func (p *Proxy) SetDropRate(dir Direction, rate float64) {
	rate = clamp01(rate)
	p.each(dir, func(s *dirState) { s.mu.Lock(); s.dropRate = rate; s.mu.Unlock() })
}

// SetDuplicateRate makes dir send each datagram twice with probability rate.
func (p *Proxy) SetDuplicateRate(dir Direction, rate float64) {
	rate = clamp01(rate)
	p.each(dir, func(s *dirState) { s.mu.Lock(); s.dupRate = rate; s.mu.Unlock() })
}

// SetReorder gives each datagram in dir, with probability rate, extra delay
// on top of the constant delay, so later datagrams overtake it.
func (p *Proxy) SetReorder(dir Direction, rate float64, extra time.Duration) {
	rate = clamp01(rate)
	extra = max(extra, 0)
	p.each(dir, func(s *dirState) {
		s.mu.Lock()
		s.reorderRate, s.reorderExtra = rate, extra
		s.mu.Unlock()
	})
}

// SetDropFunc installs f to decide, per datagram in dir, whether to drop it
// (true = drop). f is called from forwarding goroutines, possibly
// concurrently, and must neither retain nor modify pkt. nil removes the hook.
func (p *Proxy) SetDropFunc(dir Direction, f func(pkt []byte) bool) {
	p.each(dir, func(s *dirState) { s.mu.Lock(); s.dropFunc = f; s.mu.Unlock() })
}

// BlackHole drops every datagram in both directions for d, then heals by
// itself. Datagrams already delayed are dropped if they fall due in the
// window. A later call replaces the window.
func (p *Proxy) BlackHole(d time.Duration) {
	p.blackHoleUntil.Store(time.Now().Add(d).UnixNano())
}

// SetBlackHole starts (true) an indefinite partition or ends (false) any
// partition, including one started by BlackHole.
func (p *Proxy) SetBlackHole(on bool) {
	if !on {
		p.blackHoleUntil.Store(0)
	}
	p.blackHoleOn.Store(on)
}

// BlackHoled reports whether a partition is in effect.
func (p *Proxy) BlackHoled() bool { return p.blackHoled(time.Now()) }

func (p *Proxy) blackHoled(now time.Time) bool {
	return p.blackHoleOn.Load() || now.UnixNano() < p.blackHoleUntil.Load()
}

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		ToServer: p.dirs[idxToServer].stats.snapshot(),
		ToClient: p.dirs[idxToClient].stats.snapshot(),
	}
}

// readClients reads datagrams from clients and feeds them to their mappings.
func (p *Proxy) readClients() {
	defer p.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if p.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		c := p.clientFor(from)
		if c == nil {
			if p.isClosed() {
				return
			}
			p.dirs[idxToServer].stats.dropped.Add(1)
			continue
		}
		p.relay(idxToServer, c, append([]byte(nil), buf[:n]...))
	}
}

func (p *Proxy) isClosed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// clientFor returns the mapping for addr, creating it if needed. It returns
// nil if the proxy is closed or the upstream socket cannot be created.
func (p *Proxy) clientFor(addr netip.AddrPort) *client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if c := p.clients[addr]; c != nil {
		return c
	}
	up, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(p.server))
	if err != nil {
		return nil
	}
	c := &client{
		addr:     addr,
		upstream: up,
		done:     make(chan struct{}),
	}
	c.lastActive.Store(time.Now().UnixNano())
	for i := range c.queues {
		c.queues[i] = newDelayQueue(p.cfg.QueueLimit)
	}
	p.clients[addr] = c
	// Safe while Close may be waiting: the caller holds a WaitGroup slot.
	p.wg.Add(3)
	go p.readServer(c, up)
	go p.drain(c, idxToServer, c.write)
	go p.drain(c, idxToClient, func(b []byte) error { _, err := p.conn.WriteToUDPAddrPort(b, c.addr); return err })
	return c
}

// readServer reads the server's replies for one client from up, one of its
// upstream sockets, until up is closed.
func (p *Proxy) readServer(c *client, up *net.UDPConn) {
	defer p.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, err := up.Read(buf)
		if err != nil {
			select {
			case <-c.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ECONNREFUSED after an ICMP port unreachable
		}
		p.relay(idxToClient, c, append([]byte(nil), buf[:n]...))
	}
}

// drain runs the delay queue of one direction of one client.
func (p *Proxy) drain(c *client, idx int, write func([]byte) error) {
	defer p.wg.Done()
	st := &p.dirs[idx].stats
	c.queues[idx].run(c.done, func(b []byte) {
		if p.blackHoled(time.Now()) {
			st.dropped.Add(1)
			return
		}
		// Count before writing so that a receiver never observes a
		// datagram the counters do not yet include.
		st.forwarded.Add(1)
		if err := write(b); err != nil {
			st.forwarded.Add(^uint64(0))
			st.dropped.Add(1)
		}
	})
}

// relay applies the faults of direction idx to pkt and queues it.
func (p *Proxy) relay(idx int, c *client, pkt []byte) {
	now := time.Now()
	c.lastActive.Store(now.UnixNano())
	s := &p.dirs[idx]
	if p.blackHoled(now) {
		s.stats.dropped.Add(1)
		return
	}
	v := s.decide(pkt)
	if v.drop {
		s.stats.dropped.Add(1)
		return
	}
	at := now.Add(v.delay)
	q := c.queues[idx]
	if !s.stats.pushed(q.push(pkt, at)) {
		return
	}
	if v.delay > 0 {
		s.stats.delayed.Add(1)
	}
	if v.reorder {
		s.stats.reordered.Add(1)
	}
	if v.dup {
		s.stats.duplicated.Add(1)
		s.stats.pushed(q.push(append([]byte(nil), pkt...), at))
	}
}

// expireIdle removes client mappings that have seen no traffic for
// IdleTimeout. It wakes every IdleTimeout/2, so a mapping lives between one
// and one and a half timeouts after its last datagram.
func (p *Proxy) expireIdle() {
	defer p.wg.Done()
	every := max(p.cfg.IdleTimeout/2, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case now := <-t.C:
			cutoff := now.Add(-p.cfg.IdleTimeout).UnixNano()
			var stale []*client
			p.mu.Lock()
			for addr, c := range p.clients {
				if c.lastActive.Load() < cutoff {
					delete(p.clients, addr)
					stale = append(stale, c)
				}
			}
			p.mu.Unlock()
			for _, c := range stale {
				c.stop()
			}
		}
	}
}

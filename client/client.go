package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quicmsg/quicmsg/transport"
)

// Errors returned by the client.
var (
	// ErrClosed is returned by operations on a closed Client or Channel.
	// It matches net.ErrClosed, as transport.ErrClosed does.
	ErrClosed = fmt.Errorf("client: use of closed client or channel: %w", net.ErrClosed)
	// ErrBufferFull is returned by TrySend while the client is disconnected
	// and its reconnect buffer is full.
	ErrBufferFull = errors.New("client: reconnect buffer full")
	// ErrGaveUp ends a client whose reconnection attempts ran out.
	ErrGaveUp = errors.New("client: gave up reconnecting")
	// ErrChannelOptions is returned by ChannelWith (and Channel, whose
	// options are none) for a name the client has a channel of, open with
	// other options.
	ErrChannelOptions = errors.New("client: the channel is open with other options")
	// ErrNotConnected is returned by Migrate while the client has no
	// connection to move (it is reconnecting).
	ErrNotConnected = errors.New("client: no connection to migrate: the client is reconnecting")
)

// GaveUpError ends a client whose reconnection attempts ran out
// (Backoff.MaxAttempts in a row); it matches ErrGaveUp with errors.Is.
type GaveUpError struct {
	Attempts int   // reconnect attempts made in a row
	Last     error // why the last one failed
}

func (e *GaveUpError) Error() string {
	return fmt.Sprintf("%v after %d attempts: %v", ErrGaveUp, e.Attempts, e.Last)
}

// Unwrap returns ErrGaveUp and the last attempt's error.
func (e *GaveUpError) Unwrap() []error { return []error{ErrGaveUp, e.Last} }

// UndeliveredError reports messages that Send accepted but that were never
// written to a connection, because the client was closed or gave up
// reconnecting: those waiting in the reconnect buffer, and those the last
// connection could not write before its close timeout.
type UndeliveredError struct {
	Messages int
	Err      error // why: ErrClosed or ErrGaveUp and the last failure
}

func (e *UndeliveredError) Error() string {
	return fmt.Sprintf("client: %d buffered messages were not delivered: %v", e.Messages, e.Err)
}

func (e *UndeliveredError) Unwrap() error { return e.Err }

// RefusedError reports a message the client had accepted into its
// reconnect buffer that the next connection refused (its server lowered its
// message size limit, or does not take headers). It comes in an
// EventMessageRefused and is counted in Stats.MessagesFailed; the channel
// goes on with the next message.
type RefusedError struct {
	Channel string
	Message transport.UnsentMessage
	Err     error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("client: channel %q: the new connection refused a buffered message of %d bytes: %v",
		e.Channel, len(e.Message.Data), e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Stats are a client's counters.
type Stats struct {
	Reconnects       uint64 // connections made after the first
	Resumes          uint64 // reconnects that resumed the session
	ZeroRTT          uint64 // connections whose 0-RTT data the server accepted
	BufferedMessages int    // messages waiting in the reconnect buffer
	BufferedBytes    int    // their size
	MessagesResent   uint64 // sent again: never written by a connection that died, or written and not received by the server of a resumed session
	MessagesInDoubt  uint64 // written to a connection that died or whose close the server did not confirm, and not settled by a resume: delivery unknown
	MessagesUnacked  uint64 // of MessagesInDoubt, those listed in a ResumeFailedError: written and unacknowledged when the server refused to resume the session
	MessagesFailed   uint64 // accepted, never written: reported in an UndeliveredError, or refused by a new connection (see Channel.SendMsg)
	EventsDropped    uint64 // events lost because the OnEvent queue was full
	Migrations       uint64 // connections moved to another local address by Migrate
	GapNotices       uint64 // gap notices Receive returned (a *transport.GapError each)
	MessagesMissed   uint64 // messages the server reported skipped in those gap notices
}

// Client is a quicmsg client that stays usable across connection losses.
// Its channels survive reconnects: what is sent while disconnected waits in a
// bounded reconnect buffer and goes out, in order, on the next connection.
//
// Delivery: see the package documentation. In short, a message accepted by
// Send is delivered once and in order per channel, across connection losses
// that the session survives (the client resumes it: Event.Resumed); or it
// is reported: in an [UndeliveredError] from Close and Stats.MessagesFailed
// if it was never written, and in Stats.MessagesInDoubt if it was written
// and no resume settles it (resumption disabled or not offered by the
// server, the client closed before its server confirmed it, or the server
// would not resume the session: then it is also listed in a
// [ResumeFailedError] and counted in Stats.MessagesUnacked).
//
// Close and Shutdown follow the convention of every closable type in
// quicmsg: Shutdown(ctx) is the graceful close, bounded by ctx; Close is
// Shutdown bounded by the connection's close timeout
// (Config.Transport.CloseTimeout, transport.DefaultCloseTimeout by default).
//
// Goroutines: a Client owns run (the reconnect loop, started by Dial, which
// alone replaces the connection and resumes the session), dispatch
// (delivers events to Config.OnEvent, started by Dial when it is set) and
// one short watcher per attached connection (emits its Connected or
// Reconnected event once the handshake completes). Shutdown stops them all, through ctx and the event
// queue, and waits for them with wg.
//
// All methods are safe for concurrent use.
type Client struct {
	// Immutable after Dial.
	cfg    Config
	tls    *tls.Config // cloned, with a session cache unless 0-RTT is off
	addrs  []string
	dial   func(context.Context, string) (*transport.Conn, error) // replaces dialOnce in tests
	jitter func(n int64) int64                                    // backoff's random source; rand.Int64N
	buf    *reconnectBuffer                                       // owned by the Client; see its doc

	ctx    context.Context // ends when the client begins to close
	cancel context.CancelFunc
	// abort ends when the graceful part of Shutdown must stop (its ctx
	// ended): the close of a connection that sent GOAWAY, in run (bounded
	// by the close timeout too), turns abrupt then, so that Shutdown waits
	// for it no longer than for its own.
	abort       context.Context
	cancelAbort context.CancelFunc
	wg          sync.WaitGroup // run, dispatch, the handshake watchers

	// handoff is held while a connection is attached, or taken away and
	// what it never delivered recovered or counted: run and shutdown do
	// these in turn, so that no message moves between a buffer and a
	// connection that the other is counting.
	handoff sync.Mutex

	mu        sync.Mutex      // guards conn through closeErr
	conn      *transport.Conn // nil while disconnected; replaced only by run and shutdown
	status    Status
	addrIdx   int
	channels  map[string]*Channel // a Channel leaves it when closed
	connected chan struct{}       // closed while a connection is attached
	closeErr  error
	closeOnce sync.Once

	noEarly atomic.Bool // the last connection's 0-RTT data was rejected

	// Guarded by handoff. token resumes the session after a connection
	// loss: the latest the server issued, nil when the session cannot be
	// resumed. gone holds the received counts of channels closed while
	// the client was reconnecting, for the resume state, until the next
	// connection.
	token *transport.ResumeToken
	gone  map[string]uint64

	evMu     sync.Mutex // guards sends on events against its closing
	evClosed bool
	// events is the queue dispatch reads: EventQueueSize places for
	// ordinary events plus one kept for EventClosed, so that it is never
	// dropped. Nil without Config.OnEvent.
	events        chan Event
	eventsDropped atomic.Uint64
	reconnects    atomic.Uint64
	zeroRTT       atomic.Uint64
	resent        atomic.Uint64
	inDoubt       atomic.Uint64
	failed        atomic.Uint64
	unacked       atomic.Uint64
	resumes       atomic.Uint64
	migrations    atomic.Uint64
	gapNotices    atomic.Uint64
	missed        atomic.Uint64
	// headers: the server offered the HEADERS extension on the last
	// connection whose HELLO exchange the client saw (the first, every
	// resumed one, a new one once ready); Send checks buffered messages
	// against it.
	headers atomic.Bool

	req requests // Request's inbox and the requests waiting on it; see request.go
}

// Dial connects to addr and returns a client that reconnects by itself
// when the connection is lost. tlsConf verifies the server (see package
// certs); if it has no ClientSessionCache, the client uses a copy with one,
// so that reconnects can use 0-RTT. cfg may be nil for the defaults. The
// first connection must be accepted by the server (HELLO exchanged) within
// ctx; otherwise Dial returns its error, a [*transport.DialError] that names
// the fault.
func Dial(ctx context.Context, addr string, tlsConf *tls.Config, cfg *Config) (*Client, error) {
	conf, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if tlsConf == nil {
		return nil, errors.New("client: Dial needs a *tls.Config (see package certs)")
	}
	c := newClient(conf, clientTLS(tlsConf, conf.Disable0RTT), addr)
	conn, err := c.dialFirst(ctx, addr)
	if err != nil {
		c.cancel()
		c.cancelAbort()
		return nil, err
	}
	c.headers.Store(conn.HeadersEnabled())
	c.startEvents()
	c.attach(conn, Event{Type: EventConnected, Addr: addr})
	c.wg.Add(1)
	go c.run(conn)
	return c, nil
}

// dialFirst makes the client's first connection and waits for the
// server's HELLO, so that a refusal (mutual TLS, session limit) is reported
// by Dial rather than as a reconnect loop. A ticket in a session cache the
// caller shares may have been used already: when the server rejects its
// 0-RTT data, the dial is made again with a full handshake.
func (c *Client) dialFirst(ctx context.Context, addr string) (*transport.Conn, error) {
	for attempt := 0; ; attempt++ {
		conn, err := c.dialOnce(ctx, addr, nil)
		if err == nil {
			if err = conn.WaitReady(ctx); err != nil {
				_ = conn.CloseWithError(transport.CodeNoError, "")
			}
		}
		if attempt == 0 && errors.Is(err, transport.ErrEarlyDataRejected) {
			c.noEarly.Store(true)
			continue
		}
		return conn, err
	}
}

func newClient(conf Config, tlsConf *tls.Config, addr string) *Client {
	c := &Client{
		cfg:       conf,
		tls:       tlsConf,
		addrs:     append([]string{addr}, conf.Fallback...),
		jitter:    rand.Int64N,
		channels:  make(map[string]*Channel),
		connected: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.abort, c.cancelAbort = context.WithCancel(context.Background())
	c.buf = newReconnectBuffer(conf.ReconnectBufferSize, c.ctx.Done())
	return c
}

// clientTLS returns a copy of tlsConf with a session cache for 0-RTT,
// unless it has one or 0-RTT is off.
func clientTLS(tlsConf *tls.Config, disable0RTT bool) *tls.Config {
	tlsConf = tlsConf.Clone()
	if tlsConf.ClientSessionCache == nil && !disable0RTT {
		tlsConf.ClientSessionCache = tls.NewLRUClientSessionCache(DefaultSessionCacheSize)
	}
	return tlsConf
}

// dialOnce makes one connection; on a resumed connection the channels
// named are opened in the first flight.
func (c *Client) dialOnce(ctx context.Context, addr string, channels []string) (*transport.Conn, error) {
	if c.dial != nil {
		return c.dial(ctx, addr)
	}
	// After the server rejected 0-RTT, one full handshake gets a ticket it
	// accepts, instead of offering the stale one again.
	if c.cfg.Disable0RTT || c.noEarly.Swap(false) {
		return transport.Dial(ctx, addr, c.tls, &c.cfg.Transport)
	}
	return transport.DialEarly(ctx, addr, c.tls, &c.cfg.Transport, channels...)
}

// Status returns where the client stands.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Conn returns the current connection, or nil while disconnected.
func (c *Client) Conn() *transport.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	bm, bb := c.buf.held()
	return Stats{
		Reconnects:       c.reconnects.Load(),
		ZeroRTT:          c.zeroRTT.Load(),
		BufferedMessages: bm,
		BufferedBytes:    bb,
		MessagesResent:   c.resent.Load(),
		MessagesInDoubt:  c.inDoubt.Load(),
		MessagesFailed:   c.failed.Load(),
		MessagesUnacked:  c.unacked.Load(),
		Resumes:          c.resumes.Load(),
		EventsDropped:    c.eventsDropped.Load(),
		Migrations:       c.migrations.Load(),
		GapNotices:       c.gapNotices.Load(),
		MessagesMissed:   c.missed.Load(),
	}
}

// Channel returns the client's channel named name, creating it on first use
// (or on the first use after [Channel.Close]). The channel is opened on the
// current connection at once, and on every new connection after a
// reconnect.
func (c *Client) Channel(ctx context.Context, name string) (*Channel, error) {
	return c.ChannelWith(ctx, name, transport.ChannelOptions{})
}

// ChannelWith is Channel with options (a queue group), carried in the
// channel header on every connection the channel is opened on. The server
// must support them (transport.Conn.OpenChannelWith): without the HEADERS
// extension it fails with an error matching
// transport.ErrHeadersUnsupported. When the client has a channel of that
// name already, it returns it if it has the same options, and otherwise
// fails with an error matching ErrChannelOptions.
func (c *Client) ChannelWith(ctx context.Context, name string, opts transport.ChannelOptions) (*Channel, error) {
	c.mu.Lock()
	if c.status == StatusClosed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if ch, ok := c.channels[name]; ok {
		c.mu.Unlock()
		if ch.opts != opts {
			return nil, fmt.Errorf("client: channel %q has options %+v, not %+v: %w", name, ch.opts, opts, ErrChannelOptions)
		}
		return ch, nil
	}
	ch := newChannel(c, name, opts)
	c.channels[name] = ch
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		if err := ch.attach(ctx, conn, nil); err != nil && !isConnLost(conn, err) {
			c.forget(ch)
			return nil, err
		}
	}
	return ch, nil
}

// forget removes ch from the client's channels, if it is still there.
func (c *Client) forget(ch *Channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.channels[ch.name] == ch {
		delete(c.channels, ch.name)
	}
}

// run watches the current connection and replaces it when it ends or the
// server sends GOAWAY.
//
// A server that sent GOAWAY is draining: the client does not dial it again
// at once. It moves to the next address at once if there is one; it comes
// back to the same address only after a backoff delay, and a GOAWAY (or a
// close with GOING_AWAY) that arrives on a connection younger than the last
// delay's ceiling (the server is still draining) counts as a failed attempt:
// the next delay grows as after a failed dial, instead of the client
// spinning on the drain.
func (c *Client) run(conn *transport.Conn) {
	defer c.wg.Done()
	since := time.Now()
	streak := 0 // GOAWAYs in a row, each soon after its connection began
	for {
		var cause error
		goaway := false
		select {
		case <-c.ctx.Done():
			return
		case <-conn.Context().Done():
			cause = context.Cause(conn.Context())
		case <-conn.GoAwayReceived():
			goaway = true
			ga, _ := conn.PeerGoAway()
			cause = fmt.Errorf("client: server sent GOAWAY: %w: %s", ga.Code, ga.Reason)
		}
		c.handoff.Lock()
		if goaway {
			// New messages wait in the buffer while the old connection
			// finishes what it accepted; then the client leaves. What
			// the server did not acknowledge is held for a resume, or,
			// without one, counted in doubt if it did not confirm it.
			detached := c.detach(conn)
			c.closeAfterGoAway(conn)
			c.settle(conn, detached)
		} else {
			c.lost(conn)
		}
		c.handoff.Unlock()
		c.emit(Event{Type: EventDisconnected, Addr: c.addrs[c.currentAddr()], Err: cause})
		rejected := errors.Is(cause, transport.ErrEarlyDataRejected)
		c.noEarly.Store(rejected)
		immediate, from := rejected, 0
		// A server that closes an answered connection with GOING_AWAY
		// (accept queue full, Shutdown out of time) is draining: as a
		// GOAWAY for the schedule. A refusal before the HELLO is answered
		// fails the dial: reconnect's backoff, counted in MaxAttempts.
		if goaway || errors.Is(cause, transport.CodeGoingAway) {
			if time.Since(since) > c.cfg.Backoff.Ceiling(streak) {
				streak = 0
			}
			left := c.currentAddr()
			c.rotateAddr()
			immediate = streak == 0 && c.currentAddr() != left
			from = streak
			streak++
		} else {
			streak = 0
		}
		next, err := c.reconnect(immediate, from)
		if err != nil {
			// There is no connection left to close gracefully.
			c.shutdown(err)
			return
		}
		conn, since = next, time.Now()
	}
}

// closeAfterGoAway closes conn, whose server sent GOAWAY, gracefully: for
// the close timeout, as Close would, and no longer than Shutdown's context
// once the client is closing. A close the server confirmed leaves nothing
// unacknowledged (transport.Channel.Acked).
func (c *Client) closeAfterGoAway(conn *transport.Conn) {
	ctx, cancel := context.WithTimeout(c.abort, c.closeTimeout())
	defer cancel()
	_ = conn.Shutdown(ctx)
}

func (c *Client) currentAddr() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrIdx
}

func (c *Client) rotateAddr() {
	c.mu.Lock()
	c.addrIdx = (c.addrIdx + 1) % len(c.addrs)
	c.mu.Unlock()
}

// reconnect dials until a connection is up, following the backoff schedule
// from step from on (after GOAWAYs in a row); immediate skips the first delay.
func (c *Client) reconnect(immediate bool, from int) (*transport.Conn, error) {
	var last error
	for attempt := 0; ; attempt++ {
		if c.cfg.Backoff.exhausted(attempt) {
			return nil, &GaveUpError{Attempts: attempt, Last: last}
		}
		var delay time.Duration
		if !immediate || attempt > 0 {
			delay = c.cfg.Backoff.next(from+attempt, c.jitter)
		}
		addr := c.addrs[c.currentAddr()]
		c.emit(Event{Type: EventReconnecting, Addr: addr, Attempt: attempt, Delay: delay, Err: last})
		t := time.NewTimer(delay)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return nil, ErrClosed
		case <-t.C:
		}
		actx, cancel := context.WithTimeout(c.ctx, c.cfg.Backoff.AttemptWait(attempt, c.exchangeTimeout()))
		conn, resumed, err := c.connect(actx, addr)
		cancel()
		if err != nil {
			last = err
			// A session still attached to its old connection is
			// waited for where it is.
			if !errors.Is(err, transport.ErrSessionAttached) {
				c.rotateAddr()
			}
			continue
		}
		c.reconnects.Add(1)
		if resumed {
			c.resumes.Add(1)
		}
		c.handoff.Lock()
		attached := c.attach(conn, Event{Type: EventReconnected, Addr: addr, Resumed: resumed})
		c.handoff.Unlock()
		if !attached {
			return nil, ErrClosed
		}
		return conn, nil
	}
}

func (c *Client) channelNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Collect(maps.Keys(c.channels))
}

// earlyNames returns the names of the channels a new connection opens in
// its first flight (transport.DialEarly): those without options, which
// the first flight's channel headers do not carry; attach opens the
// others.
func (c *Client) earlyNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for name, ch := range c.channels {
		if ch.opts == (transport.ChannelOptions{}) {
			names = append(names, name)
		}
	}
	return names
}

// channelList returns the client's channels.
func (c *Client) channelList() []*Channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Collect(maps.Values(c.channels))
}

// attach makes conn the client's connection and reopens every channel on
// it. ev is emitted once the handshake has completed, when it is known
// whether 0-RTT was used. It reports false, and closes conn, when the client
// was closed meanwhile: Close has already settled the channels, and a
// connection attached after it would take messages nobody accounts for.
func (c *Client) attach(conn *transport.Conn, ev Event) bool {
	c.mu.Lock()
	if c.status == StatusClosed {
		c.mu.Unlock()
		_ = conn.CloseWithError(transport.CodeNoError, "client closed")
		return false
	}
	c.conn = conn
	c.status = StatusConnected
	close(c.connected)
	chans := slices.Collect(maps.Values(c.channels))
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-conn.HandshakeComplete():
			ev.Used0RTT = conn.Used0RTT()
			if ev.Used0RTT {
				c.zeroRTT.Add(1)
			}
			c.emit(ev)
		case <-conn.Context().Done():
		case <-c.ctx.Done():
		}
	}()
	early := make(map[string]*transport.Channel)
	for _, tch := range conn.EarlyChannels() {
		early[tch.Name()] = tch
	}
	for _, ch := range chans {
		// A failure here means the new connection is already gone; run
		// notices and detaches it.
		_ = ch.attach(c.ctx, conn, early[ch.name])
		delete(early, ch.name)
	}
	for _, tch := range early {
		tch.Reset(transport.CodeChannelClosed)
	}
	return true
}

// detach takes conn away from the client and its channels and returns
// what each channel had on it. It returns nil if conn is not current.
func (c *Client) detach(conn *transport.Conn) map[*Channel][]*transport.Channel {
	c.mu.Lock()
	if c.conn != conn || conn == nil {
		c.mu.Unlock()
		return nil
	}
	c.conn = nil
	if c.status != StatusClosed {
		c.status = StatusReconnecting
	}
	c.connected = make(chan struct{})
	chans := slices.Collect(maps.Values(c.channels))
	c.mu.Unlock()
	detached := make(map[*Channel][]*transport.Channel, len(chans))
	for _, ch := range chans {
		detached[ch] = ch.detach()
	}
	return detached
}

// settle retires the transport channels of conn, which has ended: their
// messages no longer count as received, and what they never delivered is
// kept for a resume of the session when it can be resumed, or put back or
// counted in doubt when it cannot (see Channel.recover).
func (c *Client) settle(conn *transport.Conn, detached map[*Channel][]*transport.Channel) {
	if detached == nil {
		return
	}
	resumable := c.keepToken(conn)
	for ch, old := range detached {
		ch.setRx(nil)
		ch.recover(old, resumable)
	}
}

// drop counts what the ended connection's channels wrote without the
// server confirming it as in doubt, and returns how many messages they never
// wrote, which the closing client will not send.
func (c *Client) drop(detached map[*Channel][]*transport.Channel) int {
	n := 0
	for _, old := range detached {
		for _, t := range old {
			c.inDoubt.Add(t.InDoubt())
			n += len(t.Unsent())
		}
	}
	return n
}

// lost handles the end of conn: it detaches it, if it is still current, and
// settles what it never delivered.
func (c *Client) lost(conn *transport.Conn) {
	c.settle(conn, c.detach(conn))
	// The connection has ended: this only waits for its goroutines.
	_ = conn.CloseWithError(transport.CodeNoError, "")
}

// Shutdown closes the client gracefully: it stops reconnecting and takes
// no new messages, and the current connection writes what it accepted and
// waits for the server to confirm reading it, until ctx ends; then the
// connection is closed at once. Messages still in the reconnect buffer,
// and those the connection did not write in time, are reported in an
// [UndeliveredError] and counted in Stats.MessagesFailed; those it wrote but
// the server did not confirm reading are counted in Stats.MessagesInDoubt.
// Every channel is closed. Shutdown is idempotent: every call waits for the
// first to finish, for the client's goroutines, and returns its result; a
// later call whose ctx ends first cuts the graceful part short.
func (c *Client) Shutdown(ctx context.Context) error {
	stop := context.AfterFunc(ctx, c.cancelAbort)
	defer stop()
	c.shutdown(ErrClosed)
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// Close is Shutdown bounded by the connection's close timeout
// (Config.Transport.CloseTimeout), so that a deferred Close neither hangs
// nor drops messages silently.
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.closeTimeout())
	defer cancel()
	return c.Shutdown(ctx)
}

func (c *Client) closeTimeout() time.Duration {
	if d := c.cfg.Transport.CloseTimeout; d > 0 {
		return d
	}
	return transport.DefaultCloseTimeout
}

// shutdown closes the client once, for why (ErrClosed, or ErrGaveUp from
// run): gracefully until c.abort ends, which every Shutdown caller's
// context does as it ends.
func (c *Client) shutdown(why error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.status = StatusClosed
		c.mu.Unlock()
		c.buf.close()
		// Ends the reconnect loop's waits and sends, so that handoff is
		// free soon; abort bounds what run may still be closing.
		c.cancel()
		defer c.cancelAbort()
		c.handoff.Lock()
		defer c.handoff.Unlock()
		c.mu.Lock()
		conn := c.conn
		c.mu.Unlock()
		var err error
		undelivered := 0
		if conn != nil {
			detached := c.detach(conn)
			err = conn.Shutdown(c.abort)
			undelivered = c.drop(detached)
		}
		for _, ch := range c.channelList() {
			undelivered += ch.fail()
		}
		if undelivered > 0 {
			c.failed.Add(uint64(undelivered))
			err = errors.Join(err, &UndeliveredError{Messages: undelivered, Err: why})
		} else if !errors.Is(why, ErrClosed) {
			err = errors.Join(err, why)
		}
		c.mu.Lock()
		c.closeErr = err
		c.conn = nil
		c.mu.Unlock()
		c.closeEvents(Event{Type: EventClosed, Err: err})
	})
}

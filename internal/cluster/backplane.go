package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/quicmsg/quicmsg/internal/relay"
)

// HeaderOrigin is the NATS header that carries the ID of the node that
// published a message that has headers. A node's plain subscriptions skip
// its own messages (NATS, which does not echo a node's messages to its
// plain subscriptions, already keeps them away). A quicmsg header of that
// name is not forwarded.
const HeaderOrigin = "quicmsg-origin"

// DropLogInterval is the least time between two log lines about drops of
// one reason; each line gives the count so far.
const DropLogInterval = time.Second

// Backplane is a relay.Backplane over two NATS connections. Create it
// with [New], hand it to the relay as relay.Config.Backplane, then
// [Backplane.Attach] the relay. All methods are safe for concurrent use.
//
// The main connection is made with nats.go's NoEcho: it publishes the
// node's messages and holds its plain subscriptions, so the NATS server
// never sends a node its own messages back there (no parsing, no
// delivery, no work for NATS). The queue connection holds the queue
// subscriptions, which must be able to take the node's own messages (NATS
// picks a member among all nodes, this one included).
type Backplane struct {
	cfg   Config
	nc    *nats.Conn // no echo: local messages, plain subscriptions
	qnc   *nats.Conn // queue subscriptions
	log   *slog.Logger
	ctx   context.Context // ends at Close
	stop  context.CancelFunc
	wg    sync.WaitGroup // the interest loop and the RTT loop
	wake  chan struct{}  // cap 1: the interest loop has work
	hs    handlers       // the NATS message handlers running
	gone  chan struct{}  // closed by nats.go's ClosedHandler of nc
	qgone chan struct{}  // the same for qnc
	close sync.Once

	// relay is set once by Attach, before any NATS subscription exists.
	relay     *relay.Relay
	attaching atomic.Bool // Attach was called
	attached  atomic.Bool // relay is set

	lost       atomic.Pointer[error] // why nats.go closed the connection, when Close did not
	joinedOnce atomic.Bool           // the connection has been up at least once
	buffered   atomic.Uint64         // messages published while NATS was down, since the last connection

	subMu sync.Mutex // held while a NATS subscription is made or ended

	mu      sync.Mutex
	refs    map[key]int                // local interest, from Interest
	dirty   map[key]struct{}           // changed since the loop last looked
	waiters []chan struct{}            // Sync calls waiting for the loop
	subs    map[key]*nats.Subscription // written by the loop alone
	retired uint64                     // slow consumer drops of ended subscriptions

	rtt                                            atomic.Int64 // nanoseconds; 0 while NATS is down
	published, received, own, subFailed, noResp503 atomic.Uint64
	dropped                                        [len(dropReasons)]atomic.Uint64 // by index in dropReasons
	lastLog                                        [len(dropReasons)]atomic.Int64  // unix nanoseconds, per reason
}

// key is a (pattern, group) with local interest; group "" is plain.
type key struct{ pattern, group string }

// New connects to NATS and returns a backplane. It fails when no server of
// cfg.URLs can be reached, unless cfg.Options holds
// nats.RetryOnFailedConnect(true) (it then keeps trying in the
// background), or when cfg is invalid; once connected, nats.go reconnects
// for ever.
func New(cfg *Config) (*Backplane, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Backplane{
		cfg:   c,
		log:   c.Logger.With("node", c.NodeID),
		wake:  make(chan struct{}, 1),
		hs:    handlers{idle: make(chan struct{}, 1)},
		gone:  make(chan struct{}),
		qgone: make(chan struct{}),
		refs:  make(map[key]int),
		dirty: make(map[key]struct{}),
		subs:  make(map[key]*nats.Subscription),
	}
	b.ctx, b.stop = context.WithCancel(context.Background())
	// Both connections carry the node's name, so that nats-server's
	// monitoring shows one client name per node.
	if b.nc, err = b.connect("main", b.gone, b.reconnected, nats.NoEcho()); err != nil {
		b.stop()
		return nil, err
	}
	if b.nc.IsConnected() {
		b.joinedOnce.Store(true)
	}
	if b.qnc, err = b.connect("queue", b.qgone, b.logConnected); err != nil {
		b.stop()
		b.nc.Close()
		return nil, err
	}
	b.wg.Add(1)
	go b.measureRTT()
	return b, nil
}

// connect makes one of the backplane's NATS connections, which role
// ("main" or "queue") names in log lines: gone is closed once nats.go has
// closed it, onConnect runs on each connection made after New returned,
// and extra options go after the user's, which cannot override them.
func (b *Backplane) connect(role string, gone chan struct{}, onConnect nats.ConnHandler, extra ...nats.Option) (*nats.Conn, error) {
	c := &b.cfg
	opts := []nats.Option{
		nats.Name("quicsrv " + c.NodeID),
		nats.MaxReconnects(-1),
		nats.IgnoreAuthErrorAbort(),
		nats.DrainTimeout(c.CloseTimeout),
		nats.ReconnectBufSize(c.ReconnectBufSize),
	}
	opts = append(opts, c.Options...)
	opts = append(opts, extra...)
	opts = append(opts,
		nats.DisconnectErrHandler(b.disconnected),
		nats.ReconnectHandler(onConnect),
		nats.ConnectHandler(onConnect), // the first connection, when it was retried
		nats.ErrorHandler(b.asyncError),
		nats.ClosedHandler(func(nc *nats.Conn) { b.closed(nc, role, gone) }),
	)
	nc, err := nats.Connect(c.URLs, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connecting to NATS at %s: %w", c.URLs, err)
	}
	if nc.IsConnected() {
		b.log.Info("connected to NATS", "conn", role, "url", nc.ConnectedUrlRedacted())
	}
	return nc, nil
}

// Attach hands the backplane the relay that messages from other nodes go
// to, and starts bringing the NATS subscriptions in line with the
// interest reported so far. Call it once, after relay.New.
func (b *Backplane) Attach(r *relay.Relay) error {
	if !b.attaching.CompareAndSwap(false, true) {
		return errors.New("cluster: Attach called twice")
	}
	b.relay = r
	// Ended with the connection, at Close.
	if _, err := b.nc.Subscribe(b.noRespPrefix()+"*", b.noResponders); err != nil {
		return fmt.Errorf("cluster: subscribing to no responders replies: %w", err)
	}
	b.mu.Lock()
	b.attached.Store(true) // from now on Interest subscribes itself
	b.mu.Unlock()
	b.wg.Add(1)
	go b.loop()
	b.poke()
	return nil
}

// joined reports whether the NATS connection has been up since New.
// Before that nats.go knows neither the server's max_payload nor whether
// it takes headers: it refuses every message with headers
// (nats.ErrHeadersNotSupported) and would buffer one larger than
// max_payload, which the server would answer by closing the connection.
func (b *Backplane) joined() bool {
	if b.joinedOnce.Load() {
		return true
	}
	if b.nc.IsConnected() {
		b.joinedOnce.Store(true)
		return true
	}
	return false
}

// NodeID returns the node's ID, as carried in HeaderOrigin.
func (b *Backplane) NodeID() string { return b.cfg.NodeID }

// Connected reports whether the main NATS connection, which publishes the
// node's messages, is up. The queue connection goes to the same servers
// and follows it within nats.go's reconnect wait.
func (b *Backplane) Connected() bool { return b.nc.IsConnected() }

// measureRTT measures the round trip to NATS every Config.RTTInterval
// until Close. While NATS is down it sends nothing, so that no PING takes
// room in the reconnect buffer.
func (b *Backplane) measureRTT() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.RTTInterval)
	defer t.Stop()
	for {
		var d time.Duration
		if b.nc.IsConnected() {
			ctx, cancel := context.WithTimeout(b.ctx, b.cfg.RTTInterval)
			start := time.Now()
			if b.nc.FlushWithContext(ctx) == nil {
				d = time.Since(start)
			}
			cancel()
		}
		b.rtt.Store(int64(d))
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync waits until the NATS subscriptions match the interest reported
// before the call and the NATS server has seen every change and every
// message sent before it (a round trip). It fails when ctx ends, the
// backplane closes or NATS is unreachable.
func (b *Backplane) Sync(ctx context.Context) error {
	if !b.attached.Load() {
		return errors.New("cluster: Sync before Attach")
	}
	w := make(chan struct{})
	b.mu.Lock()
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	b.poke()
	select {
	case <-w:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.ctx.Done():
		return ErrClosed
	}
	if err := b.qnc.FlushWithContext(ctx); err != nil {
		return err
	}
	return b.nc.FlushWithContext(ctx)
}

// Close stops the backplane: it stops the interest loop, waits up to
// Config.CloseTimeout for buffered messages to reach NATS (while NATS is
// down, those left are counted as DropClosed), drains the NATS connection
// (the messages NATS has sent the node go through the handlers, up to
// Config.CloseTimeout) and waits for nats.go to report it closed, then
// waits up to Config.CloseTimeout for handlers still running: no handler
// is in the relay once Close returns. A queue group's message that the
// closed relay or backplane no longer takes is counted as DropClosed.
// Close is idempotent; later calls wait as the first does.
func (b *Backplane) Close() error {
	b.close.Do(func() {
		b.stop()
		b.wg.Wait()
		if b.nc.IsConnected() {
			if err := b.nc.FlushTimeout(b.cfg.CloseTimeout); err != nil {
				b.log.Warn("closing: messages may not have reached NATS", "err", err)
			}
		}
		b.dropBuffered()
		b.drain(b.qnc, b.qgone)
		b.drain(b.nc, b.gone)
		b.waitHandlers(b.cfg.CloseTimeout)
	})
	return nil
}

func (b *Backplane) disconnected(nc *nats.Conn, err error) {
	if b.ctx.Err() == nil && !nc.IsClosed() {
		b.log.Warn("NATS connection lost: reconnecting; messages are buffered up to the limit, then dropped",
			"err", err, "buffer_bytes", b.cfg.ReconnectBufSize)
	}
}

// closed runs once nats.go has closed the connection. When Close did not
// ask for it, nats.go has given up for good (the NATS server refused the
// connection with an error that nats.go does not retry): messages no
// longer cross nodes until the node restarts, which Lost reports.
func (b *Backplane) closed(nc *nats.Conn, role string, gone chan struct{}) {
	if b.ctx.Err() == nil {
		err := nc.LastError()
		if err == nil {
			err = nats.ErrConnectionClosed
		}
		b.lost.Store(&err)
		b.log.Error("NATS connection closed for good: messages no longer cross nodes; restart the node",
			"conn", role, "err", err)
	}
	close(gone)
}

// Lost returns why the NATS connection closed for good without Close, or
// nil. nats.go reconnects for ever after network faults and auth errors,
// but gives up when a NATS server closes the connection with another
// protocol error; the node then serves its own sessions only until it
// restarts.
func (b *Backplane) Lost() error {
	if p := b.lost.Load(); p != nil {
		return *p
	}
	return nil
}

// reconnected logs a connection of the main connection made by nats.go
// after New returned.
func (b *Backplane) reconnected(nc *nats.Conn) {
	b.joinedOnce.Store(true)
	b.buffered.Store(0) // nats.go has sent them
	b.log.Info("connected to NATS", "conn", "main", "url", nc.ConnectedUrlRedacted(), "dropped_nats_down", b.dropped[0].Load())
}

// logConnected logs a connection of the queue connection made by nats.go
// after New returned.
func (b *Backplane) logConnected(nc *nats.Conn) {
	b.log.Info("connected to NATS", "conn", "queue", "url", nc.ConnectedUrlRedacted())
}

// asyncError logs what nats.go reports off the call path; NATS slow
// consumer drops are counted in Stats from the subscriptions' counts.
func (b *Backplane) asyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) && sub != nil {
		b.logDrop(DropSlowConsumer, sub.Subject, err)
		return
	}
	b.log.Warn("NATS error", "err", err)
}

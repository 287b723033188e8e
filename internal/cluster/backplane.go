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
// published a message. A node's plain subscriptions skip its own messages.
// A quicmsg header of that name is not forwarded.
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
// delivery, no work for NATS). The queue connection echoes: it holds the
// queue subscriptions, which must be able to take the node's own messages
// (NATS picks a member among all nodes, this one included), and publishes
// requests, whose "no responders" status needs a local responder to count
// as one (see Forward).
type Backplane struct {
	cfg   Config
	nc    *nats.Conn // no echo: local messages, plain subscriptions
	qnc   *nats.Conn // echo: queue subscriptions, requests
	log   *slog.Logger
	ctx   context.Context // ends at Close
	stop  context.CancelFunc
	wg    sync.WaitGroup   // the interest loop and the RTT loop
	wake  chan struct{}    // cap 1: the interest loop has work
	gone  [2]chan struct{} // closed by nats.go's ClosedHandler of nc, qnc
	close sync.Once

	// relay is set once by Attach, before any NATS subscription exists.
	relay    *relay.Relay
	attached atomic.Bool

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
		gone:  [2]chan struct{}{make(chan struct{}), make(chan struct{})},
		refs:  make(map[key]int),
		dirty: make(map[key]struct{}),
		subs:  make(map[key]*nats.Subscription),
	}
	b.ctx, b.stop = context.WithCancel(context.Background())
	if b.nc, err = b.connect("quicsrv "+c.NodeID, b.gone[0], nats.NoEcho()); err != nil {
		b.stop()
		return nil, err
	}
	if b.qnc, err = b.connect("quicsrv "+c.NodeID+" queue", b.gone[1]); err != nil {
		b.stop()
		b.nc.Close()
		return nil, err
	}
	b.wg.Add(1)
	go b.measureRTT()
	return b, nil
}

// connect makes one of the backplane's NATS connections, named name;
// extra options go after the user's, which cannot override them.
func (b *Backplane) connect(name string, gone chan struct{}, extra ...nats.Option) (*nats.Conn, error) {
	c := &b.cfg
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(c.ReconnectBufSize),
	}
	opts = append(opts, c.Options...)
	opts = append(opts, extra...)
	opts = append(opts,
		nats.DisconnectErrHandler(b.disconnected),
		nats.ReconnectHandler(b.reconnected),
		nats.ConnectHandler(b.reconnected), // the first connection, when it was retried
		nats.ErrorHandler(b.asyncError),
		nats.ClosedHandler(func(*nats.Conn) { close(gone) }),
	)
	nc, err := nats.Connect(c.URLs, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connecting to NATS at %s: %w", c.URLs, err)
	}
	if nc.IsConnected() {
		b.log.Info("connected to NATS", "conn", name, "url", nc.ConnectedUrlRedacted())
	}
	return nc, nil
}

// Attach hands the backplane the relay that messages from other nodes go
// to, and starts bringing the NATS subscriptions in line with the
// interest reported so far. Call it once, after relay.New.
func (b *Backplane) Attach(r *relay.Relay) error {
	if !b.attached.CompareAndSwap(false, true) {
		return errors.New("cluster: Attach called twice")
	}
	b.relay = r
	// Ended with the connection, at Close. On the connection that
	// publishes requests: NATS sends the status to the publisher's
	// subscription alone.
	if _, err := b.qnc.Subscribe(b.noRespPrefix()+"*", b.noResponders); err != nil {
		return fmt.Errorf("cluster: subscribing to no responders replies: %w", err)
	}
	b.wg.Add(1)
	go b.loop()
	b.poke()
	return nil
}

// NodeID returns the node's ID, as carried in HeaderOrigin.
func (b *Backplane) NodeID() string { return b.cfg.NodeID }

// Connected reports whether both NATS connections are up.
func (b *Backplane) Connected() bool { return b.nc.IsConnected() && b.qnc.IsConnected() }

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
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return err
	}
	return b.qnc.FlushWithContext(ctx)
}

// Close stops the backplane: it stops the interest loop, waits up to
// Config.CloseTimeout for buffered messages to reach NATS (what remains is
// logged), closes the NATS connections and waits for nats.go to report
// them closed. Close is idempotent; later calls wait as the first does.
func (b *Backplane) Close() error {
	b.close.Do(func() {
		b.stop()
		b.wg.Wait()
		deadline := time.Now().Add(b.cfg.CloseTimeout)
		for i, nc := range []*nats.Conn{b.nc, b.qnc} {
			b.closeConn(nc, b.gone[i], deadline)
		}
	})
	return nil
}

// closeConn flushes nc until deadline (one for both connections), closes
// it and waits up to Config.CloseTimeout for gone.
func (b *Backplane) closeConn(nc *nats.Conn, gone chan struct{}, deadline time.Time) {
	if nc.IsConnected() {
		if err := nc.FlushTimeout(max(time.Until(deadline), time.Millisecond)); err != nil {
			b.log.Warn("closing: messages may not have reached NATS", "err", err)
		}
	}
	if n, err := nc.Buffered(); err == nil && n > 0 {
		b.log.Warn("closing with messages not sent to NATS", "bytes", n)
	}
	nc.Close()
	select {
	case <-gone:
	case <-time.After(b.cfg.CloseTimeout):
		b.log.Warn("closing: NATS did not report the connection closed", "timeout", b.cfg.CloseTimeout)
	}
}

func (b *Backplane) disconnected(_ *nats.Conn, err error) {
	if b.ctx.Err() == nil {
		b.log.Warn("NATS connection lost: reconnecting; messages are buffered up to the limit, then dropped",
			"err", err, "buffer_bytes", b.cfg.ReconnectBufSize)
	}
}

// reconnected logs a connection made by nats.go after New returned.
func (b *Backplane) reconnected(nc *nats.Conn) {
	b.log.Info("connected to NATS", "conn", nc.Opts.Name, "url", nc.ConnectedUrlRedacted(), "dropped_nats_down", b.dropped[0].Load())
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

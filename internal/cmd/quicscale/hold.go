package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/internal/wire"
	"github.com/quicmsg/quicmsg/transport"
)

// echoSize is the size of every echo the sessions exchange.
const echoSize = 64

// settle is how long the server is left alone between the last set-up and
// its reading, so that what the set-up left behind (handshake state, the
// last echoes) is gone.
const settle = 2 * time.Second

// afterFailure bounds the readings and the echo check made after a failed
// set-up, which may have ended with the run's -deadline.
const afterFailure = time.Minute

// session is one held session: a quicmsg session with its channel
// (quicmsgSession) or, with -raw, a raw quic-go connection with its stream
// (rawSession).
type session interface {
	// echo exchanges one echo naming session i.
	echo(ctx context.Context, i int) error
	close()
}

// quicmsgSession is a session of quicsrv and its channel.
type quicmsgSession struct {
	conn *transport.Conn
	ch   *transport.Channel
}

func (s quicmsgSession) echo(ctx context.Context, i int) error { return echo(ctx, s.ch, i) }
func (s quicmsgSession) close()                                { _ = s.conn.CloseWithError(transport.CodeNoError, "") }

// holder sets up, holds, checks and closes the sessions of hold mode.
type holder struct {
	o        *options
	tlsConf  *tls.Config
	tcfg     transport.Config
	rawQUIC  *quic.Config // -raw: the connections' quic.Config
	rawAddr  *net.UDPAddr // -raw: the server's address
	socks    *sockets
	sessions []session // element i written only by the set-up of session i
	pace     *pacer
	setUps   atomic.Int64               // sessions set up
	retries  [retryReasons]atomic.Int64 // set-ups tried again, by reason
	gaveUp   atomic.Int64               // set-ups still failing after -retries
	// dialNanos and echoNanos sum the time the set-ups spent in Dial and
	// in opening the channel and its first echo.
	dialNanos, echoNanos atomic.Int64
}

func clientTLS(caFile string) (*tls.Config, error) {
	conf, err := certs.ClientConfig(certs.ClientOptions{CAFile: caFile})
	if err != nil {
		return nil, fmt.Errorf("TLS set-up: %w", err)
	}
	return conf, nil
}

func newHolder(o *options) (*holder, error) {
	tlsConf, err := clientTLS(o.caFile)
	if err != nil {
		return nil, err
	}
	h := &holder{
		o:        o,
		tlsConf:  tlsConf,
		tcfg:     transport.Config{HandshakeTimeout: o.opTimeout, KeepAlivePeriod: o.keepAlive, IdleTimeout: o.idleTimeout},
		socks:    newSockets(o.perSocket),
		sessions: make([]session, o.n),
		pace:     newPacer(o.concurrency, o.slow),
	}
	if o.raw {
		if h.rawQUIC, err = h.tcfg.QUICConfig(); err != nil {
			return nil, err
		}
		if h.rawAddr, err = net.ResolveUDPAddr("udp", o.addr); err != nil {
			return nil, fmt.Errorf("-addr: %w", err)
		}
		h.tlsConf.NextProtos = []string{wire.ALPN}
	}
	return h, nil
}

// setUpPaced sets up session i when the pacer lets it, and tries again
// after a failure that retryable accepts, up to -retries times; each retry
// is counted by its reason.
func (h *holder) setUpPaced(ctx context.Context, i int) error {
	for attempt := 0; ; attempt++ {
		t, err := h.pace.acquire(ctx)
		if err != nil {
			return err
		}
		err = h.setUp(ctx, i)
		reason, again := retryable(err)
		h.pace.release(t, time.Since(t.start), err != nil && again)
		switch {
		case err == nil:
			h.setUps.Add(1)
			return nil
		case !again || ctx.Err() != nil:
			return err
		case attempt == h.o.retries:
			h.gaveUp.Add(1)
			return fmt.Errorf("%w (after %d retries)", err, attempt)
		}
		h.retries[reason].Add(1)
	}
}

// setUp dials session i, opens its channel and exchanges one echo on it.
func (h *holder) setUp(ctx context.Context, i int) error {
	ctx, cancel := context.WithTimeout(ctx, h.o.opTimeout)
	defer cancel()
	tr, err := h.socks.get()
	if err != nil {
		return fmt.Errorf("session %d: opening a UDP socket: %w", i, err)
	}
	start := time.Now()
	var dialled time.Time
	connect := h.connectQuicmsg
	if h.o.raw {
		connect = h.connectRaw
	}
	s, err := connect(ctx, tr, i, func() {
		dialled = time.Now()
		h.dialNanos.Add(int64(dialled.Sub(start)))
	})
	if !dialled.IsZero() {
		h.echoNanos.Add(int64(time.Since(dialled)))
	}
	if err != nil {
		return fmt.Errorf("session %d: %w", i, err)
	}
	h.sessions[i] = s
	return nil
}

// connectQuicmsg dials a quicmsg session on tr, calls dialled, opens the
// session's channel and exchanges the first echo on it; it closes the
// session if that fails.
func (h *holder) connectQuicmsg(ctx context.Context, tr *quic.Transport, i int, dialled func()) (session, error) {
	c, err := transport.DialTransport(ctx, tr, h.o.addr, h.tlsConf, &h.tcfg)
	if err != nil {
		return nil, err
	}
	dialled()
	ch, err := c.OpenChannel(ctx, "scale")
	if err == nil {
		err = echo(ctx, ch, i)
	}
	if err != nil {
		_ = c.CloseWithError(transport.CodeNoError, "")
		return nil, err
	}
	return quicmsgSession{conn: c, ch: ch}, nil
}

// echo sends a 64-byte message naming session i on ch and checks that the
// same comes back.
func echo(ctx context.Context, ch *transport.Channel, i int) error {
	msg := make([]byte, echoSize)
	binary.BigEndian.PutUint64(msg, uint64(i))
	if err := ch.Send(ctx, msg); err != nil {
		return fmt.Errorf("echo: send: %w", err)
	}
	got, err := ch.Receive(ctx)
	if err != nil {
		return fmt.Errorf("echo: receive: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo: got %d bytes that are not the %d sent", len(got), len(msg))
	}
	return nil
}

// check has every set-up session exchange one more echo and returns how
// many answered and the first failure. Sessions whose set-up failed are
// skipped.
func (h *holder) check(ctx context.Context) (int, error) {
	var answered atomic.Int64
	var once sync.Once
	var first error
	_, err := parallel(ctx, len(h.sessions), h.o.concurrency, func(ctx context.Context, i int) error {
		if h.sessions[i] == nil {
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, h.o.opTimeout)
		defer cancel()
		if err := h.sessions[i].echo(ctx, i); err != nil {
			once.Do(func() { first = fmt.Errorf("session %d: %w", i, err) })
			return nil
		}
		answered.Add(1)
		return nil
	})
	if err != nil {
		return int(answered.Load()), err
	}
	return int(answered.Load()), first
}

// close closes every session, then the sockets.
func (h *holder) close() {
	var wg sync.WaitGroup
	for w := range h.o.concurrency {
		wg.Go(func() {
			for i := w; i < len(h.sessions); i += h.o.concurrency {
				if s := h.sessions[i]; s != nil {
					s.close()
				}
			}
		})
	}
	wg.Wait()
	h.socks.close()
}

// holdResult is what hold mode measured.
type holdResult struct {
	n, warm, setUp   int
	setUpTime        time.Duration
	server0, server1 usage // before and after the set-up
	serverHeld       usage // after the hold
	client0, client1 usage
	sockets          int
}

// holdSessions is hold mode.
func holdSessions(ctx context.Context, o *options, stdout io.Writer) error {
	h, err := newHolder(o)
	if err != nil {
		return err
	}
	defer h.close()
	r := &holdResult{n: o.n, warm: min(10, o.n/10)}
	// Warm-up sessions take the one-time costs (TLS tables, pools,
	// goroutine stacks to reuse) before the first reading.
	if _, err := parallel(ctx, r.warm, o.concurrency, h.setUpPaced); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if r.server0, err = h.settleAndRead(ctx); err != nil {
		return err
	}
	r.client0 = selfUsage()
	start := time.Now()
	stopProgress := h.progress(stdout, start)
	r.setUp, err = parallel(ctx, o.n-r.warm, o.concurrency, func(ctx context.Context, i int) error {
		return h.setUpPaced(ctx, r.warm+i)
	})
	r.setUpTime = time.Since(start)
	stopProgress()
	r.setUp += r.warm
	r.sockets = h.socks.count()
	if err != nil {
		fmt.Fprintf(stdout, "set-up failed after %d of %d sessions in %.1f s; the figures of the %d set up:\n", r.setUp, o.n, r.setUpTime.Seconds(), r.setUp)
		r.n = r.setUp
		// The figures of what was set up, and whether it still answers,
		// are read even when the run's -deadline ended the set-up.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), afterFailure)
		defer cancel()
	}
	var rerr error
	if r.server1, rerr = h.settleAndRead(ctx); rerr != nil {
		return errors.Join(err, rerr)
	}
	r.client1 = selfUsage()
	r.report(stdout, o)
	h.reportSetUp(stdout)
	if err != nil {
		answered, cerr := h.check(ctx)
		fmt.Fprintf(stdout, "echo once the set-up stopped: %d of %d sessions answered\n", answered, r.n)
		return errors.Join(err, cerr)
	}
	return h.holdAndCheck(ctx, r, stdout)
}

// progress prints, every -progress until the returned stop is called, how
// many sessions are set up and how the pacer stands.
func (h *holder) progress(w io.Writer, start time.Time) (stop func()) {
	if h.o.progress <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(h.o.progress)
		defer t.Stop()
		last := h.setUps.Load()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			n, ps := h.setUps.Load(), h.pace.stats()
			fmt.Fprintf(w, "progress: %d sessions set up after %.0f s, %.0f sessions/s in the last %s; window %d, %d back-offs, %d retries\n",
				n, time.Since(start).Seconds(), float64(n-last)/h.o.progress.Seconds(), h.o.progress, ps.limit, ps.backoffs, h.retried())
			last = n
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// retried returns the number of set-ups tried again.
func (h *holder) retried() int64 {
	var n int64
	for i := range h.retries {
		n += h.retries[i].Load()
	}
	return n
}

// reportSetUp prints how the set-ups went: their mean time, the pacing and
// the retries.
func (h *holder) reportSetUp(w io.Writer) {
	n := float64(h.setUps.Load())
	dial, first := "dial and HELLO", "channel and first echo"
	if h.o.raw {
		dial, first = "dial (TLS handshake)", "stream and first echo"
	}
	fmt.Fprintf(w, "set-up time per session (mean): %s %.1f ms, %s %.1f ms (failed attempts included)\n",
		dial, float64(h.dialNanos.Load())/n/1e6, first, float64(h.echoNanos.Load())/n/1e6)
	ps := h.pace.stats()
	fmt.Fprintf(w, "pacing: up to %d set-ups at once, %d at the narrowest, %d at the end; %d back-offs (a set-up slower than %s, or failing as below)\n",
		h.o.concurrency, ps.lowest, ps.limit, ps.backoffs, h.o.slow)
	fmt.Fprintf(w, "retries: %d (%s %d, %s %d, %s %d); set-ups failed after %d retries: %d\n", h.retried(),
		retryNames[retryTimeout], h.retries[retryTimeout].Load(), retryNames[retryClosed], h.retries[retryClosed].Load(),
		retryNames[retryRefused], h.retries[retryRefused].Load(), h.o.retries, h.gaveUp.Load())
	fmt.Fprintf(w, "client transport: keep-alive %s, idle timeout %s (the connection's idle timeout is the smaller of both sides'; the server's keep-alives count too)\n",
		durationOrDefault(h.o.keepAlive, transport.DefaultKeepAlivePeriod), durationOrDefault(h.o.idleTimeout, transport.DefaultIdleTimeout))
}

// durationOrDefault formats a transport.Config duration: 0 is the
// default, negative is off.
func durationOrDefault(d, def time.Duration) string {
	switch {
	case d < 0:
		return "off"
	case d == 0:
		return def.String()
	}
	return d.String()
}

// holdAndCheck holds the sessions for -hold, reads the server again and
// checks that every session answers.
func (h *holder) holdAndCheck(ctx context.Context, r *holdResult, stdout io.Writer) error {
	select {
	case <-time.After(h.o.hold):
	case <-ctx.Done():
		return ctx.Err()
	}
	var err error
	if r.serverHeld, err = serverUsage(ctx, h.o.serverPID, h.o.metricsURL); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "server after a %s hold: RSS %s, goroutines %d; CPU while held: %.0f %% of a core\n",
		h.o.hold, mib(r.serverHeld.rss), r.serverHeld.goroutines, cpuShare(r.server1, r.serverHeld))
	answered, err := h.check(ctx)
	fmt.Fprintf(stdout, "echo after the hold: %d of %d sessions answered\n", answered, r.n)
	if err != nil {
		return fmt.Errorf("%d of %d sessions did not answer after the hold; the first: %w", r.n-answered, r.n, err)
	}
	return nil
}

// settleAndRead waits for the server to settle, then reads its usage.
func (h *holder) settleAndRead(ctx context.Context) (usage, error) {
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return unknownUsage(), ctx.Err()
	}
	return serverUsage(ctx, h.o.serverPID, h.o.metricsURL)
}

// report prints the figures of the set-up.
func (r *holdResult) report(w io.Writer, o *options) {
	m := r.n - r.warm
	what := "quicmsg sessions, each one channel"
	if o.raw {
		what = "raw quic-go connections, each one stream"
	}
	fmt.Fprintf(w, "sessions: %d held (%d warm-up + %d measured), %s with one %d B echo; %d sockets, up to %d connections each; %d set up at a time\n",
		r.n, r.warm, m, what, echoSize, r.sockets, o.perSocket, o.concurrency)
	fmt.Fprintf(w, "set-up: %d sessions in %.2f s: %.0f sessions/s\n", m, r.setUpTime.Seconds(), float64(m)/r.setUpTime.Seconds())
	s0, s1, c0, c1 := r.server0, r.server1, r.client0, r.client1
	fmt.Fprintf(w, "server RSS: %s with %d sessions (%s before the measured ones): %.1f KiB per session\n",
		mib(s1.rss), r.n, mib(s0.rss), perSessionKiB(s0.rss, s1.rss, m))
	fmt.Fprintf(w, "server heap in use: %s (%s before): %.1f KiB per session\n", mib(s1.heap), mib(s0.heap), perSessionKiB(s0.heap, s1.heap, m))
	fmt.Fprintf(w, "server stacks: %s (%s before): %.1f KiB per session\n", mib(s1.stack), mib(s0.stack), perSessionKiB(s0.stack, s1.stack, m))
	fmt.Fprintf(w, "server goroutines: %d (%d before): %.2f per session\n", s1.goroutines, s0.goroutines, perSessionCount(s0.goroutines, s1.goroutines, m))
	fmt.Fprintf(w, "server CPU from the first reading to the second (the set-up and %s settling): %.0f %% of a core, %s per session\n",
		settle, cpuShare(s0, s1), cpuString(perConn(s0.cpu, s1.cpu, m)))
	fmt.Fprintf(w, "client (this process, apart): RSS %s, heap in use %s, stacks %s, goroutines %d: %.1f KiB RSS, %.1f KiB heap, %.2f goroutines per session\n",
		mib(c1.rss), mib(c1.heap), mib(c1.stack), c1.goroutines,
		perSessionKiB(c0.rss, c1.rss, m), perSessionKiB(c0.heap, c1.heap, m), perSessionCount(c0.goroutines, c1.goroutines, m))
}

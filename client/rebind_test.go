package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/udpproxy"
	"github.com/quicmsg/quicmsg/session"
)

// A NAT rebinding (the client's source port changes) is absorbed by QUIC:
// quic-go's server validates the new path and moves the connection to it
// once the client sends from the new address (see transport/rebind_test.go
// for how and when), so the Client sees no disconnection at all. Traffic in
// both directions keeps the client sending; a client that only receives
// sends its keep-alive (Transport.KeepAlivePeriod, 10 s by default) first.

// seqFlow is one direction of numbered traffic: messages "seq:i", i from 0
// to n-1, that must arrive once and in order. It records when each arrived.
type seqFlow struct {
	name string
	n    int
	sent atomic.Int64 // messages handed to Send so far

	mu      sync.Mutex
	arrived []time.Time // index i: when message i arrived
	err     error       // the first message out of order, if any
}

func newSeqFlow(name string, n int) *seqFlow {
	return &seqFlow{name: name, n: n, arrived: make([]time.Time, 0, n)}
}

// arrive records msg, which must be the next message of the flow.
func (f *seqFlow) arrive(msg []byte) {
	now := time.Now()
	i, err := strconv.Atoi(strings.TrimPrefix(string(msg), "seq:"))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return
	}
	if err != nil || i != len(f.arrived) {
		f.err = fmt.Errorf("%s: got %q, want seq:%d (each message once, in order)", f.name, msg, len(f.arrived))
		return
	}
	f.arrived = append(f.arrived, now)
}

// progress returns how many messages arrived and the first error.
func (f *seqFlow) progress() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.arrived), f.err
}

// send sends the flow's n messages with send, one every pace.
func (f *seqFlow) send(ctx context.Context, send func(context.Context, []byte) error, pace time.Duration) error {
	for i := range f.n {
		f.sent.Store(int64(i))
		if err := send(ctx, seq(i)); err != nil {
			return fmt.Errorf("%s: send %d: %w", f.name, i, err)
		}
		time.Sleep(pace)
	}
	f.sent.Store(int64(f.n))
	return nil
}

// waitArrived waits until n messages of the flow arrived, failing on an
// error.
func (f *seqFlow) waitArrived(t testing.TB, n int) {
	t.Helper()
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool {
		got, err := f.progress()
		return got >= n || err != nil
	}, 60*time.Second, time.Millisecond, "%s: waiting for %d messages", f.name, n)
	_, err := f.progress()
	require.NoError(t, err)
}

// natRig is a Client behind a udpproxy with traffic both ways: "up" from
// the client to the session handler, "down" from the server's session to
// the client. The sending and receiving goroutines are owned by the rig:
// start starts them and wait joins them.
type natRig struct {
	proxy    *udpproxy.Proxy
	srv      *session.Server
	c        *Client
	log      *eventLog
	sess     *session.Session
	up, down *seqFlow
	chUp     *Channel
	chDown   *Channel
	flowRunner
}

// flowRunner owns a test's traffic goroutines: goSend and goReceive start
// them, wait joins them and returns their errors.
type flowRunner struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func (tr *flowRunner) report(err error) {
	tr.mu.Lock()
	tr.errs = append(tr.errs, err)
	tr.mu.Unlock()
}

// goSend sends f with send, one message every pace.
func (tr *flowRunner) goSend(ctx context.Context, f *seqFlow, send func(context.Context, []byte) error, pace time.Duration) {
	tr.wg.Go(func() { tr.report(f.send(ctx, send, pace)) })
}

// goReceive receives f's messages from ch.
func (tr *flowRunner) goReceive(ctx context.Context, f *seqFlow, ch *Channel) {
	tr.wg.Go(func() {
		for range f.n {
			msg, err := ch.Receive(ctx)
			if err != nil {
				tr.report(fmt.Errorf("%s: receive: %w", f.name, err))
				return
			}
			f.arrive(msg)
		}
	})
}

// wait joins the traffic goroutines and returns their errors.
func (tr *flowRunner) wait() error {
	tr.wg.Wait()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return errors.Join(tr.errs...)
}

func newNATRig(t testing.TB, n int) *natRig {
	t.Helper()
	r := &natRig{log: &eventLog{}, up: newSeqFlow("up", n), down: newSeqFlow("down", n)}
	h := session.HandlerFunc(func(_ context.Context, _ *session.Session, m session.Message) {
		if m.Channel == "up" {
			r.up.arrive(m.Data)
		}
	})
	srv, addr := startTestServer(t, nil, h)
	r.srv = srv
	proxy, err := udpproxy.New(addr)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, proxy.Close()) })
	r.proxy = proxy
	ctx := testCtx(t)
	r.c, err = Dial(ctx, proxy.Addr().String(), testClientTLS(t), &Config{OnEvent: r.log.add})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.c.Close() })
	r.chUp, err = r.c.Channel(ctx, "up")
	require.NoError(t, err)
	r.chDown, err = r.c.Channel(ctx, "down")
	require.NoError(t, err)
	require.NoError(t, r.chDown.Send(ctx, []byte("hello"))) // the server learns of "down"
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool {
		ss := srv.Sessions()
		if len(ss) != 1 {
			return false
		}
		_, ok := ss[0].Channel("down")
		return ok
	}, 30*time.Second, time.Millisecond)
	r.sess = srv.Sessions()[0]
	return r
}

// start starts the traffic, one message every pace each way.
func (r *natRig) start(ctx context.Context, pace time.Duration) {
	r.goSend(ctx, r.up, r.chUp.Send, pace)
	r.goSend(ctx, r.down, func(ctx context.Context, msg []byte) error {
		return r.sess.Send(ctx, "down", msg)
	}, pace)
	r.goReceive(ctx, r.down, r.chDown)
}

// requireNoReconnect checks that the client never left its first
// connection: no event but EventConnected so far, no reconnect, nothing in
// doubt, and the same session on the server.
func (r *natRig) requireNoReconnect(t testing.TB) {
	t.Helper()
	st := r.c.Stats()
	require.Zero(t, st.Reconnects, "no reconnect")
	require.Zero(t, st.MessagesInDoubt, "nothing in doubt")
	require.Zero(t, st.MessagesResent)
	require.Zero(t, st.EventsDropped)
	require.Equal(t, StatusConnected, r.c.Status())
	ss := r.srv.Sessions()
	require.Len(t, ss, 1)
	require.Same(t, r.sess, ss[0], "the same session")
	require.NoError(t, r.sess.Context().Err())
	r.log.mu.Lock()
	defer r.log.mu.Unlock()
	for _, e := range r.log.events {
		require.Equal(t, EventConnected, e.Type, "unexpected event %+v", e)
	}
}

func TestClientKeepsItsConnectionAcrossNATRebinding(t *testing.T) {
	const n = 600
	r := newNATRig(t, n)
	ctx := testCtx(t)
	conn := r.c.Conn()
	before := r.sess.RemoteAddr().String()

	r.start(ctx, time.Millisecond)
	r.up.waitArrived(t, n/3)
	r.down.waitArrived(t, n/3)
	rebound, err := r.proxy.Rebind()
	require.NoError(t, err)
	require.Equal(t, 1, rebound)
	upAt, downAt := r.up.sent.Load(), r.down.sent.Load()
	require.NoError(t, r.wait())
	require.Less(t, upAt, int64(n), "the rebinding happened mid-traffic")
	require.Less(t, downAt, int64(n), "the rebinding happened mid-traffic")
	r.up.waitArrived(t, n)
	r.down.waitArrived(t, n)

	require.NotEqual(t, before, r.sess.RemoteAddr().String(), "the server follows the client to its new address")
	require.Same(t, conn, r.c.Conn(), "the same connection")
	r.requireNoReconnect(t)
	// Close delivers every queued event before it returns: still none but
	// EventConnected and EventClosed.
	require.NoError(t, r.c.Close())
	r.log.mu.Lock()
	defer r.log.mu.Unlock()
	types := make([]EventType, 0, len(r.log.events))
	for _, e := range r.log.events {
		types = append(types, e.Type)
	}
	require.Equal(t, []EventType{EventConnected, EventClosed}, types)
}

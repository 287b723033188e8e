package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/udpproxy"
	"github.com/quicmsg/quicmsg/transport"
)

// resumeRig is a Client behind a udpproxy in front of a resumeServer, with
// an "echo" channel: numbered messages go up, the server echoes them down.
// The traffic goroutines are owned by the rig: start starts them, wait
// joins them.
type resumeRig struct {
	srv      *resumeServer
	proxy    *udpproxy.Proxy
	c        *Client
	ch       *Channel
	log      *eventLog
	up, down *seqFlow

	wg   sync.WaitGroup
	errs chan error
}

func newResumeRig(t *testing.T, n int, edit func(*Config)) *resumeRig {
	t.Helper()
	r := &resumeRig{log: &eventLog{}, up: newSeqFlow("up", n), down: newSeqFlow("down", n), errs: make(chan error, 2)}
	r.srv = startResumeServer(t, "127.0.0.1:0", transport.ResumeKey{1})
	proxy, err := udpproxy.New(r.srv.addr())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, proxy.Close()) })
	r.proxy = proxy
	cfg := fastConfig(t, r.log)
	if edit != nil {
		edit(cfg)
	}
	ctx := testCtx(t)
	r.c, err = Dial(ctx, proxy.Addr().String(), testClientTLS(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.c.Close() })
	r.ch, err = r.c.Channel(ctx, "echo")
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			r.log.mu.Lock()
			t.Logf("events: %+v\nstats: %+v", r.log.events, r.c.Stats())
			r.log.mu.Unlock()
		}
	})
	return r
}

// start sends the up flow, one message every pace, and receives the
// echoes as the down flow.
func (r *resumeRig) start(ctx context.Context, pace time.Duration) {
	r.wg.Go(func() { r.errs <- r.up.send(ctx, r.ch.Send, pace) })
	r.wg.Go(func() {
		for range r.down.n {
			msg, err := r.ch.Receive(ctx)
			if err != nil {
				r.errs <- fmt.Errorf("down: receive: %w", err)
				return
			}
			r.down.arrive(msg)
		}
		r.errs <- nil
	})
}

func (r *resumeRig) wait() error {
	r.wg.Wait()
	close(r.errs)
	var errs []error
	for err := range r.errs {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// requireResumedExactlyOnce checks that both flows arrived whole, each
// message once and in order, through resumes only.
func (r *resumeRig) requireResumedExactlyOnce(t *testing.T) {
	t.Helper()
	require.NoError(t, r.wait())
	r.down.waitArrived(t, r.down.n)
	requireSequence(t, r.srv.received("echo"), 0, r.up.n)
	st := r.c.Stats()
	require.Zero(t, st.MessagesInDoubt, "nothing in doubt")
	require.Zero(t, st.MessagesUnacked)
	require.Zero(t, st.MessagesFailed)
	require.Equal(t, st.Reconnects, st.Resumes, "every reconnect resumed the session")
	require.False(t, r.log.has(func(e Event) bool { return e.Type == EventResumeFailed }))
	require.False(t, r.log.has(func(e Event) bool { return e.Type == EventReconnected && !e.Resumed }))
}

// waitEvent waits for an event that match accepts and returns it.
func (l *eventLog) waitEvent(t *testing.T, match func(Event) bool) Event {
	t.Helper()
	var found Event
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, e := range l.events {
			if match(e) {
				found = e
				return true
			}
		}
		return false
	}, 30*time.Second, 5*time.Millisecond)
	return found
}

func TestResumeAfterPartitionLongerThanIdleTimeout(t *testing.T) {
	const n = 300
	r := newResumeRig(t, n, nil)
	ctx := testCtx(t)
	r.start(ctx, 2*time.Millisecond)
	r.down.waitArrived(t, n/3)
	r.proxy.BlackHole(2500 * time.Millisecond) // the idle timeout is 1 s
	waitStatus(t, r.c, StatusReconnecting)
	r.requireResumedExactlyOnce(t)
	require.GreaterOrEqual(t, r.c.Stats().Resumes, uint64(1))
	r.log.waitEvent(t, func(e Event) bool { return e.Type == EventReconnected && e.Resumed })
}

// A NAT rebinding mid-traffic: QUIC moves the connection to the new path;
// if it could not, the session would be resumed. Either way every message
// arrives once, in order, and nothing is in doubt.
func TestResumeAcrossNATRebinding(t *testing.T) {
	const n = 300
	r := newResumeRig(t, n, nil)
	ctx := testCtx(t)
	r.start(ctx, 2*time.Millisecond)
	r.down.waitArrived(t, n/3)
	rebound, err := r.proxy.Rebind()
	require.NoError(t, err)
	require.Equal(t, 1, rebound)
	r.requireResumedExactlyOnce(t)
}

// A NAT rebinding during a partition longer than the idle timeout: the
// session resumes from the client's new address.
func TestResumeFromNewAddressAfterPartition(t *testing.T) {
	const n = 200
	r := newResumeRig(t, n, nil)
	ctx := testCtx(t)
	r.start(ctx, 2*time.Millisecond)
	r.down.waitArrived(t, n/3)
	r.proxy.SetBlackHole(true)
	waitStatus(t, r.c, StatusReconnecting)
	_, err := r.proxy.Rebind()
	require.NoError(t, err)
	r.proxy.SetBlackHole(false)
	r.requireResumedExactlyOnce(t)
	require.GreaterOrEqual(t, r.c.Stats().Resumes, uint64(1))
}

// The server sends GOAWAY and keeps the session: the client closes its
// connection gracefully, comes back to the same server (it has no other)
// and resumes.
func TestResumeAfterGoAwayToSameServer(t *testing.T) {
	const n = 300
	r := newResumeRig(t, n, nil)
	ctx := testCtx(t)
	r.start(ctx, 2*time.Millisecond)
	r.down.waitArrived(t, n/3)
	r.srv.goAway()
	r.requireResumedExactlyOnce(t)
	require.GreaterOrEqual(t, r.c.Stats().Resumes, uint64(1))
	r.log.waitEvent(t, func(e Event) bool { return e.Type == EventReconnected && e.Resumed })
}

// acked returns how many of the messages sent on ch's current transport
// channel the server acknowledged.
func acked(ch *Channel) uint64 {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.cur == nil {
		return 0
	}
	return ch.cur.Acked()
}

func TestResumeRefusedReportsExactlyTheUnacknowledgedMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		want error
		// refuse makes the server refuse the resume, while the client is
		// partitioned from it, and returns the server to check.
		refuse func(t *testing.T, r *resumeRig) *resumeServer
	}{
		{"WindowExpired", transport.ErrResumeExpired, func(t *testing.T, r *resumeRig) *resumeServer {
			// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
			require.Eventually(t, func() bool {
				r.srv.forget()
				r.srv.mu.Lock()
				defer r.srv.mu.Unlock()
				return len(r.srv.sessions) == 0
			}, 30*time.Second, 5*time.Millisecond, "the server noticed the connection died")
			return r.srv
		}},
		{"ServerRestartedWithAnotherKey", transport.ErrResumeTokenInvalid, func(t *testing.T, r *resumeRig) *resumeServer {
			addr := r.srv.addr()
			r.srv.close()
			return startResumeServer(t, addr, transport.ResumeKey{2})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newResumeRig(t, 0, nil)
			ctx := testCtx(t)
			const name = "x"
			ch, err := r.c.Channel(ctx, name)
			require.NoError(t, err)
			for i := range 10 {
				require.NoError(t, ch.Send(ctx, seq(i)))
			}
			// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
			require.Eventually(t, func() bool { return acked(ch) == 10 }, 30*time.Second, 5*time.Millisecond)
			r.proxy.SetBlackHole(true)
			for i := 10; i < 20; i++ {
				require.NoError(t, ch.Send(ctx, seq(i)), "written, never acknowledged")
			}
			waitStatus(t, r.c, StatusReconnecting)
			for i := 20; i < 30; i++ {
				require.NoError(t, ch.Send(ctx, seq(i)), "buffered")
			}
			srv := tc.refuse(t, r)
			r.proxy.SetBlackHole(false)

			e := r.log.waitEvent(t, func(e Event) bool { return e.Type == EventResumeFailed })
			var rfe *ResumeFailedError
			require.ErrorAs(t, e.Err, &rfe)
			require.ErrorIs(t, e.Err, tc.want)
			var re *transport.ResumeError
			require.ErrorAs(t, e.Err, &re)
			var unacked []int
			for _, m := range rfe.Unacked[name] {
				var i int
				_, err := fmt.Sscanf(string(m.Data), "seq:%d", &i)
				require.NoError(t, err)
				unacked = append(unacked, i)
			}
			require.NotEmpty(t, unacked, "messages 10.. were written during the partition")
			require.Equal(t, 10, unacked[0], "0..9 were acknowledged")
			requireSequence(t, unacked, 10, 10+len(unacked))
			// The rest goes out on a new session, in order, once.
			want := 30 - 10 - len(unacked)
			var got []int
			// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
			require.Eventually(t, func() bool {
				got = srv.received(name)
				if srv == r.srv {
					got = got[min(len(got), 10):]
				}
				return len(got) >= want
			}, 30*time.Second, 5*time.Millisecond)
			requireSequence(t, got, 10+len(unacked), 30)
			st := r.c.Stats()
			require.Equal(t, uint64(len(unacked)), st.MessagesUnacked)
			require.Equal(t, st.MessagesUnacked, st.MessagesInDoubt, "in doubt are exactly those reported")
			require.Zero(t, st.Resumes)
			require.NoError(t, ch.Send(ctx, seq(30)), "the new session works")
			require.Eventually(t, func() bool { return slices.Contains(srv.received(name), 30) }, 30*time.Second, 5*time.Millisecond)
		})
	}
}

// A server whose resume state claims messages the client never sent is
// refused by the client, which starts a new session.
func TestResumeRefusesImpossibleClaim(t *testing.T) {
	r := newResumeRig(t, 0, nil)
	ctx := testCtx(t)
	ch, err := r.c.Channel(ctx, "x")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, seq(0)))
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return acked(ch) == 1 }, 30*time.Second, 5*time.Millisecond)
	r.srv.mu.Lock()
	r.srv.claimExtra = 5
	r.srv.mu.Unlock()
	r.proxy.BlackHole(2500 * time.Millisecond)
	e := r.log.waitEvent(t, func(e Event) bool { return e.Type == EventResumeFailed })
	require.ErrorIs(t, e.Err, transport.ErrResumeClaim)
	require.NoError(t, ch.Send(ctx, seq(1)))
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return slices.Contains(r.srv.received("x"), 1) }, 30*time.Second, 5*time.Millisecond)
	require.Zero(t, r.c.Stats().Resumes)
}

// With DisableResume a reconnect begins a new session, as before
// resumption existed: what was written to the lost connection is in doubt
// and not sent again.
func TestResumeDisabledLeavesWrittenMessagesInDoubt(t *testing.T) {
	r := newResumeRig(t, 0, func(c *Config) { c.DisableResume = true })
	ctx := testCtx(t)
	ch, err := r.c.Channel(ctx, "x")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, seq(0)))
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return acked(ch) == 1 }, 30*time.Second, 5*time.Millisecond)
	r.proxy.SetBlackHole(true)
	for i := 1; i < 6; i++ {
		require.NoError(t, ch.Send(ctx, seq(i)))
	}
	waitStatus(t, r.c, StatusReconnecting)
	require.NoError(t, ch.Send(ctx, seq(6)))
	r.proxy.SetBlackHole(false)
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return slices.Contains(r.srv.received("x"), 6) }, 30*time.Second, 5*time.Millisecond)
	waitStatus(t, r.c, StatusConnected)
	st := r.c.Stats()
	got := r.srv.received("x")
	require.Equal(t, uint64(len(got)-1), 6-st.MessagesInDoubt, "what was in doubt never arrived; the rest arrived once: %v", got)
	require.Positive(t, st.MessagesInDoubt)
	require.Zero(t, st.Resumes)
	require.Zero(t, st.MessagesUnacked)
	require.False(t, r.log.has(func(e Event) bool { return e.Type == EventResumeFailed || e.Resumed }))
}

// Messages the transport channel held, but Receive had not returned, when
// the connection died were not counted as received: the server sends them
// again on the resumed session, and each is returned once.
func TestResumeResendsMessagesNotYetReceived(t *testing.T) {
	r := newResumeRig(t, 0, nil)
	ctx := testCtx(t)
	const n = 50
	for i := range n {
		require.NoError(t, r.ch.Send(ctx, seq(i)))
	}
	for i := range 10 {
		msg, err := r.ch.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, string(seq(i)), string(msg))
	}
	// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
	require.Eventually(t, func() bool { return len(r.srv.received("echo")) == n }, 30*time.Second, 5*time.Millisecond)
	r.proxy.BlackHole(2500 * time.Millisecond)
	waitStatus(t, r.c, StatusReconnecting)
	require.Equal(t, uint64(10), r.ch.recvd.Load(), "only what Receive returned counts")
	for i := 10; i < n; i++ {
		msg, err := r.ch.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, string(seq(i)), string(msg))
	}
	require.GreaterOrEqual(t, r.c.Stats().Resumes, uint64(1))
	require.Zero(t, r.c.Stats().MessagesInDoubt)
}

// A message on a transport channel that is no longer the channel's rx is
// never returned, so never counted: receiveOn leaves it to the transport,
// and the server sends it again on the resumed session.
func TestResumeReceiveFromRetiredChannelIsNotCounted(t *testing.T) {
	r := newResumeRig(t, 0, nil)
	ctx := testCtx(t)
	require.NoError(t, r.ch.Send(ctx, seq(0)))
	tch, err := r.ch.current(ctx)
	require.NoError(t, err)
	r.ch.setRx(nil) // as the reconnect loop does once tch's connection ended
	msg, ok, err := r.ch.receiveOn(ctx, tch, nil)
	require.False(t, ok)
	require.NoError(t, err)
	require.Nil(t, msg)
	require.Zero(t, r.ch.recvd.Load())
	r.ch.setRx(tch)
	msg, ok, err = r.ch.receiveOn(ctx, tch, nil)
	require.True(t, ok)
	require.NoError(t, err)
	require.Equal(t, "seq:0", string(msg))
	require.Equal(t, uint64(1), r.ch.recvd.Load())
}

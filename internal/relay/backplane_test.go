package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// fakeBackplane records what the relay reports and forwards.
type fakeBackplane struct {
	mu        sync.Mutex
	interest  []string // "+pattern/group" or "-pattern/group"
	forwarded []string // "subject:payload"
	err       error    // Forward's error
}

func (b *fakeBackplane) Interest(pattern, group string, on bool) {
	sign := "-"
	if on {
		sign = "+"
	}
	b.mu.Lock()
	b.interest = append(b.interest, sign+pattern+"/"+group)
	b.mu.Unlock()
}

func (b *fakeBackplane) Forward(m *transport.Message, _ int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	b.forwarded = append(b.forwarded, m.Subject+":"+string(m.Data))
	return nil
}

func (b *fakeBackplane) changes() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.interest
	b.interest = nil
	return out
}

func (b *fakeBackplane) sent() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.forwarded...)
}

func TestBackplaneHearsFirstAndLastSubscriptionOfEachPatternAndGroup(t *testing.T) {
	bp := &fakeBackplane{}
	r := newRelay(t, &Config{Backplane: bp})
	a, b := newPeer("a"), newPeer("b")

	subscribe(t, r, a, "chat", "news.*")
	subscribe(t, r, b, "chat")
	require.NoError(t, r.Subscribe(a, "jobs", "workers"))
	require.NoError(t, r.Subscribe(b, "jobs", "workers"))
	require.Equal(t, []string{"+chat/", "+news.*/", "+jobs/workers"}, bp.changes(),
		"only the first subscription of a (pattern, group) is news")

	r.Unsubscribe(a, "chat")
	require.Empty(t, bp.changes(), "b still listens on chat")
	require.NoError(t, r.Subscribe(b, "jobs", "other"))
	require.Equal(t, []string{"+jobs/other"}, bp.changes(), "a still belongs to workers")
	r.Remove(a)
	require.ElementsMatch(t, []string{"-news.*/", "-jobs/workers"}, bp.changes())
	r.Unsubscribe(b, "chat")
	r.Remove(b)
	require.Equal(t, []string{"-chat/", "-jobs/other"}, bp.changes())
}

func TestBackplaneGetsLocalPublishesAndGroupsAreLeftToIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bp := &fakeBackplane{}
		r := newRelay(t, &Config{Backplane: bp})
		pub, plain, worker := newPeer("pub"), newPeer("plain"), newPeer("worker")
		subscribe(t, r, plain, "jobs")
		require.NoError(t, r.Subscribe(worker, "jobs", "workers"))

		require.Equal(t, 1, publish(r, pub, "jobs", "1"))
		synctest.Wait()
		require.Equal(t, []string{"jobs:1"}, plain.received())
		require.Empty(t, worker.received(), "a group member is picked by the backplane, not by a local publish")
		require.Equal(t, []string{"jobs:1"}, bp.sent())

		// The backplane hands the message back for the group it picked
		// this node for.
		n, err := r.DeliverRemote(context.Background(), "jobs", "workers", &transport.Message{Subject: "jobs", Data: []byte("1")})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		synctest.Wait()
		require.Equal(t, []string{"jobs:1"}, worker.received())
		require.Equal(t, []string{"jobs:1"}, plain.received(), "a group delivery is not a plain one")
		require.Equal(t, []string{"jobs:1"}, bp.sent(), "what comes from the backplane is not forwarded again")
		st := r.Stats()
		require.Equal(t, uint64(1), st.Forwarded)
		require.Equal(t, uint64(1), st.Remote)
		requireBalanced(t, st)
	})
}

func TestRemoteMessageReachesEachLocalSubscriptionOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, &Config{Backplane: &fakeBackplane{}})
		exact, wild, both := newPeer("exact"), newPeer("wild"), newPeer("both")
		subscribe(t, r, exact, "a.b")
		subscribe(t, r, wild, "a.*")
		subscribe(t, r, both, "a.b", "a.>")

		// The backplane has one subscription per pattern: a message on
		// a.b comes in once for each of a.b, a.* and a.>.
		for _, pattern := range []string{"a.b", "a.*", "a.>"} {
			_, err := r.DeliverRemote(context.Background(), pattern, "", &transport.Message{Subject: "a.b", Data: []byte("x")})
			require.NoError(t, err)
		}
		synctest.Wait()
		require.Equal(t, []string{"a.b:x"}, exact.received())
		require.Equal(t, []string{"a.*[a.b]:x"}, wild.received())
		require.ElementsMatch(t, []string{"a.b:x", "a.>[a.b]:x"}, both.received())

		_, err := r.DeliverRemote(context.Background(), "a.>", "", &transport.Message{Subject: "a.*", Data: []byte("x")})
		require.ErrorIs(t, err, transport.ErrWildcardSubject)
		require.Equal(t, uint64(1), r.Stats().RemoteRefused)
	})
}

func TestRequestForwardedLeavesNoRespondersToTheBackplane(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bp := &fakeBackplane{}
		r := newRelay(t, &Config{Backplane: bp})
		requester := newPeer("requester")
		subscribe(t, r, requester, "_INBOX.r")
		req := &transport.Message{Subject: "svc", Data: []byte("q")}
		req.Header.Add(transport.HeaderReplyTo, "_INBOX.r")
		req.Header.Add(transport.HeaderMsgID, "1")

		_, err := r.Publish(context.Background(), requester, req)
		require.NoError(t, err)
		synctest.Wait()
		require.Empty(t, requester.received(), "a responder may be on another node")
		require.Zero(t, r.Stats().NoResponders)

		// A request that did not leave this node reached nobody.
		bp.err = errors.New("backplane down")
		_, err = r.Publish(context.Background(), requester, req)
		require.NoError(t, err)
		synctest.Wait()
		require.Len(t, requester.received(), 1)
		st := r.Stats()
		require.Equal(t, uint64(1), st.NoResponders)
		require.Equal(t, uint64(2), st.ForwardFailed, "the request and the no responders reply")
	})
}

// Concurrent changes reach the backplane in the order they were made: it
// never ends up believing in interest that is gone, or the other way.
func TestBackplaneInterestStaysInOrderUnderConcurrentChanges(t *testing.T) {
	bp := &countingBackplane{level: make(map[string]int)}
	r := newRelay(t, &Config{Backplane: bp})
	var wg sync.WaitGroup
	for w := range 4 {
		p := newPeer(fmt.Sprint("p", w))
		wg.Go(func() {
			for range 200 {
				require.NoError(t, r.Subscribe(p, "x", ""))
				r.Unsubscribe(p, "x")
			}
		})
	}
	wg.Wait()
	bp.mu.Lock()
	defer bp.mu.Unlock()
	require.Zero(t, bp.level["x"])
	require.False(t, bp.bad, "an off came before its on, or two ons in a row")
}

type countingBackplane struct {
	mu    sync.Mutex
	level map[string]int
	bad   bool
}

func (b *countingBackplane) Interest(pattern, group string, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := pattern + "/" + group
	if on {
		b.level[k]++
	} else {
		b.level[k]--
	}
	if b.level[k] < 0 || b.level[k] > 1 {
		b.bad = true
	}
}

func (b *countingBackplane) Forward(*transport.Message, int) error { return nil }

// A message from the backplane for a pattern or group with nobody left
// on this node says so: for a queue group, the backplane counts it lost.
func TestDeliverRemoteToAGroupWithNoMemberLeftSaysSo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, &Config{Backplane: &fakeBackplane{}})
		w, plain := newPeer("w"), newPeer("plain")
		require.NoError(t, r.Subscribe(w, "jobs", "workers"))
		subscribe(t, r, plain, "news")
		m := &transport.Message{Subject: "jobs", Data: []byte("1")}
		n, err := r.DeliverRemote(context.Background(), "jobs", "workers", m)
		require.NoError(t, err)
		require.Equal(t, 1, n)

		r.Remove(w)
		_, err = r.DeliverRemote(context.Background(), "jobs", "workers", m)
		require.ErrorIs(t, err, ErrNoSubscription, "the group's last member left")
		_, err = r.DeliverRemote(context.Background(), "jobs", "", m)
		require.ErrorIs(t, err, ErrNoSubscription, "no plain subscription of the pattern")
		r.Unsubscribe(plain, "news")
		_, err = r.DeliverRemote(context.Background(), "news", "", &transport.Message{Subject: "news"})
		require.ErrorIs(t, err, ErrNoSubscription)
		synctest.Wait()
		requireBalanced(t, r.Stats())
	})
}

// When the backplane does not take a message, the local queue groups get
// it as on a single node, and a request that reaches a local group member
// gets no "no responders".
func TestLocalQueueGroupGetsWhatTheBackplaneRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bp := &fakeBackplane{err: errors.New("NATS refused it")}
		r := newRelay(t, &Config{Backplane: bp})
		requester, w1, w2 := newPeer("requester"), newPeer("w1"), newPeer("w2")
		subscribe(t, r, requester, "_INBOX.r")
		require.NoError(t, r.Subscribe(w1, "svc", "workers"))
		require.NoError(t, r.Subscribe(w2, "svc", "workers"))

		require.Equal(t, 1, publish(r, newPeer("pub"), "svc", "1"))
		req := &transport.Message{Subject: "svc", Data: []byte("2")}
		req.Header.Add(transport.HeaderReplyTo, "_INBOX.r")
		req.Header.Add(transport.HeaderMsgID, "2")
		n, err := r.Publish(context.Background(), requester, req)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		synctest.Wait()
		require.ElementsMatch(t, []string{"svc:1", "svc:2"}, append(w1.received(), w2.received()...),
			"one member of the group gets each message")
		require.Empty(t, requester.received(), "a local member took the request: no 503")
		st := r.Stats()
		require.Zero(t, st.NoResponders)
		require.Equal(t, uint64(2), st.ForwardFailed)
		requireBalanced(t, st)
	})
}

package relay

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// fakePeer records what the relay sends it. While gate is open (nil or
// closed) Send returns at once; otherwise it waits for the gate or ctx.
type fakePeer struct {
	name string

	mu           sync.Mutex
	got          []string // "channel:payload"
	gate         chan struct{}
	sendErr      error
	disconnected []transport.ErrorCode
}

func newPeer(name string) *fakePeer { return &fakePeer{name: name} }

func (p *fakePeer) ID() transport.SessionID {
	var id transport.SessionID
	copy(id[:], p.name)
	return id
}

func (p *fakePeer) Send(ctx context.Context, channel string, msg []byte) error {
	p.mu.Lock()
	gate, err := p.gate, p.sendErr
	p.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.got = append(p.got, channel+":"+string(msg))
	p.mu.Unlock()
	return nil
}

func (p *fakePeer) Disconnect(code transport.ErrorCode, _ string) error {
	p.mu.Lock()
	p.disconnected = append(p.disconnected, code)
	p.mu.Unlock()
	return nil
}

// block makes Send wait until the returned function is called.
func (p *fakePeer) block() (release func()) {
	gate := make(chan struct{})
	p.mu.Lock()
	p.gate = gate
	p.mu.Unlock()
	return func() { close(gate) }
}

func (p *fakePeer) received() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

func (p *fakePeer) disconnects() []transport.ErrorCode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]transport.ErrorCode(nil), p.disconnected...)
}

func newRelay(t *testing.T, cfg *Config) *Relay {
	t.Helper()
	r, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r
}

func publishN(r *Relay, from Peer, channel string, first, n int) {
	for i := first; i < first+n; i++ {
		r.Publish(from, channel, []byte(strconv.Itoa(i)))
	}
}

// publishPaced publishes like publishN but lets every goroutine of the
// synctest bubble run between messages, so that subscribers that are not
// blocked keep up however small their queue is.
func publishPaced(r *Relay, from Peer, channel string, first, n int) {
	for i := first; i < first+n; i++ {
		r.Publish(from, channel, []byte(strconv.Itoa(i)))
		synctest.Wait()
	}
}

func want(channel string, first, n int) []string {
	out := make([]string, 0, n)
	for i := first; i < first+n; i++ {
		out = append(out, fmt.Sprintf("%s:%d", channel, i))
	}
	return out
}

// requireBalanced checks that every routed copy is in exactly one counter.
func requireBalanced(t *testing.T, st Stats) {
	t.Helper()
	require.Equal(t, st.Routed, st.Delivered+st.Dropped+st.Failed+uint64(st.Queued), "%+v", st)
}

func TestPublishReachesEveryOtherSubscriberInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		a, b, c, d := newPeer("a"), newPeer("b"), newPeer("c"), newPeer("d")
		for _, p := range []*fakePeer{a, b, c} {
			r.Subscribe(p, "chat")
		}
		r.Subscribe(d, "news")

		for i := range 50 {
			require.Equal(t, 2, r.Publish(a, "chat", []byte(strconv.Itoa(i))))
		}
		synctest.Wait()

		require.Empty(t, a.received(), "the publisher does not get its own messages")
		require.Equal(t, want("chat", 0, 50), b.received())
		require.Equal(t, want("chat", 0, 50), c.received())
		require.Empty(t, d.received(), "other channels are not affected")
		st := r.Stats()
		require.Equal(t, Stats{Subscribers: 4, Subscriptions: 4, Channels: 2, Published: 50, Routed: 100, Delivered: 100}, st)
	})
}

func TestPublishWithoutSubscribersGoesNowhere(t *testing.T) {
	r := newRelay(t, nil)
	a := newPeer("a")
	r.Subscribe(a, "chat")
	require.Zero(t, r.Publish(a, "chat", []byte("alone")))
	require.Zero(t, r.Publish(a, "empty", []byte("nobody")))
	st := r.Stats()
	require.Equal(t, uint64(2), st.Published)
	require.Zero(t, st.Routed)
}

func TestSlowSubscriberIsDroppedForWithoutSlowingOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, &Config{QueueSize: 4, SlowConsumer: Drop})
		pub, stuck, fast := newPeer("pub"), newPeer("stuck"), newPeer("fast")
		for _, p := range []*fakePeer{pub, stuck, fast} {
			r.Subscribe(p, "chat")
		}
		release := stuck.block()

		// Publish never waits for the stuck subscriber: were it to, this
		// bubble would deadlock and synctest would fail the test.
		publishPaced(r, pub, "chat", 0, 100)

		require.Equal(t, want("chat", 0, 100), fast.received())
		st := r.Stats()
		// One message is being sent to the stuck subscriber, four wait.
		require.Equal(t, 5, st.Queued)
		require.Equal(t, uint64(95), st.Dropped)
		require.Equal(t, uint64(1), st.SlowConsumerEvents)
		require.Zero(t, st.SlowConsumerDisconnects)
		requireBalanced(t, st)

		release()
		synctest.Wait()
		require.Equal(t, want("chat", 0, 5), stuck.received(), "the oldest messages were kept")

		// Once caught up, the subscriber gets new messages again.
		publishPaced(r, pub, "chat", 100, 10)
		require.Equal(t, append(want("chat", 0, 5), want("chat", 100, 10)...), stuck.received())
		require.Equal(t, want("chat", 0, 110), fast.received())
		require.Empty(t, stuck.disconnects())

		st = r.Stats()
		require.Zero(t, st.Queued)
		require.Equal(t, uint64(125), st.Delivered)
		requireBalanced(t, st)
		require.Equal(t, SubscriberStats{Delivered: 15, Dropped: 95}, r.Remove(stuck))
	})
}

func TestSlowSubscriberIsDisconnectedWithoutSlowingOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, &Config{QueueSize: 4, SlowConsumer: Disconnect})
		pub, stuck, fast := newPeer("pub"), newPeer("stuck"), newPeer("fast")
		for _, p := range []*fakePeer{pub, stuck, fast} {
			r.Subscribe(p, "chat")
		}
		stuck.block()

		publishPaced(r, pub, "chat", 0, 100)

		require.Equal(t, want("chat", 0, 100), fast.received())
		require.Equal(t, []transport.ErrorCode{transport.CodeSlowConsumer}, stuck.disconnects())
		require.Empty(t, stuck.received())
		st := r.Stats()
		require.Equal(t, uint64(1), st.SlowConsumerEvents)
		require.Equal(t, uint64(1), st.SlowConsumerDisconnects)
		// The message in flight failed when its Send was cancelled; the
		// four queued and the one that overflowed were dropped; the 94
		// after it were not routed to the disconnected subscriber at all.
		require.Equal(t, uint64(1), st.Failed)
		require.Equal(t, uint64(5), st.Dropped)
		require.Equal(t, uint64(106), st.Routed)
		require.Zero(t, st.Queued)
		require.Equal(t, 2, st.Subscriptions)
		requireBalanced(t, st)
		require.Equal(t, SubscriberStats{Dropped: 5, Failed: 1}, r.Remove(stuck))
	})
}

func TestQueueBytesBoundsASubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, &Config{QueueSize: 1000, QueueBytes: 10})
		pub, stuck := newPeer("pub"), newPeer("stuck")
		r.Subscribe(pub, "c")
		r.Subscribe(stuck, "c")
		release := stuck.block()

		big := make([]byte, 100)
		r.Publish(pub, "c", big) // in flight
		synctest.Wait()
		r.Publish(pub, "c", big) // larger than QueueBytes, but the queue is empty
		r.Publish(pub, "c", []byte("x"))
		st := r.Stats()
		require.Equal(t, 2, st.Queued)
		require.Equal(t, uint64(1), st.Dropped)
		release()
		synctest.Wait()
		require.Len(t, stuck.received(), 2)
	})
}

func TestChannelResetByPeerEndsItsSubscription(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		pub, gone := newPeer("pub"), newPeer("gone")
		r.Subscribe(pub, "c")
		r.Subscribe(gone, "c")
		gone.mu.Lock()
		gone.sendErr = &transport.ChannelError{Channel: "c", Code: transport.CodeChannelClosed, Remote: true}
		gone.mu.Unlock()

		require.Equal(t, 1, r.Publish(pub, "c", []byte("1")))
		synctest.Wait()
		require.Zero(t, r.Publish(pub, "c", []byte("2")), "no longer subscribed")
		st := r.Stats()
		require.Equal(t, uint64(1), st.Failed)
		require.Equal(t, 1, st.Subscriptions)
	})
}

func TestUnsubscribedMessagesAreNotSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		pub, sub := newPeer("pub"), newPeer("sub")
		r.Subscribe(pub, "c")
		r.Subscribe(sub, "c")
		r.Subscribe(sub, "d")
		release := sub.block()
		publishN(r, pub, "c", 0, 3)
		synctest.Wait()
		r.Unsubscribe(sub, "c")
		release()
		synctest.Wait()
		// The first was already being sent; the other two waited and were
		// discarded instead of reopening the channel on the peer.
		require.Equal(t, want("c", 0, 1), sub.received())
		st := r.Stats()
		require.Equal(t, uint64(2), st.Failed)
		require.Equal(t, Stats{Subscribers: 2, Subscriptions: 2, Channels: 2, Published: 3, Routed: 3, Delivered: 1, Failed: 2}, st)
	})
}

func TestRemoveStopsABlockedSubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		pub, sub := newPeer("pub"), newPeer("sub")
		r.Subscribe(pub, "c")
		r.Subscribe(sub, "c")
		sub.block()
		publishN(r, pub, "c", 0, 10)
		synctest.Wait()

		require.Equal(t, SubscriberStats{Failed: 10}, r.Remove(sub))
		require.Zero(t, r.Publish(pub, "c", []byte("after")))
		st := r.Stats()
		require.Zero(t, st.Queued)
		require.Equal(t, 1, st.Subscribers)
		requireBalanced(t, st)
		require.Equal(t, SubscriberStats{}, r.Remove(sub), "removing twice is harmless")
	})
}

func TestCloseStopsEverySubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := New(nil)
		require.NoError(t, err)
		pub := newPeer("pub")
		r.Subscribe(pub, "c")
		for i := range 5 {
			p := newPeer(strconv.Itoa(i))
			p.block()
			r.Subscribe(p, "c")
		}
		publishN(r, pub, "c", 0, 3)
		synctest.Wait()
		require.NoError(t, r.Close())
		require.NoError(t, r.Close())
		require.Zero(t, r.Publish(pub, "c", []byte("late")))
		r.Subscribe(pub, "c")
		st := r.Stats()
		require.Zero(t, st.Subscribers)
		require.Equal(t, uint64(15), st.Failed)
		requireBalanced(t, st)
	})
}

func TestConcurrentPublishersAndSubscribers(t *testing.T) {
	r := newRelay(t, &Config{QueueSize: 64})
	const peers, msgs = 8, 200
	ps := make([]*fakePeer, peers)
	for i := range ps {
		ps[i] = newPeer(strconv.Itoa(i))
		r.Subscribe(ps[i], "c")
	}
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() {
			publishN(r, p, "c", i*msgs, msgs)
			if i%2 == 0 {
				r.Unsubscribe(p, "c")
				r.Subscribe(p, "c")
			}
		})
	}
	wg.Wait()
	for _, p := range ps {
		r.Remove(p)
	}
	st := r.Stats()
	require.Equal(t, uint64(peers*msgs), st.Published)
	require.Zero(t, st.Queued)
	requireBalanced(t, st)
}

func TestConfigIsValidated(t *testing.T) {
	for _, cfg := range []Config{{QueueSize: -1}, {QueueBytes: -1}, {SlowConsumer: 7}} {
		_, err := New(&cfg)
		require.Error(t, err)
	}
	_, err := New(&Config{QueueSize: -1})
	require.ErrorContains(t, err, "QueueSize")
}

func TestParseSlowConsumerPolicy(t *testing.T) {
	for _, p := range []SlowConsumerPolicy{Drop, Disconnect} {
		got, err := ParseSlowConsumerPolicy(p.String())
		require.NoError(t, err)
		require.Equal(t, p, got)
	}
	_, err := ParseSlowConsumerPolicy("ignore")
	require.Error(t, err)
}

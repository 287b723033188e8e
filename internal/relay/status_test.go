package relay

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSubscriptionsCountSubscribersBySubjectAndGroup(t *testing.T) {
	r := newRelay(t, nil)
	a, b, c := newPeer("a"), newPeer("b"), newPeer("c")
	subscribe(t, r, a, "orders.new", "orders.>")
	subscribe(t, r, b, "orders.new")
	require.NoError(t, r.Subscribe(b, "work", "workers"))
	require.NoError(t, r.Subscribe(c, "work", "workers"))
	require.NoError(t, r.Subscribe(c, "work.*", ""))

	require.Equal(t, []SubscriptionInfo{
		{Subject: "orders.>", Subscribers: 1},
		{Subject: "orders.new", Subscribers: 2},
		{Subject: "work", Group: "workers", Subscribers: 2},
		{Subject: "work.*", Subscribers: 1},
	}, r.Subscriptions())

	r.Unsubscribe(a, "orders.>")
	r.Remove(b)
	require.Equal(t, []SubscriptionInfo{
		{Subject: "orders.new", Subscribers: 1},
		{Subject: "work", Group: "workers", Subscribers: 1},
		{Subject: "work.*", Subscribers: 1},
	}, r.Subscriptions())
}

func TestQueueDelayIsSampledOneMessageInSixteen(t *testing.T) {
	var mu sync.Mutex
	var samples []time.Duration
	r := newRelay(t, &Config{OnQueueDelay: func(d time.Duration) {
		mu.Lock()
		samples = append(samples, d)
		mu.Unlock()
	}})
	pub, sub := newPeer("pub"), newPeer("sub")
	subscribe(t, r, sub, "x")
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(samples)
	}
	for i := 1; i <= 2*QueueDelaySample+1; i++ {
		require.Equal(t, 1, publish(r, pub, "x", strconv.Itoa(i)))
		require.Eventually(t, func() bool { return len(sub.received()) == i }, 5*time.Second, time.Millisecond)
		// The sample is taken after the send: wait for it when one is due.
		want := (i-1)/QueueDelaySample + 1
		require.Eventually(t, func() bool { return count() == want }, 5*time.Second, time.Millisecond, "after %d messages", i)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, d := range samples {
		require.GreaterOrEqual(t, d, time.Duration(0))
	}
}

func TestQueueDelayIsNotMeasuredWithoutAHook(t *testing.T) {
	r := newRelay(t, nil)
	pub, sub := newPeer("pub"), newPeer("sub")
	subscribe(t, r, sub, "x")
	require.Equal(t, 1, publish(r, pub, "x", "1"))
	require.Eventually(t, func() bool { return len(sub.received()) == 1 }, 5*time.Second, time.Millisecond)
	r.peers[sub].mu.Lock()
	defer r.peers[sub].mu.Unlock()
	require.Zero(t, r.peers[sub].probe, "no sample is taken")
}

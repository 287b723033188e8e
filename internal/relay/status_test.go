package relay

import (
	"testing"

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

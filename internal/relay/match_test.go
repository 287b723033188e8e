package relay

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// matches returns the channels of sub that a message to subject reaches.
func matches(t *testing.T, patterns []string, subject string) []string {
	t.Helper()
	var got []string
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		sub := newPeer("sub")
		subscribe(t, r, sub, patterns...)
		publish(r, nil, subject, "m")
		synctest.Wait()
		for _, rec := range sub.received() {
			ch, _, _ := cutChannel(rec)
			got = append(got, ch)
		}
	})
	slices.Sort(got)
	return got
}

// cutChannel splits a record "channel:..." or "channel[subject]:...".
func cutChannel(rec string) (channel, rest string, ok bool) {
	for i := range len(rec) {
		if rec[i] == ':' || rec[i] == '[' {
			return rec[:i], rec[i:], true
		}
	}
	return rec, "", false
}

func TestSubjectMatching(t *testing.T) {
	for _, tc := range []struct {
		subject string
		want    []string
	}{
		{"foo", []string{">", "foo", "*"}},
		{"foo.bar", []string{">", "foo.*", "foo.>", "foo.bar", "*.bar", "*.*"}},
		{"foo.baz", []string{">", "foo.*", "foo.>", "*.*"}},
		{"foo.bar.baz", []string{">", "foo.>", "foo.*.baz", "*.bar.>"}},
		{"foo.bar.baz.qux", []string{">", "foo.>", "*.bar.>"}},
		{"bar", []string{">", "*"}},
		// A token that only contains '*' or '>' is literal.
		{"foo*.bar", []string{">", "foo*.bar", "*.bar", "*.*"}},
		{"foo>", []string{">", "*"}},
		// An empty token is a token: names with one are valid subjects.
		{"foo..bar", []string{">", "foo..bar", "foo.>"}},
		{".foo", []string{">", "*.*"}},
		{"foo.", []string{">", "foo.*", "foo.>", "*.*"}},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			patterns := []string{
				"foo", "foo.bar", "foo*.bar", "foo..bar",
				"*", "*.*", "foo.*", "foo.>", ">", "foo.*.baz", "*.bar", "*.bar.>",
			}
			want := slices.Clone(tc.want)
			slices.Sort(want)
			got := matches(t, patterns, tc.subject)
			require.Equal(t, want, got)
			var byTransport []string
			for _, p := range patterns {
				if transport.MatchSubject(p, tc.subject) {
					byTransport = append(byTransport, p)
				}
			}
			slices.Sort(byTransport)
			require.Equal(t, byTransport, got, "the relay agrees with transport.MatchSubject")
		})
	}
}

func TestWildcardDeliveryCarriesTheConcreteSubject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		sub := newPeer("sub")
		subscribe(t, r, sub, "orders.*", "orders.new")
		require.Equal(t, 2, publish(r, nil, "orders.new", "1"))
		synctest.Wait()
		got := sub.received()
		slices.Sort(got)
		require.Equal(t, []string{"orders.*[orders.new]:1", "orders.new:1"}, got,
			"a peer subscribed by two matching channels gets the message on both")
	})
}

func TestPublishToAWildcardIsRefused(t *testing.T) {
	r := newRelay(t, nil)
	for _, subject := range []string{"orders.*", "orders.>", ">", "*"} {
		n, err := r.Publish(context.Background(), nil, &transport.Message{Subject: subject, Data: []byte("x")})
		require.ErrorIs(t, err, transport.ErrWildcardSubject, subject)
		require.Zero(t, n)
	}
	st := r.Stats()
	require.Equal(t, uint64(4), st.Refused)
	require.Zero(t, st.Published)
}

func TestInvalidPatternIsRefused(t *testing.T) {
	r := newRelay(t, nil)
	p := newPeer("p")
	for _, pattern := range []string{"foo.>.bar", "foo..*", "*.", ".>", ""} {
		require.ErrorIs(t, r.Subscribe(p, pattern, ""), transport.ErrInvalidSubject, pattern)
	}
	require.Zero(t, r.Stats().Subscriptions)
}

func TestMatchCacheFollowsSubscriptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		a, b := newPeer("a"), newPeer("b")
		subscribe(t, r, a, "foo.*")
		require.Equal(t, 1, publish(r, nil, "foo.bar", "1")) // cached now
		subscribe(t, r, b, "foo.>")
		require.Equal(t, 2, publish(r, nil, "foo.bar", "2"), "a new subscription invalidates the cache")
		synctest.Wait()
		r.Unsubscribe(a, "foo.*")
		require.Equal(t, 1, publish(r, nil, "foo.bar", "3"), "so does an unsubscription")
		synctest.Wait()
		r.Remove(b)
		require.Zero(t, publish(r, nil, "foo.bar", "4"))
		synctest.Wait()
		require.Equal(t, []string{"foo.*[foo.bar]:1", "foo.*[foo.bar]:2"}, a.received())
		require.Equal(t, []string{"foo.>[foo.bar]:2", "foo.>[foo.bar]:3"}, b.received())
		require.Zero(t, r.Stats().Channels, "the trie is pruned")
		require.Empty(t, r.subs.root.next)
	})
}

func TestMatchCacheIsBounded(t *testing.T) {
	r := newRelay(t, nil)
	subscribe(t, r, newPeer("a"), "s.*")
	for i := range cacheSize + 100 {
		publish(r, nil, "s."+strconv.Itoa(i), "x")
	}
	read, dirty := r.subs.cache.size()
	require.LessOrEqual(t, read, cacheSize)
	require.LessOrEqual(t, dirty, cacheSize)
	require.Positive(t, read)
}

func TestQueueGroupSharesMessagesRoundRobin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		workers := []*fakePeer{newPeer("w0"), newPeer("w1"), newPeer("w2")}
		for _, w := range workers {
			require.NoError(t, r.Subscribe(w, "orders.>", "workers"))
		}
		other := newPeer("other")
		require.NoError(t, r.Subscribe(other, "orders.>", "auditors"))
		plain := newPeer("plain")
		subscribe(t, r, plain, "orders.*")

		for i := range 30 {
			require.Equal(t, 3, publish(r, nil, "orders.new", strconv.Itoa(i)))
		}
		synctest.Wait()
		for _, w := range workers {
			require.Len(t, w.received(), 10, w.name)
		}
		require.Len(t, other.received(), 30, "each group gets every message once")
		require.Len(t, plain.received(), 30)

		// A member that publishes is not handed its own message.
		for range 10 {
			publish(r, workers[0], "orders.new", "own")
		}
		synctest.Wait()
		require.Len(t, workers[0].received(), 10)
		require.Len(t, append(workers[1].received(), workers[2].received()...), 30)
	})
}

func TestQueueGroupSkipsAFullMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, &Config{QueueSize: 2})
		stuck, free := newPeer("stuck"), newPeer("free")
		require.NoError(t, r.Subscribe(stuck, "jobs", "w"))
		require.NoError(t, r.Subscribe(free, "jobs", "w"))
		release := stuck.block()
		publishPaced(r, nil, "jobs", 0, 20)
		st := r.Stats()
		require.Zero(t, st.Dropped, "nothing is dropped while another member has room")
		require.Equal(t, 3, st.Queued, "the stuck member holds one in flight and two queued")
		require.Len(t, free.received(), 17)
		release()
		synctest.Wait()
		require.Len(t, stuck.received(), 3)
		requireBalanced(t, r.Stats())
	})
}

func TestChangingTheGroupOfASubscription(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		a, b := newPeer("a"), newPeer("b")
		require.NoError(t, r.Subscribe(a, "jobs", "w"))
		require.NoError(t, r.Subscribe(b, "jobs", "w"))
		require.NoError(t, r.Subscribe(a, "jobs", "w"), "subscribing again is harmless")
		require.Equal(t, 1, publish(r, nil, "jobs", "1"))
		require.NoError(t, r.Subscribe(a, "jobs", ""))
		require.Equal(t, 2, publish(r, nil, "jobs", "2"))
		st := r.Stats()
		require.Equal(t, 2, st.Subscriptions)
		require.Equal(t, 1, st.Channels)
	})
}

func TestRequestWithoutRespondersGetsANoRespondersReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		requester := newPeer("req")
		subscribe(t, r, requester, "_INBOX.abc")
		req := &transport.Message{Subject: "svc.echo", Data: []byte("hi")}
		req.Header.Add(transport.HeaderReplyTo, "_INBOX.abc")
		req.Header.Add(transport.HeaderMsgID, "7")
		n, err := r.Publish(context.Background(), requester, req)
		require.NoError(t, err)
		require.Zero(t, n)
		synctest.Wait()
		require.Len(t, requester.msgs, 1)
		reply := requester.msgs[0]
		require.Equal(t, "_INBOX.abc", reply.Subject)
		require.Equal(t, transport.Header{
			{Key: transport.HeaderStatus, Value: transport.StatusNoResponders},
			{Key: transport.HeaderInReplyTo, Value: "7"},
		}, reply.Header)
		require.Empty(t, reply.Data)
		require.Equal(t, uint64(1), r.Stats().NoResponders)

		// With a responder, the request goes to it and nothing else.
		responder := newPeer("resp")
		subscribe(t, r, responder, "svc.*")
		n, err = r.Publish(context.Background(), requester, req)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		synctest.Wait()
		require.Len(t, requester.msgs, 1)
		require.Equal(t, uint64(1), r.Stats().NoResponders)
	})
}

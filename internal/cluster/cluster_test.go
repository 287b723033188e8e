package cluster

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/relay"
	"github.com/quicmsg/quicmsg/transport"
)

func TestMessageOnOneNodeReachesTheOthersExactlyOnce(t *testing.T) {
	s := startNATS(t, 0, nil)
	a, b, c := newNode(t, s, "a", Config{}), newNode(t, s, "b", Config{}), newNode(t, s, "c", Config{})
	pub, onA, onB, onC := newPeer("pub"), newPeer("onA"), newPeer("onB"), newPeer("onC")
	a.subscribe(t, pub, "chat", "")
	a.subscribe(t, onA, "chat", "")
	b.subscribe(t, onB, "chat", "")
	c.subscribe(t, onC, "chat", "")
	syncNodes(t, a, b, c)

	const n = 100
	for i := range n {
		a.publish(t, pub, "chat", strconv.Itoa(i))
	}
	a.publish(t, pub, "chat", "end")
	want := append(msgs("chat", "chat", n), "chat[chat]:end")
	// NATS keeps one publisher's order on a subscription: once "end" is
	// in, so is every copy that came before it.
	for _, p := range []*peer{onA, onB, onC} {
		require.Equal(t, want, p.waitForMsg(t, ":end"), p.name)
	}
	syncNodes(t, a, b, c)
	require.Empty(t, pub.received(), "the publisher does not get its own messages")
	require.Equal(t, want, onA.received(), "the local subscriber gets each message once, not again from NATS")

	require.Eventually(t, func() bool { return a.bp.Stats().RTT > 0 }, waitFor, time.Millisecond, "the round trip to NATS is measured")
	require.Equal(t, uint64(n+1), a.bp.Stats().Published)
	require.Zero(t, a.bp.Stats().Own, "NATS did not send the node's own messages back to it (no echo)")
	for _, x := range []*node{b, c} {
		st := x.bp.Stats()
		require.Equal(t, uint64(n+1), st.Received, x.name)
		require.Zero(t, st.Published, x.name)
	}
}

func TestWildcardSubscriptionsAcrossNodes(t *testing.T) {
	s := startNATS(t, 0, nil)
	a, b, c := newNode(t, s, "a", Config{}), newNode(t, s, "b", Config{}), newNode(t, s, "c", Config{})
	pub, star, tail, exact := newPeer("pub"), newPeer("star"), newPeer("tail"), newPeer("exact")
	b.subscribe(t, star, "orders.*", "")
	c.subscribe(t, tail, "orders.>", "")
	c.subscribe(t, exact, "orders.eu", "")
	syncNodes(t, a, b, c)

	a.publish(t, pub, "orders.eu", "1")
	a.publish(t, pub, "orders.us.east", "2")
	a.publish(t, pub, "other", "3")
	a.publish(t, pub, "orders.eu", "end")

	require.Equal(t, []string{"orders.*[orders.eu]:1", "orders.*[orders.eu]:end"}, star.waitForMsg(t, ":end"))
	require.Equal(t, []string{"orders.>[orders.eu]:1", "orders.>[orders.us.east]:2", "orders.>[orders.eu]:end"}, tail.waitForMsg(t, ":end"))
	require.Equal(t, []string{"orders.eu[orders.eu]:1", "orders.eu[orders.eu]:end"}, exact.waitForMsg(t, ":end"),
		"a message matching two patterns of a node reaches each subscription once")
}

func TestQueueGroupSpreadOverNodesGetsEachMessageOnce(t *testing.T) {
	s := startNATS(t, 0, nil)
	a, b, c := newNode(t, s, "a", Config{}), newNode(t, s, "b", Config{}), newNode(t, s, "c", Config{})
	pub, watcher := newPeer("pub"), newPeer("watcher")
	workers := []*peer{newPeer("wa"), newPeer("wb1"), newPeer("wb2"), newPeer("wc")}
	a.subscribe(t, workers[0], "jobs", "w")
	b.subscribe(t, workers[1], "jobs", "w")
	b.subscribe(t, workers[2], "jobs", "w")
	c.subscribe(t, workers[3], "jobs", "w")
	c.subscribe(t, watcher, "jobs", "")
	syncNodes(t, a, b, c)
	require.Equal(t, []string{"jobs w"}, natsSubs(t, s, b), "one NATS queue subscription per node, not per member")

	const n = 300
	for i := range n {
		a.publish(t, pub, "jobs", strconv.Itoa(i))
	}
	watcher.waitForMsg(t, ":"+strconv.Itoa(n-1))
	var got []string
	require.Eventually(t, func() bool {
		got = got[:0]
		for _, w := range workers {
			got = append(got, w.received()...)
		}
		return len(got) >= n
	}, waitFor, time.Millisecond)
	syncNodes(t, a, b, c)
	got = got[:0]
	nodes := 0
	for _, w := range workers {
		got = append(got, w.received()...)
		if len(w.received()) > 0 {
			nodes++
		}
	}
	slices.Sort(got)
	want := msgs("jobs", "jobs", n)
	slices.Sort(want)
	require.Equal(t, want, got, "each job reaches exactly one worker cluster-wide")
	t.Logf("jobs per worker: a %d, b %d+%d, c %d", len(workers[0].received()), len(workers[1].received()),
		len(workers[2].received()), len(workers[3].received()))
}

func TestQueueGroupOnlyOnThePublishersNodeGetsItsMessages(t *testing.T) {
	s := startNATS(t, 0, nil)
	a, b := newNode(t, s, "a", Config{}), newNode(t, s, "b", Config{})
	pub, worker, watcher := newPeer("pub"), newPeer("worker"), newPeer("watcher")
	a.subscribe(t, worker, "jobs", "w")
	b.subscribe(t, watcher, "jobs", "")
	syncNodes(t, a, b)

	const n = 50
	for i := range n {
		a.publish(t, pub, "jobs", strconv.Itoa(i))
	}
	require.Equal(t, msgs("jobs", "jobs", n), worker.waitForMsg(t, ":"+strconv.Itoa(n-1)),
		"NATS picks the publisher's own node for its group: the node's echo is off for plain subscriptions only")
	watcher.waitForMsg(t, ":"+strconv.Itoa(n-1))
	syncNodes(t, a, b)
	require.Len(t, worker.received(), n, "each job once")
}

func TestNodeHoldsNATSSubscriptionsOnlyForLocalInterest(t *testing.T) {
	s := startNATS(t, 0, nil)
	a, b := newNode(t, s, "a", Config{}), newNode(t, s, "b", Config{})
	pub, p1, p2 := newPeer("pub"), newPeer("p1"), newPeer("p2")
	syncNodes(t, a, b)
	require.Empty(t, natsSubs(t, s, b))

	a.publish(t, pub, "x", "nobody")
	syncNodes(t, a) // at the server before b subscribes: it goes to nobody
	b.subscribe(t, p1, "x", "")
	b.subscribe(t, p2, "x", "")
	b.subscribe(t, p2, "y.*", "g")
	syncNodes(t, a, b)
	require.ElementsMatch(t, []string{"x", "y.* g"}, natsSubs(t, s, b))
	require.Empty(t, natsSubs(t, s, a), "a has no local subscriber")
	require.Equal(t, []InterestInfo{{Subject: "x", Subscribed: true}, {Subject: "y.*", Group: "g", Subscribed: true}}, b.bp.Interests())
	require.Empty(t, a.bp.Interests())

	b.r.Unsubscribe(p1, "x")
	syncNodes(t, b)
	require.ElementsMatch(t, []string{"x", "y.* g"}, natsSubs(t, s, b), "p2 still listens on x")
	b.r.Remove(p2)
	syncNodes(t, b)
	require.Empty(t, natsSubs(t, s, b), "the last unsubscribe removes the NATS subscription")
	require.Zero(t, b.bp.Stats().Subscriptions)
	require.Empty(t, b.bp.Interests())

	a.publish(t, pub, "x", "still nobody")
	syncNodes(t, a, b)
	require.Zero(t, b.bp.Stats().Received)
	require.Empty(t, p1.received())
}

func TestNATSRestartBuffersUpToTheBoundThenCountsDrops(t *testing.T) {
	s := startNATS(t, 0, nil)
	port := s.Addr().(*net.TCPAddr).Port
	fast := []nats.Option{nats.ReconnectWait(10 * time.Millisecond), nats.ReconnectJitter(0, 0)}
	// a reconnects only once the gate opens, after b is back and
	// subscribed: what a buffered must not be lost for want of a
	// subscriber on the new server.
	gate := make(chan struct{})
	var gateOnce sync.Once
	openGate := func() { gateOnce.Do(func() { close(gate) }) }
	held := nats.CustomReconnectDelay(func(int) time.Duration { <-gate; return 0 })
	a := newNode(t, s, "a", Config{ReconnectBufSize: 4096, Options: append(slices.Clone(fast), held)})
	t.Cleanup(openGate) // before a's Close
	b := newNode(t, s, "b", Config{Options: fast})
	pub, sub := newPeer("pub"), newPeer("sub")
	b.subscribe(t, sub, "news", "")
	syncNodes(t, a, b)
	a.publish(t, pub, "news", "before")
	sub.waitForMsg(t, ":before")

	s.Shutdown()
	s.WaitForShutdown()
	require.Eventually(t, func() bool { return !a.bp.Connected() && !b.bp.Connected() }, waitFor, time.Millisecond)
	const n = 200
	payload := strings.Repeat("x", 64)
	for i := range n {
		a.publish(t, pub, "news", fmt.Sprintf("%d-%s", i, payload))
	}
	st := a.bp.Stats()
	dropped, buffered := st.Dropped[DropNATSDown], st.Published-1
	require.NotZero(t, dropped, "4 KiB of buffer holds fewer than %d messages", n)
	require.NotZero(t, buffered)
	require.Equal(t, uint64(n), buffered+dropped, "every message is buffered or counted as dropped")
	require.Equal(t, dropped, a.r.Stats().ForwardFailed)

	startNATS(t, port, nil)
	require.Eventually(t, b.bp.Connected, waitFor, time.Millisecond)
	syncNodes(t, b) // b's subscription is on the new server
	openGate()
	require.Eventually(t, a.bp.Connected, waitFor, time.Millisecond)
	a.publish(t, pub, "news", "after")
	got := sub.waitForMsg(t, ":after")
	require.Len(t, got, 1+int(buffered)+1, "the buffered messages arrive, the dropped ones do not")
	for i := range int(buffered) {
		require.Equal(t, fmt.Sprintf("news[news]:%d-%s", i, payload), got[1+i], "the buffer keeps the first messages, in order")
	}
	t.Logf("NATS down: %d messages published, %d buffered (4 KiB), %d dropped", n, buffered, dropped)
}

func TestMessageNATSCannotCarryIsRefusedAndCounted(t *testing.T) {
	s := startNATS(t, 0, func(o *server.Options) { o.MaxPayload = 1024 })
	a := newNode(t, s, "a", Config{})
	syncNodes(t, a)

	err := a.bp.Forward(&transport.Message{Subject: "big", Data: make([]byte, 2048)}, 0)
	var fe *ForwardError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, DropTooLarge, fe.Reason)
	var tl *TooLargeError
	require.ErrorAs(t, err, &tl)
	require.Equal(t, int64(1024), tl.Limit)
	require.Equal(t, int64(2048), tl.Size, "a message without headers goes without NATS headers")

	bad := &transport.Message{Subject: "x", Data: []byte("1")}
	bad.Header.Add("k", "line\r\nbreak")
	require.ErrorAs(t, a.bp.Forward(bad, 0), &fe)
	require.Equal(t, DropInvalid, fe.Reason)

	// Through the relay: the local subscriber still gets the message;
	// only the copy for other nodes is refused.
	local := newPeer("local")
	a.subscribe(t, local, "big", "")
	a.publish(t, newPeer("pub"), "big", strings.Repeat("x", 2048))
	require.Eventually(t, func() bool { return len(local.received()) == 1 }, waitFor, time.Millisecond)
	st := a.bp.Stats()
	require.Equal(t, uint64(2), st.Dropped[DropTooLarge])
	require.Equal(t, uint64(1), st.Dropped[DropInvalid])
	require.Equal(t, uint64(1), a.r.Stats().ForwardFailed)
}

func TestRequestAcrossNodesAndNoResponders(t *testing.T) {
	s := startNATS(t, 0, nil)
	a, b := newNode(t, s, "a", Config{}), newNode(t, s, "b", Config{})
	requester, responder := newPeer("requester"), newPeer("responder")
	a.subscribe(t, requester, "_INBOX.r", "")
	syncNodes(t, a, b)
	request := func(id string) {
		m := &transport.Message{Subject: "svc", Data: []byte("q" + id)}
		m.Header.Add(transport.HeaderReplyTo, "_INBOX.r")
		m.Header.Add(transport.HeaderMsgID, id)
		_, err := a.r.Publish(context.Background(), requester, m)
		require.NoError(t, err)
	}

	request("1")
	require.Eventually(t, func() bool { return len(requester.received()) == 1 }, waitFor, time.Millisecond,
		"no node has a responder: NATS says so and the requester is told")
	require.Equal(t, uint64(1), a.bp.Stats().NoResponders)

	b.subscribe(t, responder, "svc", "")
	syncNodes(t, b)
	request("2")
	got := responder.waitForMsg(t, ":q2")
	require.Equal(t, []string{"svc[svc]:q2"}, got)
	_, err := b.r.Publish(context.Background(), responder, &transport.Message{Subject: "_INBOX.r", Data: []byte("answer")})
	require.NoError(t, err)
	require.Equal(t, "_INBOX.r[_INBOX.r]:answer", requester.waitForMsg(t, ":answer")[1])
	syncNodes(t, a, b)
	require.Equal(t, uint64(1), a.bp.Stats().NoResponders, "a request with a responder gets no 503")
}

// A request to a queue group whose only members are on the requester's
// node reaches no local subscription there (NATS picks the group's node),
// so it asks NATS for "no responders": the node's queue subscription,
// on the connection that echoes, must count as one.
func TestRequestToAGroupOnTheRequestersNodeOnlyGetsNoNoResponders(t *testing.T) {
	s := startNATS(t, 0, nil)
	a, b := newNode(t, s, "a", Config{}), newNode(t, s, "b", Config{})
	requester, worker := newPeer("requester"), newPeer("worker")
	a.subscribe(t, requester, "_INBOX.r", "")
	a.subscribe(t, worker, "svc", "w") // the only responder in the cluster
	syncNodes(t, a, b)

	_, err := a.r.Publish(context.Background(), requester, request("svc", "_INBOX.r", "1"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(worker.received()) == 1 }, waitFor, time.Millisecond,
		"the request reaches the group's member")
	syncNodes(t, a, b) // a 503, had NATS sent one, would be in by now
	require.Zero(t, a.bp.Stats().NoResponders, "a local group member counts as a responder: no 503")
	require.Empty(t, requester.received())
	require.Len(t, worker.received(), 1, "the member gets the request once")
}

func TestSlowNodeDoesNotSlowTheOthers(t *testing.T) {
	s := startNATS(t, 0, nil)
	a, c := newNode(t, s, "a", Config{}), newNode(t, s, "c", Config{})
	// b's subscriber takes nothing, and b's relay makes deliveries wait
	// for room (Block): its NATS subscription fills up to its pending
	// limit, and NATS drops the rest for b alone.
	b := newNodeWith(t, s, "b", Config{PendingMsgs: 10}, relay.Config{QueueSize: 1, SlowConsumer: relay.Block, PublishTimeout: time.Minute})
	pub, stuck, fast := newPeer("pub"), &peer{name: "stuck", stuck: true}, newPeer("fast")
	b.subscribe(t, stuck, "ticks", "")
	c.subscribe(t, fast, "ticks", "")
	syncNodes(t, a, b, c)

	const n = 100
	for i := range n {
		a.publish(t, pub, "ticks", strconv.Itoa(i))
	}
	require.Equal(t, msgs("ticks", "ticks", n), fast.waitForMsg(t, ":"+strconv.Itoa(n-1)), "c keeps up while b is stuck")
	syncNodes(t, b) // b has read every message from NATS: each is pending, handed over or dropped
	dropped := b.bp.Stats().Dropped[DropSlowConsumer]
	require.NotZero(t, dropped)
	require.Zero(t, c.bp.Stats().Dropped[DropSlowConsumer])
	t.Logf("stuck node: %d of %d messages dropped by NATS (pending limit 10)", dropped, n)
}

func TestNodeStartedWithoutNATSJoinsWhenItComesUp(t *testing.T) {
	s := startNATS(t, 0, nil)
	port := s.Addr().(*net.TCPAddr).Port
	url := s.ClientURL()
	s.Shutdown()
	s.WaitForShutdown()

	_, err := New(&Config{URLs: url})
	require.ErrorContains(t, err, "connecting to NATS", "without RetryOnFailedConnect a node needs NATS at start")

	fast := []nats.Option{nats.RetryOnFailedConnect(true), nats.ReconnectWait(10 * time.Millisecond), nats.ReconnectJitter(0, 0)}
	b := newNodeAt(t, url, "b", Config{Options: fast})
	require.False(t, b.bp.Connected())
	sub := newPeer("sub")
	b.subscribe(t, sub, "news", "") // recorded while NATS is down

	s = startNATS(t, port, nil)
	require.Eventually(t, b.bp.Connected, waitFor, time.Millisecond)
	a := newNode(t, s, "a", Config{})
	syncNodes(t, a, b)
	a.publish(t, newPeer("pub"), "news", "joined")
	require.Equal(t, []string{"news[news]:joined"}, sub.waitForMsg(t, ":joined"))
}

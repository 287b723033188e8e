package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/relay"
	"github.com/quicmsg/quicmsg/transport"
)

// waitTick is how often the tests' bounded waits look again.
const waitTick = time.Millisecond

// request returns a request to subject with the given reply-to and msg-id.
func request(subject, replyTo, id string) *transport.Message {
	m := &transport.Message{Subject: subject, Data: []byte("q")}
	m.Header.Add(transport.HeaderReplyTo, replyTo)
	m.Header.Add(transport.HeaderMsgID, id)
	return m
}

// A request's reply-to and msg-id travel in the NATS reply subject: one
// that would make the protocol line longer than the NATS server takes
// would have it close the node's connection, for good.
func TestRequestWithLongReplyToCannotCutTheNodeOffNATS(t *testing.T) {
	s := startNATS(t, 0, nil)
	a, b := newNode(t, s, "a", Config{}), newNode(t, s, "b", Config{})
	sub := newPeer("sub")
	b.subscribe(t, sub, "news", "")
	syncNodes(t, a, b)

	bad := []*transport.Message{
		request("svc", strings.Repeat("r", 4000), "1"),
		request("svc", "_INBOX.r", strings.Repeat("i", 4000)),
		request("svc", "_INBOX.*", "2"),
	}
	for _, m := range bad {
		_, err := a.r.Publish(context.Background(), newPeer("evil"), m)
		require.NoError(t, err)
	}
	syncNodes(t, a) // a round trip on a's connection: the server still holds it
	require.NoError(t, a.bp.Lost())
	require.True(t, a.bp.Connected())
	require.Equal(t, uint64(len(bad)), a.bp.Stats().Dropped[DropInvalid])
	require.Equal(t, uint64(len(bad)), a.r.Stats().ForwardFailed)

	a.publish(t, newPeer("pub"), "news", "after")
	require.Equal(t, []string{"news[news]:after"}, sub.waitForMsg(t, ":after"))
}

// When a NATS server closes the connection with an error nats.go does not
// retry, the node says so: an error log line (not "reconnecting"), and
// Lost, which quicsrv's /healthz reports.
func TestConnectionClosedByNATSIsReportedAsLostForGood(t *testing.T) {
	s := startNATS(t, 0, nil)
	var logs syncBuffer
	a := newNode(t, s, "a", Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	syncNodes(t, a)

	// Bypass Forward's checks: a line the server refuses.
	require.NoError(t, a.bp.nc.Publish(strings.Repeat("x", 5000), nil))
	require.Eventually(t, func() bool { return a.bp.Lost() != nil }, waitFor, waitTick)
	require.ErrorContains(t, a.bp.Lost(), "maximum control line")
	require.False(t, a.bp.Connected())
	out := logs.String()
	require.Contains(t, out, "level=ERROR msg=\"NATS connection closed for good")
	require.NotContains(t, out, "reconnecting")
}

// eventuallyEqual waits until get returns want, and fails with the last
// value got when it does not within waitFor.
func eventuallyEqual(t *testing.T, want uint64, get func() uint64, msg string) {
	t.Helper()
	assert.Eventually(t, func() bool { return get() == want }, waitFor, waitTick)
	require.Equal(t, want, get(), msg)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Messages NATS gave a node's queue subscription wait there while the
// node's only member is stuck; when that member leaves, each of them is
// delivered or counted (no_member), none vanishes.
func TestQueueMessagesOfANodeWhoseLastMemberLeavesAreCounted(t *testing.T) {
	s := startNATS(t, 0, nil)
	a, c := newNode(t, s, "a", Config{}), newNode(t, s, "c", Config{})
	b := newNodeWith(t, s, "b", Config{}, relay.Config{QueueSize: 1, SlowConsumer: relay.Block, PublishTimeout: time.Minute})
	stuck, wc := &peer{name: "stuck", stuck: true}, newPeer("wc")
	b.subscribe(t, stuck, "jobs", "w")
	c.subscribe(t, wc, "jobs", "w")
	syncNodes(t, a, b, c)

	const n = 200
	for range n {
		a.publish(t, newPeer("pub"), "jobs", "x")
	}
	require.Eventually(t, func() bool { return pending(b) > 10 }, waitFor, waitTick, "b's member is stuck: jobs wait in b's NATS subscription")
	b.r.Remove(stuck)

	accounted := func() uint64 {
		rs := b.r.Stats()
		return uint64(len(wc.received())) + rs.Delivered + rs.Dropped + rs.Failed + b.bp.Stats().Dropped[DropNoMember]
	}
	eventuallyEqual(t, n, accounted, "every job is delivered or counted")
	require.NotZero(t, b.bp.Stats().Dropped[DropNoMember])
	t.Logf("b's last member left with jobs pending: %d to c's member, %d counted no_member", len(wc.received()), b.bp.Stats().Dropped[DropNoMember])
}

// A node started without NATS (quicsrv -cluster-required=false) serves
// its own queue groups, and a message NATS cannot carry still reaches the
// local group: local delivery goes on whatever happens to the copy for
// other nodes.
func TestLocalQueueGroupServedWhenForwardingFails(t *testing.T) {
	s := startNATS(t, 0, nil)
	url := s.ClientURL()
	s.Shutdown()
	s.WaitForShutdown()
	a := newNodeAt(t, url, "a", Config{Options: []nats.Option{nats.RetryOnFailedConnect(true)}})
	requester, w := newPeer("requester"), newPeer("w")
	a.subscribe(t, requester, "_INBOX.r", "")
	a.subscribe(t, w, "jobs", "workers")

	a.publish(t, newPeer("pub"), "jobs", "1")
	bad := &transport.Message{Subject: "jobs", Data: []byte("2")}
	bad.Header.Add("k", "line\r\nbreak")
	_, err := a.r.Publish(context.Background(), newPeer("pub"), bad)
	require.NoError(t, err)
	_, err = a.r.Publish(context.Background(), requester, request("jobs", "_INBOX.r", "3"))
	require.NoError(t, err)
	a.publish(t, newPeer("pub"), "_INBOX.r", "marker") // after any 503, in the requester's queue
	require.Equal(t, []string{"jobs[jobs]:1", "jobs[jobs]:2", "jobs[jobs]:q"}, w.waitForMsg(t, ":q"))
	require.Equal(t, []string{"_INBOX.r[_INBOX.r]:marker"}, requester.waitForMsg(t, ":marker"),
		"the local group member took the request: no 503")
	require.Equal(t, uint64(4), a.r.Stats().ForwardFailed)
}

// Before its first connection to NATS a node buffers nothing (nats.go
// cannot check a message against limits it has not learnt): each message
// is counted as nats_down, not as an unexplained error.
func TestMessagesBeforeTheFirstConnectionAreCountedAsNATSDown(t *testing.T) {
	s := startNATS(t, 0, nil)
	port := s.Addr().(*net.TCPAddr).Port
	url := s.ClientURL()
	s.Shutdown()
	s.WaitForShutdown()
	fast := []nats.Option{nats.RetryOnFailedConnect(true), nats.ReconnectWait(10 * time.Millisecond), nats.ReconnectJitter(0, 0)}
	a := newNodeAt(t, url, "a", Config{Options: fast})

	err := a.bp.Forward(&transport.Message{Subject: "news", Data: []byte("while down")}, 0)
	var fe *ForwardError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, DropNATSDown, fe.Reason)
	require.ErrorIs(t, err, ErrNotConnectedYet)
	st := a.bp.Stats()
	require.Equal(t, uint64(1), st.Dropped[DropNATSDown])
	require.Zero(t, st.Dropped[DropError])

	s = startNATS(t, port, nil)
	b := newNode(t, s, "b", Config{})
	sub := newPeer("sub")
	b.subscribe(t, sub, "news", "")
	require.Eventually(t, a.bp.Connected, waitFor, waitTick)
	syncNodes(t, a, b)
	a.publish(t, newPeer("pub"), "news", "after")
	require.Equal(t, []string{"news[news]:after"}, sub.waitForMsg(t, ":after"))
}

// A queue group member that has just subscribed gets the next local
// publish: its node's NATS queue subscription reaches the server before
// the message does.
func TestFreshLocalGroupMemberGetsTheNextLocalPublish(t *testing.T) {
	s := startNATS(t, 0, nil)
	a := newNode(t, s, "a", Config{})
	syncNodes(t, a)
	const n = 100
	members := make([]*peer, n)
	for i := range n {
		subj := "jobs." + strconv.Itoa(i)
		members[i] = newPeer("w" + strconv.Itoa(i))
		a.subscribe(t, members[i], subj, "w")
		a.publish(t, newPeer("pub"), subj, "x")
	}
	for i, m := range members {
		require.Equal(t, []string{"jobs." + strconv.Itoa(i) + "[jobs." + strconv.Itoa(i) + "]:x"}, m.waitForMsg(t, ":x"))
	}
}

// The first request of a requester opens its inbox and sends at once
// (client.Request): the inbox's NATS subscription reaches the server
// before the request, so the reply from another node finds it.
func TestFirstRequestGetsTheReplyFromAnotherNode(t *testing.T) {
	s := startNATS(t, 0, nil)
	a, b := newNode(t, s, "a", Config{}), newNode(t, s, "b", Config{})
	resp := &autoResponder{peer: peer{name: "resp"}, r: b.r}
	require.NoError(t, b.r.Subscribe(resp, "svc", ""))
	syncNodes(t, a, b)
	const n = 50
	reqs := make([]*peer, n)
	for i := range n {
		reqs[i] = newPeer("req" + strconv.Itoa(i))
		inbox := "_INBOX." + strconv.Itoa(i)
		a.subscribe(t, reqs[i], inbox, "")
		_, err := a.r.Publish(context.Background(), reqs[i], request("svc", inbox, strconv.Itoa(i)))
		require.NoError(t, err)
	}
	for _, p := range reqs {
		require.Len(t, p.waitForMsg(t, ":answer"), 1)
	}
	require.Zero(t, a.bp.Stats().NoResponders)
}

// A request that reached a local responder goes to NATS without a reply
// subject: NATS cannot answer "no responders" for it, however late the
// responder's own NATS subscription. (The spy, a subscriber itself,
// keeps NATS from answering svc.2; TestRequestAcrossNodesAndNoResponders
// covers the 503.)
func TestRequestWithALocalResponderAsksNATSForNoStatus(t *testing.T) {
	s := startNATS(t, 0, nil)
	a := newNode(t, s, "a", Config{})
	spy, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	t.Cleanup(spy.Close)
	seen := make(chan *nats.Msg, 16)
	_, err = spy.ChanSubscribe("svc.>", seen)
	require.NoError(t, err)
	require.NoError(t, spy.Flush())
	requester := newPeer("requester")
	a.subscribe(t, requester, "_INBOX.r", "")
	syncNodes(t, a)

	a.subscribe(t, newPeer("responder"), "svc.1", "")
	_, err = a.r.Publish(context.Background(), requester, request("svc.1", "_INBOX.r", "1"))
	require.NoError(t, err)
	_, err = a.r.Publish(context.Background(), requester, request("svc.2", "_INBOX.r", "2"))
	require.NoError(t, err)
	for _, want := range []struct{ subject, reply string }{{"svc.1", ""}, {"svc.2", a.bp.noRespSubject("_INBOX.r", "2")}} {
		select {
		case m := <-seen:
			require.Equal(t, want.subject, m.Subject)
			require.Equal(t, want.reply, m.Reply, "a reply subject only for a request no local subscription took")
		case <-time.After(waitFor):
			t.Fatalf("the request to %s did not reach NATS", want.subject)
		}
	}
}

// autoResponder answers every request it receives on its node's relay.
type autoResponder struct {
	peer
	r *relay.Relay
}

func (p *autoResponder) SendMsgs(ctx context.Context, _ string, ms []transport.Message) (int, error) {
	for _, m := range ms {
		reply := &transport.Message{Subject: m.ReplyTo(), Data: []byte("answer")}
		reply.Header.Add(transport.HeaderInReplyTo, m.ID())
		_, _ = p.r.Publish(ctx, p, reply)
	}
	return len(ms), nil
}

// Close waits for the NATS message handlers that are running: none is
// still in the relay once it returns.
func TestCloseWaitsForMessageHandlers(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	handlerHook.Store(&hook)
	t.Cleanup(func() { handlerHook.Store(nil) })
	s := startNATS(t, 0, nil)
	a, b := newNode(t, s, "a", Config{}), newNode(t, s, "b", Config{CloseTimeout: 100 * time.Millisecond})
	b.subscribe(t, newPeer("sub"), "news", "")
	syncNodes(t, a, b)
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // before the nodes close, should the test fail
	a.publish(t, newPeer("pub"), "news", "1")
	<-entered

	closed := make(chan struct{})
	go func() {
		_ = b.bp.Close()
		close(closed)
	}()
	require.Eventually(t, b.bp.hs.closing.Load, waitFor, waitTick, "Close waits for the handlers")
	select {
	case <-closed:
		t.Fatal("Close returned while a handler was running")
	default:
	}
	releaseOnce()
	select {
	case <-closed:
	case <-time.After(waitFor):
		t.Fatal("Close did not return once the handler had")
	}
	require.Zero(t, b.bp.hs.n.Load())
}

// Messages still buffered for NATS when the node closes are lost: they
// are counted as dropped (closed), not only logged.
func TestMessagesBufferedAtCloseAreCountedAsDropped(t *testing.T) {
	s := startNATS(t, 0, nil)
	a := newNode(t, s, "a", Config{})
	syncNodes(t, a)
	s.Shutdown()
	s.WaitForShutdown()
	require.Eventually(t, func() bool { return !a.bp.Connected() }, waitFor, waitTick)
	const n = 5
	for i := range n {
		a.publish(t, newPeer("pub"), "news", strconv.Itoa(i))
	}
	require.Equal(t, uint64(n), a.bp.Stats().Published, "buffered")
	require.NoError(t, a.bp.Close())
	require.Equal(t, uint64(n), a.bp.Stats().Dropped[DropClosed])
}

// What NATS would alter or not route is refused and counted, not
// reported as published: header values with a space or tab at either end
// (nats.go trims them) and subjects with an empty token (NATS matches no
// subscription for them). The local subscribers still get them.
func TestMessagesNATSWouldAlterOrNotRouteAreRefused(t *testing.T) {
	s := startNATS(t, 0, nil)
	a := newNode(t, s, "a", Config{})
	local := newPeer("local")
	a.subscribe(t, local, "x.>", "")
	syncNodes(t, a)

	padded := []string{"  padded", "padded\t", " "}
	for _, v := range padded {
		m := &transport.Message{Subject: "x.h", Data: []byte("h")}
		m.Header.Add("k", v)
		require.NoError(t, publishMsg(a, m))
	}
	for _, subj := range []string{"x..y", "x.y.", ".x.y"} {
		require.NoError(t, publishMsg(a, &transport.Message{Subject: subj, Data: []byte("e")}))
	}
	ok := &transport.Message{Subject: "x.ok", Data: []byte("end")}
	ok.Header.Add("k", "in side")
	require.NoError(t, publishMsg(a, ok))

	st := a.bp.Stats()
	require.Equal(t, uint64(6), st.Dropped[DropInvalid], "three padded values, three subjects with an empty token")
	require.Equal(t, uint64(1), st.Published)
	require.Len(t, local.waitForMsg(t, ":end"), 6, "local delivery goes on (x.> matches x..y and x.y. here)")
}

func publishMsg(n *node, m *transport.Message) error {
	_, err := n.r.Publish(context.Background(), newPeer("pub"), m)
	return err
}

// A node that closes with queue group messages from NATS not yet
// delivered (its member stuck) counts each: delivered or dropped by its
// relay, or dropped (closed) by its backplane.
func TestQueueMessagesOfAClosingNodeAreCounted(t *testing.T) {
	s := startNATS(t, 0, nil)
	a := newNode(t, s, "a", Config{})
	b := newNodeWith(t, s, "b", Config{}, relay.Config{QueueSize: 1, SlowConsumer: relay.Block, PublishTimeout: time.Minute})
	stuck := &peer{name: "stuck", stuck: true}
	b.subscribe(t, stuck, "jobs", "w")
	syncNodes(t, a, b)
	const n = 200
	for range n {
		a.publish(t, newPeer("pub"), "jobs", "x")
	}
	syncNodes(t, a)
	require.Eventually(t, func() bool { return pending(b) > 10 }, waitFor, waitTick, "b's member is stuck: jobs wait in b's NATS subscription")
	require.NoError(t, b.r.Close())
	require.NoError(t, b.bp.Close())
	rs, bs := b.r.Stats(), b.bp.Stats()
	require.Equal(t, uint64(n), rs.Delivered+rs.Dropped+rs.Failed+bs.Dropped[DropClosed],
		"every job NATS gave b is delivered or counted: relay %+v, backplane %v", rs, bs.Dropped)
}

// pending returns how many messages wait in the node's NATS subscriptions.
func pending(n *node) int {
	n.bp.mu.Lock()
	defer n.bp.mu.Unlock()
	total := 0
	for _, sub := range n.bp.subs {
		m, _, _ := sub.Pending()
		total += m
	}
	return total
}

// The last member of a group leaves while NATS is down: the messages
// waiting for it are counted, and once NATS is back the node holds no
// queue subscription that could take the group's messages from the
// members of other nodes.
func TestLastGroupMemberLeavingWhileNATSIsDownLeavesNoSubscriptionBehind(t *testing.T) {
	s := startNATS(t, 0, nil)
	port := s.Addr().(*net.TCPAddr).Port
	fast := Config{Options: []nats.Option{nats.ReconnectWait(10 * time.Millisecond), nats.ReconnectJitter(0, 0)}}
	a, c := newNode(t, s, "a", fast), newNode(t, s, "c", fast)
	b := newNodeWith(t, s, "b", fast, relay.Config{QueueSize: 1, SlowConsumer: relay.Block, PublishTimeout: time.Minute})
	stuck, wc := &peer{name: "stuck", stuck: true}, newPeer("wc")
	b.subscribe(t, stuck, "jobs", "w")
	c.subscribe(t, wc, "jobs", "w")
	syncNodes(t, a, b, c)
	for range 100 {
		a.publish(t, newPeer("pub"), "jobs", "x")
	}
	require.Eventually(t, func() bool { return pending(b) > 10 }, waitFor, waitTick, "b's member is stuck: jobs wait in b's NATS subscription")

	s.Shutdown()
	s.WaitForShutdown()
	require.Eventually(t, func() bool { return !b.bp.Connected() }, waitFor, waitTick)
	p := pending(b) // stable: NATS is down and b's handler is stuck
	b.r.Remove(stuck)
	require.Equal(t, uint64(p), b.bp.Stats().Dropped[DropNoMember], "the jobs waiting for b's member are counted")

	startNATS(t, port, nil)
	for _, x := range []*node{a, b, c} {
		require.Eventually(t, x.bp.Connected, waitFor, waitTick, x.name)
	}
	syncNodes(t, a, b, c)
	before := len(wc.received())
	const n = 40
	for i := range n {
		a.publish(t, newPeer("pub"), "jobs", "after"+strconv.Itoa(i))
	}
	a.publish(t, newPeer("pub"), "jobs", "end")
	wc.waitForMsg(t, ":end")
	require.Len(t, wc.received(), before+n+1, "c's member, the only one left, gets every job")
	require.Equal(t, uint64(p), b.bp.Stats().Dropped[DropNoMember])
}

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/client"
	"github.com/quicmsg/quicmsg/transport"
)

// TestClusterE2E builds quicsrv, runs one in-process nats-server on
// 127.0.0.1 and three quicsrv processes (nodes a, b and c) joined to it
// with -cluster, each with its own QUIC listener, metrics endpoint and
// NATS connection, and one development CA for the three. Clients are real
// QUIC connections (transport.Dial) and client.Client. The subtests share
// the nodes and use distinct subjects, in order: NodeKilledClientsFailOver
// kills b, NATSRestart restarts NATS.
func TestClusterE2E(t *testing.T) {
	bin := buildQuicsrv(t)
	s := startNATS(t)
	port := s.Addr().(*net.TCPAddr).Port
	devDir := t.TempDir()
	// a creates the development certificates that b and c then load.
	a := launchNode(t, bin, "a", devDir, s.ClientURL(), "-server-id", "01", "-cluster-buffer", "4096") // small, so that NATSRestart drops some
	a.waitReady(t)
	b := launchNode(t, bin, "b", devDir, s.ClientURL(), "-server-id", "02")
	c := launchNode(t, bin, "c", devDir, s.ClientURL(), "-server-id", "03")
	b.waitReady(t)
	c.waitReady(t)
	nodes := []*testServer{a.testServer, b.testServer, c.testServer}
	conf := a.clientTLS(t)

	t.Run("OnceToEveryOtherNode", func(t *testing.T) {
		testOnceToEveryOtherNode(t, s, nodes, conf)
	})

	t.Run("WildcardAcrossNodes", func(t *testing.T) {
		sub := openChannel(t, dial(t, b.addr, conf), "orders.*.new")
		waitNATSSubs(t, s, "orders.*.new", 1)
		pub := openChannel(t, dial(t, c.addr, conf), "orders.eu.new")
		send(t, pub, "first order")
		m := receiveMsg(t, sub)
		require.Equal(t, "orders.eu.new", m.Subject)
		require.Equal(t, "first order", string(m.Data))
	})

	t.Run("QueueGroupOverThreeNodes", func(t *testing.T) {
		testQueueGroupOverNodes(t, s, nodes, conf)
	})

	t.Run("RequestReplyAcrossNodes", func(t *testing.T) {
		testRequestReplyAcrossNodes(t, s, a, b, conf)
	})

	t.Run("NodeKilledClientsFailOver", func(t *testing.T) {
		testNodeKilled(t, s, a, b, c, conf)
	})

	t.Run("NATSRestart", func(t *testing.T) {
		testNATSRestart(t, s, port, a.testServer, c.testServer, conf)
	})
}

// testOnceToEveryOtherNode checks that a message published on the first
// node reaches the subscribers of the other two once, and does not come
// back to the first.
func testOnceToEveryOtherNode(t *testing.T, s *server.Server, nodes []*testServer, conf *tls.Config) {
	onA, onB, onC := openChannel(t, dial(t, nodes[0].addr, conf), "chat"), openChannel(t, dial(t, nodes[1].addr, conf), "chat"), openChannel(t, dial(t, nodes[2].addr, conf), "chat")
	waitNATSSubs(t, s, "chat", 3)
	before := deliveredPerNode(t, nodes)

	send(t, onA, "from a")
	require.Equal(t, "from a", receive(t, onB))
	require.Equal(t, "from a", receive(t, onC))
	// Markers: a copy of "from a" sent twice, or back to A, would
	// come before them on the same NATS connection.
	send(t, onB, "marker b")
	require.Equal(t, "marker b", receive(t, onA), "A's sender got its own message back")
	require.Equal(t, "marker b", receive(t, onC), "C got a second copy")
	send(t, onC, "marker c")
	require.Equal(t, "marker c", receive(t, onA))
	require.Equal(t, "marker c", receive(t, onB), "B got a second copy")

	after := deliveredPerNode(t, nodes)
	for i := range nodes {
		require.Equal(t, 2.0, after[i]-before[i], "node %d: copies delivered", i)
	}
}

// testQueueGroupOverNodes puts one member of a queue group on each node
// and checks that each of n messages published on the first node reaches
// exactly one member.
func testQueueGroupOverNodes(t *testing.T, s *server.Server, nodes []*testServer, conf *tls.Config) {
	var members []*transport.Channel
	for _, ts := range nodes {
		ch, err := dial(t, ts.addr, conf).OpenChannelWith(testCtx(t), "jobs.>", transport.ChannelOptions{Group: "workers"})
		require.NoError(t, err)
		members = append(members, ch)
	}
	waitNATSSubs(t, s, "jobs.>", len(nodes))
	got := collect(t, members)
	pub := openChannel(t, dial(t, nodes[0].addr, conf), "jobs.build")
	const n = 60
	for i := range n {
		send(t, pub, strconv.Itoa(i))
	}
	require.Eventually(t, func() bool { return got.total() >= n }, waitTimeout, 5*time.Millisecond, "queue group members got %d of %d", got.total(), n)
	// One more message: a second copy of an earlier one, on any node's
	// NATS connection, would come before it.
	send(t, pub, "end")
	require.Eventually(t, func() bool { return got.total() >= n+1 }, waitTimeout, 5*time.Millisecond)
	perMember, seen := got.snapshot()
	require.Len(t, seen, n+1, "every message reached a member")
	for msg, k := range seen {
		require.Equal(t, 1, k, "message %q reached %d members", msg, k)
	}
	t.Logf("queue group over three nodes: %d messages, per member %v", n+1, perMember)
}

// testRequestReplyAcrossNodes has a client.Client on a ask a responder, a
// client.Client on b, across the backplane, and ask a subject with no
// responder on any node, which NATS answers with "no responders".
func testRequestReplyAcrossNodes(t *testing.T, s *server.Server, a, b *node, conf *tls.Config) {
	responder := dialClient(t, b.addr, conf, nil)
	svc, err := responder.Channel(testCtx(t), "svc.clock")
	require.NoError(t, err)
	serveRequests(t, svc, "b")
	waitNATSSubsOf(t, s, b.natsID, "svc.clock", 1)

	// The first Request opens the requester's inbox and sends the
	// request on it: quicsrv holds the request until NATS has a's
	// subscription for the inbox, so that b's reply cannot outrun it.
	requester := dialClient(t, a.addr, conf, nil)
	for i := range 3 {
		q := fmt.Sprintf("what time is it? (%d)", i)
		resp, err := requester.Request(testCtx(t), "svc.clock", &transport.Message{Data: []byte(q)})
		require.NoError(t, err)
		require.Equal(t, "b answers: "+q, string(resp.Data))
		require.Empty(t, resp.Header.Get(transport.HeaderStatus))
	}
	// a forwards the request; no node subscribes to it, so the NATS
	// server answers a's reply subject with 503 and a replies to the
	// requester's inbox.
	_, err = requester.Request(testCtx(t), "svc.nobody", &transport.Message{Data: []byte("anyone?")})
	require.ErrorIs(t, err, transport.ErrNoResponders)
	require.Zero(t, requester.UnmatchedReplies(), "a reply came twice")
}

// serveRequests answers every request on ch, until the end of the test,
// with "<who> answers: " and the request's data.
func serveRequests(t *testing.T, ch *client.Channel, who string) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Go(func() {
		for {
			req, err := ch.ReceiveMsg(ctx)
			if err == nil {
				err = ch.Reply(ctx, req, &transport.Message{Data: []byte(who + " answers: " + string(req.Data))})
			}
			if err != nil {
				if ctx.Err() == nil {
					errs <- err
				}
				return
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("responder %s: %v", who, err)
		}
	})
}

// dialClient makes a client.Client and closes it at cleanup.
func dialClient(t *testing.T, addr string, conf *tls.Config, cfg *client.Config) *client.Client {
	t.Helper()
	cl, err := client.Dial(testCtx(t), addr, conf, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// testNATSRestart stops NATS, publishes on a (whose reconnect buffer is
// 4 KiB), checks that a counts every message as buffered or dropped,
// then restarts NATS on the same port and checks that messages cross
// again and that the other node got no more than a buffered.
func testNATSRestart(t *testing.T, s *server.Server, port int, a, other *testServer, conf *tls.Config) {
	listener := openChannel(t, dial(t, other.addr, conf), "news")
	pub := openChannel(t, dial(t, a.addr, conf), "news")
	waitNATSSubs(t, s, "news", 2) // the other node's listener, a's publishing channel
	send(t, pub, "before")
	require.Equal(t, "before", receive(t, listener))
	f := scrape(t, a.metricsURL)
	published0 := metricValue(f, "quicmsg_cluster_published_total")
	dropped0 := max(metricValue(f, "quicmsg_cluster_dropped_total", "reason", "nats_down"), 0)

	s.Shutdown()
	s.WaitForShutdown()
	a.waitMetric(t, 0, "quicmsg_cluster_connected")
	require.Equal(t, "degraded: NATS unreachable: messages do not cross nodes\n", healthz(t, a.metricsURL))
	const n = 200
	payload := strings.Repeat("x", 64)
	for i := range n {
		send(t, pub, fmt.Sprintf("%d-%s", i, payload))
	}
	var buffered, dropped float64
	require.Eventually(t, func() bool {
		f := scrape(t, a.metricsURL)
		buffered = metricValue(f, "quicmsg_cluster_published_total") - published0
		dropped = max(metricValue(f, "quicmsg_cluster_dropped_total", "reason", "nats_down"), 0) - dropped0
		return buffered+dropped >= n
	}, waitTimeout, 10*time.Millisecond, "a accounted for %v buffered + %v dropped of %d", buffered, dropped, n)
	require.Equal(t, float64(n), buffered+dropped, "every message is buffered or counted as dropped")
	require.NotZero(t, dropped, "4 KiB of buffer holds fewer than %d messages", n)
	require.NotZero(t, buffered)

	s2 := startNATSOn(t, port)
	a.waitMetric(t, 1, "quicmsg_cluster_connected")
	other.waitMetric(t, 1, "quicmsg_cluster_connected")
	waitNATSSubs(t, s2, "news", 2)
	send(t, pub, "after")
	received := 0
	for {
		m := receive(t, listener)
		if m == "after" {
			break
		}
		require.True(t, strings.HasSuffix(m, payload), "unexpected message %q", m)
		received++
	}
	// The other node may have resubscribed after a flushed its buffer: NATS core is
	// at-most-once, so it gets at most what a buffered.
	require.LessOrEqual(t, float64(received), buffered)
	t.Logf("NATS down: %d messages published on a, %v buffered (4 KiB), %v dropped (nats_down), %d of the buffered reached the other node", n, buffered, dropped, received)
}

// deliveredPerNode scrapes quicmsg_relay_delivered_total on each node.
func deliveredPerNode(t *testing.T, nodes []*testServer) []float64 {
	t.Helper()
	out := make([]float64, len(nodes))
	for i, ts := range nodes {
		out[i] = max(metricValue(scrape(t, ts.metricsURL), "quicmsg_relay_delivered_total"), 0)
	}
	return out
}

// received records what each of several channels receives.
type received struct {
	mu        sync.Mutex
	perMember []int
	seen      map[string]int
}

func (r *received) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, k := range r.seen {
		n += k
	}
	return n
}

func (r *received) snapshot() ([]int, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[string]int, len(r.seen))
	for k, v := range r.seen {
		seen[k] = v
	}
	return append([]int(nil), r.perMember...), seen
}

// collect reads every channel in its own goroutine until the end of the
// test, which waits for them.
func collect(t *testing.T, chans []*transport.Channel) *received {
	r := &received{perMember: make([]int, len(chans)), seen: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, len(chans))
	for i, ch := range chans {
		wg.Go(func() {
			for {
				b, err := ch.Receive(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("member %d: %w", i, err)
					}
					return
				}
				r.mu.Lock()
				r.perMember[i]++
				r.seen[string(b)]++
				r.mu.Unlock()
			}
		})
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, context.Canceled) {
				t.Error(err)
			}
		}
	})
	return r
}

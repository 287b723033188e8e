package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/session"
)

// startNATS runs an in-process NATS server on a free port of 127.0.0.1
// until the end of the test.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	return startNATSOn(t, -1)
}

// startNATSOn runs an in-process NATS server on 127.0.0.1:port (-1: a
// free port) until the end of the test.
func startNATSOn(t *testing.T, port int) *server.Server {
	t.Helper()
	return startNATSWith(t, &server.Options{Port: port})
}

// startNATSWith runs an in-process NATS server with opts (on 127.0.0.1,
// without logs or signal handlers) until the end of the test.
func startNATSWith(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.NoLog, opts.NoSigs = "127.0.0.1", true, true
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(waitTimeout), "NATS server not ready")
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// waitNATSSubs waits until the NATS server holds n subscriptions on
// subject, over all connections.
func waitNATSSubs(t *testing.T, s *server.Server, subject string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		cz, err := s.Connz(&server.ConnzOptions{SubscriptionsDetail: true})
		require.NoError(t, err)
		got := 0
		for _, c := range cz.Conns {
			for _, sd := range c.SubsDetail {
				if sd.Subject == subject {
					got++
				}
			}
		}
		return got == n
	}, waitTimeout, time.Millisecond, "NATS subscriptions on %q", subject)
}

func TestClusterCarriesMessagesBetweenTwoServers(t *testing.T) {
	s := startNATS(t)
	a := startServer(t, "-metrics", "127.0.0.1:0", "-cluster", s.ClientURL())
	b := startServer(t, "-metrics", "127.0.0.1:0", "-cluster", s.ClientURL())
	alice := dial(t, a.addr, a.clientTLS(t))
	bob := dial(t, b.addr, b.clientTLS(t))
	aliceChat := openChannel(t, alice, "chat")
	bobChat := openChannel(t, bob, "chat")
	waitNATSSubs(t, s, "chat", 2) // one per node

	send(t, aliceChat, "hello from node a")
	require.Equal(t, "hello from node a", receive(t, bobChat))
	send(t, bobChat, "hello from node b")
	require.Equal(t, "hello from node b", receive(t, aliceChat))

	a.waitMetric(t, 1, "quicmsg_cluster_received_total")
	f := scrape(t, a.metricsURL)
	require.Equal(t, 1.0, metricValue(f, "quicmsg_cluster_published_total"))
	require.Equal(t, 1.0, metricValue(f, "quicmsg_cluster_connected"))
	require.Greater(t, metricValue(f, "quicmsg_cluster_rtt_seconds"), 0.0)
	require.Equal(t, 0.0, metricValue(f, "quicmsg_cluster_dropped_total", "reason", "nats_down"))
	require.Equal(t, "ok\n", healthz(t, a.metricsURL))

	var subs subscriptionsReply
	getJSON(t, a.metricsURL+"/status/subscriptions", http.StatusOK, &subs)
	require.Equal(t, []subscriptionStatus{{Subject: "chat", Subscribers: 1}}, subs.Subscriptions.Items)
	require.NotNil(t, subs.Cluster)
	require.NotEmpty(t, subs.Cluster.NodeID)
	require.True(t, subs.Cluster.Connected)
	require.Equal(t, []interestStatus{{Subject: "chat", Subscribed: true}}, subs.Cluster.Interest)
	var st serverStatusReply
	getJSON(t, a.metricsURL+"/status", http.StatusOK, &st)
	require.Equal(t, subs.Cluster.NodeID, st.Server.NodeID)
}

func TestClusterWithoutNATSExitsOrRunsDegraded(t *testing.T) {
	s := startNATS(t)
	url := s.ClientURL()
	s.Shutdown()
	s.WaitForShutdown()

	err := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-dev-certs", t.TempDir(), "-cluster", url}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "-cluster")
	require.ErrorContains(t, err, "-cluster-required=false")

	ts := startServer(t, "-metrics", "127.0.0.1:0", "-cluster", url, "-cluster-required=false")
	require.Equal(t, "degraded: NATS unreachable: messages do not cross nodes\n", healthz(t, ts.metricsURL))
	require.Equal(t, 0.0, metricValue(scrape(t, ts.metricsURL), "quicmsg_cluster_connected"))

	// Local delivery goes on meanwhile.
	conf := ts.clientTLS(t)
	alice, bob := dial(t, ts.addr, conf), dial(t, ts.addr, conf)
	bobChat := openChannel(t, bob, "chat")
	aliceChat := openChannel(t, alice, "chat")
	ts.waitMetric(t, 2, "quicmsg_relay_subscriptions")
	send(t, aliceChat, "local")
	require.Equal(t, "local", receive(t, bobChat))
}

func TestClusterFlagsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-cluster", "nats://127.0.0.1:4222", "-mode", "echo"}, "-cluster needs -mode relay"},
		{[]string{"-cluster", "127.0.0.1:4222"}, "-cluster"},
		{[]string{"-cluster", "nats://127.0.0.1:4222", "-cluster-buffer", "0"}, "-cluster-buffer"},
	} {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		require.ErrorContains(t, err, tc.want, "%v", tc.args)
	}
}

func healthz(t *testing.T, baseURL string) string {
	t.Helper()
	resp, err := httpClient.Get(baseURL + "/healthz")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return string(body)
}

// TestClusterChannelIsOnNATSBeforeItsFirstMessage checks quicsrv's channel
// open hook in cluster mode: when it returns, and so before the channel's
// first message is handled, the NATS server has the node's subscription
// for the channel. Otherwise a request sent on a freshly opened inbox (as
// client.Request does) could reach a responder on another node, and its
// reply reach NATS, before the inbox's subscription: the reply was lost.
func TestClusterChannelIsOnNATSBeforeItsFirstMessage(t *testing.T) {
	s := startNATS(t)
	o, err := parseFlags([]string{"-cluster", s.ClientURL()}, io.Discard)
	require.NoError(t, err)
	h := &hooks{log: slog.New(slog.DiscardHandler)}
	handler, err := h.handler(o)
	require.NoError(t, err)
	t.Cleanup(h.close)
	onNATS := make(chan error, 10)
	srv, err := session.NewServer(&session.Config{
		OnChannelOpen: func(sess *session.Session, channel string) {
			h.channelOpen(sess, channel)
			n, err := countNATSSubs(s, "quicsrv "+h.backplane.NodeID(), func(sub string) bool { return sub == channel })
			if err == nil && n != 1 {
				err = fmt.Errorf("the hook returned before NATS had the subscription of channel %q", channel)
			}
			onNATS <- err
		},
		OnChannelClose: h.channelClose,
		OnSessionEnd:   h.sessionEnd,
	}, handler)
	require.NoError(t, err)
	serverTLS, clientTLS := testenv.TLS(t)
	ln, err := srv.Listen("127.0.0.1:0", serverTLS)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		<-served
	})

	c := dial(t, ln.Addr().String(), clientTLS)
	for i := range 5 {
		openChannel(t, c, fmt.Sprintf("_INBOX.first%d", i))
		select {
		case err := <-onNATS:
			require.NoError(t, err)
		case <-time.After(waitTimeout):
			t.Fatal("the channel open hook did not run")
		}
	}
}

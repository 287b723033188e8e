package main

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// A NATS server that allows shorter protocol lines than quicsrv may send
// (CLUSTER.md asks for at least 1024 bytes) closes the node's connection
// on a request with a long reply subject, and nats.go gives up on it for
// good: /healthz says so plainly, not "unreachable".
func TestClusterConnectionClosedForGoodByNATSShowsOnHealthz(t *testing.T) {
	s := startNATSWith(t, &server.Options{Port: -1, MaxControlLine: 512})
	ts := startServer(t, "-metrics", "127.0.0.1:0", "-cluster", s.ClientURL())
	require.Equal(t, "ok\n", healthz(t, ts.metricsURL))

	c := dial(t, ts.addr, ts.clientTLS(t))
	inbox := "_INBOX." + strings.Repeat("i", 240)
	ch := openChannel(t, c, inbox)
	req := &transport.Message{Subject: "svc", Data: []byte("?")}
	req.Header.Add(transport.HeaderReplyTo, inbox)
	req.Header.Add(transport.HeaderMsgID, strings.Repeat("m", 128))
	sendMsg(t, ch, req)

	const want = "degraded: NATS connection closed for good ("
	assert.Eventually(t, func() bool { return strings.HasPrefix(healthz(t, ts.metricsURL), want) }, waitTimeout, time.Millisecond)
	got := healthz(t, ts.metricsURL)
	require.True(t, strings.HasPrefix(got, want), "healthz: %q", got)
	require.Contains(t, got, "until quicsrv restarts")
	require.Equal(t, 0.0, metricValue(scrape(t, ts.metricsURL), "quicmsg_cluster_connected"))
}

package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/relay"
	"github.com/quicmsg/quicmsg/transport"
)

// waitFor bounds every wait of these tests for something to happen; none
// asserts how long it took.
const waitFor = 10 * time.Second

// startNATS starts an in-process NATS server on 127.0.0.1, on port (0: a
// free one), and shuts it down at the end of the test.
func startNATS(t testing.TB, port int, edit func(*server.Options)) *server.Server {
	t.Helper()
	if port == 0 {
		port = -1
	}
	opts := &server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true}
	if edit != nil {
		edit(opts)
	}
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(waitFor), "NATS server not ready")
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// node is one quicsrv's relay and its backplane.
type node struct {
	name string
	r    *relay.Relay
	bp   *Backplane
}

func newNode(t testing.TB, s *server.Server, name string, cfg Config) *node {
	t.Helper()
	return newNodeWith(t, s, name, cfg, relay.Config{})
}

// newNodeWith is newNode with the relay configured by rcfg.
func newNodeWith(t testing.TB, s *server.Server, name string, cfg Config, rcfg relay.Config) *node {
	t.Helper()
	return newNodeAtWith(t, s.ClientURL(), name, cfg, rcfg)
}

// newNodeAt is newNode for the NATS server at url, which may be down.
func newNodeAt(t testing.TB, url, name string, cfg Config) *node {
	t.Helper()
	return newNodeAtWith(t, url, name, cfg, relay.Config{})
}

func newNodeAtWith(t testing.TB, url, name string, cfg Config, rcfg relay.Config) *node {
	t.Helper()
	cfg.URLs = url
	cfg.NodeID = name
	bp, err := New(&cfg)
	require.NoError(t, err)
	rcfg.Backplane = bp
	r, err := relay.New(&rcfg)
	require.NoError(t, err)
	require.NoError(t, bp.Attach(r))
	t.Cleanup(func() {
		require.NoError(t, r.Close())
		require.NoError(t, bp.Close())
		require.NoError(t, bp.Close(), "Close is idempotent")
	})
	return &node{name: name, r: r, bp: bp}
}

// sync waits until every node's NATS subscriptions match its interest and
// the server has seen them.
func syncNodes(t testing.TB, nodes ...*node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for _, n := range nodes {
		require.NoError(t, n.bp.Sync(ctx), n.name)
	}
}

func (n *node) subscribe(t *testing.T, p *peer, channel, group string) {
	t.Helper()
	require.NoError(t, n.r.Subscribe(p, channel, group))
}

func (n *node) publish(t *testing.T, from *peer, subject, data string) {
	t.Helper()
	_, err := n.r.Publish(context.Background(), from, &transport.Message{Subject: subject, Data: []byte(data)})
	require.NoError(t, err)
}

// peer is a session as the relay sees it; it records what it receives
// as "channel[subject]:data".
type peer struct {
	name  string
	stuck bool // SendMsgs waits until the relay gives up
	mu    sync.Mutex
	got   []string
}

func newPeer(name string) *peer { return &peer{name: name} }

func (p *peer) ID() transport.SessionID {
	var id transport.SessionID
	copy(id[:], p.name)
	return id
}

func (p *peer) SendMsgs(ctx context.Context, channel string, msgs []transport.Message) (int, error) {
	if p.stuck {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		p.got = append(p.got, fmt.Sprintf("%s[%s]:%s", channel, m.Subject, m.Data))
	}
	return len(msgs), nil
}

func (p *peer) SendGap(context.Context, string, transport.Gap) error { return nil }

func (p *peer) DisconnectGracefully(context.Context, transport.ErrorCode, string) error { return nil }

func (p *peer) received() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

// waitFor waits until p has received a message whose record ends with
// suffix, and returns what it received.
func (p *peer) waitForMsg(t *testing.T, suffix string) []string {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, r := range p.received() {
			if strings.HasSuffix(r, suffix) {
				return true
			}
		}
		return false
	}, waitFor, time.Millisecond, "%s did not receive %q", p.name, suffix)
	return p.received()
}

// natsSubs returns the subjects (with " group" for queue subscriptions)
// the NATS server holds for the node's connections, without the node's
// no responders subscription.
func natsSubs(t *testing.T, s *server.Server, n *node) []string {
	t.Helper()
	cz, err := s.Connz(&server.ConnzOptions{SubscriptionsDetail: true})
	require.NoError(t, err)
	var out []string
	for _, c := range cz.Conns {
		if c.Name != "quicsrv "+n.name { // both of the node's connections
			continue
		}
		for _, sd := range c.SubsDetail {
			if strings.HasPrefix(sd.Subject, "_QM.") {
				continue
			}
			out = append(out, strings.TrimSpace(sd.Subject+" "+sd.Queue))
		}
	}
	return out
}

func msgs(channel, subject string, n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = fmt.Sprintf("%s[%s]:%d", channel, subject, i)
	}
	return out
}

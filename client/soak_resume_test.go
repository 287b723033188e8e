//go:build soak

package client

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/internal/udpproxy"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// TestSoakResumeAfterPartition: clients exchange numbered messages both
// ways with a session server through a udpproxy, which then drops every
// packet for longer than the idle timeout; every client resumes its
// session, every message arrives once and in order, and nothing is in
// doubt. Figures: the resumes, what was sent again, and the time from the
// end of the partition to each client's first message from the server.
func TestSoakResumeAfterPartition(t *testing.T) {
	const clients, n, partition = 20, 2000, 10 * time.Second
	rec := newRecorder()
	srv := startResumingServer(t, "127.0.0.1:0", &session.Config{CloseTimeout: time.Second}, rec)
	proxy, err := udpproxy.New(srv.addr)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, proxy.Close()) })
	ctx := testCtx(t)

	type member struct {
		c        *Client
		ch       *Channel
		up, down *seqFlow
		flowRunner
	}
	members := make([]*member, clients)
	for i := range members {
		cfg := &Config{
			Transport: transport.Config{IdleTimeout: 2 * time.Second, KeepAlivePeriod: 500 * time.Millisecond},
			Backoff:   Backoff{InitialDelay: 50 * time.Millisecond, MaxDelay: time.Second},
		}
		c, err := Dial(ctx, proxy.Addr().String(), testClientTLS(t), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		name := fmt.Sprintf("echo-%d", i)
		ch, err := c.Channel(ctx, name)
		require.NoError(t, err)
		m := &member{c: c, ch: ch, up: newSeqFlow(name+" up", n), down: newSeqFlow(name+" down", n)}
		m.goSend(ctx, m.up, ch.Send, 2*time.Millisecond)
		m.goReceive(ctx, m.down, ch)
		members[i] = m
	}
	for _, m := range members {
		m.down.waitArrived(t, n/4)
	}
	proxy.SetBlackHole(true)
	time.Sleep(partition)
	proxy.SetBlackHole(false)
	ended := time.Now()

	var resumes, resent uint64
	var firsts []time.Duration
	for i, m := range members {
		require.NoError(t, m.wait())
		m.down.waitArrived(t, n)
		requireSequence(t, rec.got(fmt.Sprintf("echo-%d", i)), 0, n)
		st := m.c.Stats()
		require.Zero(t, st.MessagesInDoubt, "client %d", i)
		require.Zero(t, st.MessagesUnacked, "client %d", i)
		require.Positive(t, st.Resumes, "client %d", i)
		require.Equal(t, st.Reconnects, st.Resumes, "client %d: every reconnect resumed", i)
		resumes, resent = resumes+st.Resumes, resent+st.MessagesResent
		m.down.mu.Lock()
		at, _ := slices.BinarySearchFunc(m.down.arrived, ended, func(a, b time.Time) int { return a.Compare(b) })
		if at < len(m.down.arrived) {
			firsts = append(firsts, m.down.arrived[at].Sub(ended))
		}
		m.down.mu.Unlock()
	}
	slices.Sort(firsts)
	require.NotEmpty(t, firsts)
	testenv.Figure(t, "clients / messages each way per client", "%d / %d", clients, n)
	testenv.Figure(t, "partition (idle timeout 2 s)", "%s", partition)
	testenv.Figure(t, "resumes", "%d", resumes)
	testenv.Figure(t, "messages sent again by the clients", "%d", resent)
	testenv.Figure(t, "in doubt / duplicates / lost", "0 / 0 / 0")
	testenv.Figure(t, "partition end to first message from the server, min / median / max",
		"%s / %s / %s", firsts[0].Round(time.Millisecond), firsts[len(firsts)/2].Round(time.Millisecond), firsts[len(firsts)-1].Round(time.Millisecond))
}

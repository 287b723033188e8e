package main

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/client"
	"github.com/quicmsg/quicmsg/transport"
)

// failoverTransport is the clients' transport in the node kill: a node
// killed with SIGKILL sends nothing, so a client learns of it from its
// idle timeout, and a dial to the dead address fails after the handshake
// timeout. Short ones keep the test short; keep-alives keep live
// connections well inside the idle timeout.
var failoverTransport = transport.Config{
	IdleTimeout:      1500 * time.Millisecond,
	KeepAlivePeriod:  250 * time.Millisecond,
	HandshakeTimeout: time.Second,
}

// eventLog records the events of a client.Client (its Config.OnEvent).
type eventLog struct {
	mu     sync.Mutex
	events []client.Event
}

func (l *eventLog) add(e client.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) snapshot() []client.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// failoverClient is a subscriber of the node kill: a client.Client dialled
// to the node to be killed, with the others as its Fallback.
type failoverClient struct {
	cl    *client.Client
	ch    *client.Channel
	log   *eventLog
	since int // events before the kill
}

// testNodeKilled subscribes client.Clients on b (Fallback: c), one of
// them in a queue group too, kills b's process with SIGKILL and checks
// that the clients fail over to c, where their channels are opened again
// (the group's with its group), and that a message published on a after
// the kill reaches each of them exactly once. The clients publish
// right after the kill, to connections whose server is gone: each of
// those messages is either reported (listed in the *ResumeFailedError of
// an EventResumeFailed, since c cannot resume b's sessions, and counted in
// Stats.MessagesUnacked) or, if the client had not written it yet,
// delivered once from c; never both, never silently lost.
func testNodeKilled(t *testing.T, s *server.Server, a, b, c *node, conf *tls.Config) {
	const subject, inflightSubject, jobsSubject = "alerts", "alerts.inflight", "jobs.failover"
	subs := []*failoverClient{subscribeFailover(t, b, c, conf, subject), subscribeFailover(t, b, c, conf, subject)}
	// The first client is also the one member of a queue group.
	member, err := subs[0].cl.ChannelWith(testCtx(t), jobsSubject, transport.ChannelOptions{Group: "workers"})
	require.NoError(t, err)
	pub := openChannel(t, dial(t, a.addr, conf), subject)
	jobs := openChannel(t, dial(t, a.addr, conf), jobsSubject)
	inflight := openChannel(t, dial(t, a.addr, conf), inflightSubject)
	waitNATSSubsOf(t, s, b.natsID, subject, 1)
	waitNATSSubsOf(t, s, b.natsID, jobsSubject, 1)
	waitNATSSubsOf(t, s, a.natsID, inflightSubject, 1)
	send(t, pub, "before the kill")
	for _, sub := range subs {
		require.Equal(t, "before the kill", clientReceive(t, sub.ch))
		sub.since = len(sub.log.snapshot())
	}

	killed := time.Now()
	b.kill(t)
	const perClient = 3
	var sent []string
	for i, sub := range subs {
		for j := range perClient {
			m := fmt.Sprintf("in flight %d.%d", i, j)
			require.NoError(t, sub.ch.SendMsg(testCtx(t), &transport.Message{Subject: inflightSubject, Data: []byte(m)}))
			sent = append(sent, m)
		}
	}

	unacked := map[string]bool{}
	for i, sub := range subs {
		rf := waitFailover(t, sub, b.addr, c.addr)
		t.Logf("client %d: on c %v after the kill (idle timeout %v, handshake timeout %v); events: %v",
			i, time.Since(killed).Round(time.Millisecond), failoverTransport.IdleTimeout, failoverTransport.HandshakeTimeout, eventTypes(sub.log.snapshot()[sub.since:]))
		for _, m := range rf.Unacked[subject] {
			unacked[string(m.Data)] = true
		}
	}

	// The clients' channels, the group member's too, are open on c now:
	// c subscribes on NATS.
	waitNATSSubsOf(t, s, c.natsID, subject, 1)
	waitNATSSubsOf(t, s, c.natsID, jobsSubject, 1)
	requireOnce(t, pub, "after the kill", subs[0].ch, subs[1].ch)
	requireOnce(t, jobs, "a job after the kill", member)

	delivered := inflightDelivered(t, subs, inflight, inflightSubject)
	for _, m := range sent {
		if unacked[m] {
			require.Zero(t, delivered[m], "%q was reported unacknowledged and delivered", m)
		} else {
			require.Equal(t, 1, delivered[m], "%q: not reported, so delivered exactly once", m)
		}
	}
	t.Logf("node b killed: %d messages published by its clients after the kill, %d reported unacknowledged (ResumeFailedError), %d delivered from c",
		len(sent), len(unacked), len(sent)-len(unacked))
}

// subscribeFailover dials a client.Client to node b, with c as its
// Fallback, and opens its channel named subject.
func subscribeFailover(t *testing.T, b, c *node, conf *tls.Config, subject string) *failoverClient {
	t.Helper()
	log := &eventLog{}
	cl := dialClient(t, b.addr, conf, &client.Config{Fallback: []string{c.addr}, Transport: failoverTransport, OnEvent: log.add})
	ch, err := cl.Channel(testCtx(t), subject)
	require.NoError(t, err)
	return &failoverClient{cl: cl, ch: ch, log: log}
}

// requireOnce publishes msg on pub and checks that each of chans receives
// it once: a second copy would come before the marker published next.
func requireOnce(t *testing.T, pub *transport.Channel, msg string, chans ...*client.Channel) {
	t.Helper()
	send(t, pub, msg)
	send(t, pub, "end")
	for i, ch := range chans {
		require.Equal(t, msg, clientReceive(t, ch), "channel %d", i)
		require.Equal(t, "end", clientReceive(t, ch), "channel %d", i)
	}
}

// waitFailover waits until sub reconnected to c after the kill, checks the
// events it reported on the way and returns its ResumeFailedError: it
// lost its connection to b (EventDisconnected), c refused to resume the
// session (EventResumeFailed: c never had it, and its resume key is its
// own), and a new session began on c (EventReconnected, not resumed).
// What the error lists is what Stats counts as unacknowledged and in
// doubt.
func waitFailover(t *testing.T, sub *failoverClient, b, c string) *client.ResumeFailedError {
	t.Helper()
	var events []client.Event
	require.Eventually(t, func() bool {
		events = sub.log.snapshot()[sub.since:]
		return slices.ContainsFunc(events, func(e client.Event) bool { return e.Type == client.EventReconnected })
	}, waitTimeout, 10*time.Millisecond, "no EventReconnected after the kill")
	disc := slices.IndexFunc(events, func(e client.Event) bool { return e.Type == client.EventDisconnected })
	failed := slices.IndexFunc(events, func(e client.Event) bool { return e.Type == client.EventResumeFailed })
	recon := slices.IndexFunc(events, func(e client.Event) bool { return e.Type == client.EventReconnected })
	require.True(t, disc >= 0 && disc < failed && failed < recon, "events after the kill: %v", eventTypes(events))
	require.Equal(t, b, events[disc].Addr)
	require.Equal(t, c, events[failed].Addr)
	require.Equal(t, c, events[recon].Addr)
	require.False(t, events[recon].Resumed)
	var rf *client.ResumeFailedError
	require.ErrorAs(t, events[failed].Err, &rf)
	require.ErrorIs(t, rf, transport.ErrResumeTokenInvalid)
	require.Equal(t, client.StatusConnected, sub.cl.Status())
	st := sub.cl.Stats()
	require.Equal(t, uint64(rf.Messages()), st.MessagesUnacked)
	require.Equal(t, st.MessagesUnacked, st.MessagesInDoubt, "in doubt are the unacknowledged ones")
	return rf
}

// inflightDelivered has each client mark the end of what it published on
// subject after the kill (what goes out from c comes before its mark)
// and returns how many times the listener got each of those messages.
func inflightDelivered(t *testing.T, subs []*failoverClient, listener *transport.Channel, subject string) map[string]int {
	t.Helper()
	for i, sub := range subs {
		require.NoError(t, sub.ch.SendMsg(testCtx(t), &transport.Message{Subject: subject, Data: fmt.Appendf(nil, "end %d", i)}))
	}
	delivered := map[string]int{}
	for ends := 0; ends < len(subs); {
		m := receive(t, listener)
		if strings.HasPrefix(m, "end ") {
			ends++
			continue
		}
		delivered[m]++
	}
	return delivered
}

func clientReceive(t *testing.T, ch *client.Channel) string {
	t.Helper()
	b, err := ch.Receive(testCtx(t))
	require.NoError(t, err)
	return string(b)
}

func eventTypes(events []client.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = fmt.Sprintf("%s %s", e.Type, e.Addr)
		if e.Err != nil {
			out[i] += fmt.Sprintf(" (%v)", e.Err)
		}
	}
	return out
}

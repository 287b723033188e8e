package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

func sendMsg(t *testing.T, ch *transport.Channel, m *transport.Message) {
	t.Helper()
	require.NoError(t, ch.SendMsg(testCtx(t), m))
}

func receiveMsg(t *testing.T, ch *transport.Channel) *transport.Message {
	t.Helper()
	m, err := ch.ReceiveMsg(testCtx(t))
	require.NoError(t, err)
	return m
}

// readAll reads ch until want messages were received or reported missed,
// and returns the messages received and the gaps.
func readAll(t *testing.T, ch *transport.Channel, want int) (received int, gaps []transport.Gap) {
	t.Helper()
	missed := 0
	for received+missed < want {
		_, err := ch.Receive(testCtx(t))
		var ge *transport.GapError
		if errors.As(err, &ge) {
			gaps = append(gaps, ge.Gap)
			missed += int(ge.Missed)
			continue
		}
		require.NoError(t, err, "after %d received and %d missed", received, missed)
		received++
	}
	require.Equal(t, want, received+missed)
	return received, gaps
}

func TestSlowSubscriberIsToldExactlyWhatItMissed(t *testing.T) {
	ts, _, ch := slowConsumerScenario(t, "drop")
	received, gaps := readAll(t, ch, slowConsumerMessages)
	require.NotEmpty(t, gaps, "the subscriber fell behind")
	missed := 0
	for _, g := range gaps {
		require.Equal(t, transport.GapSlowConsumer, g.Reason)
		missed += int(g.Missed)
	}
	f := scrape(t, ts.metricsURL)
	require.Equal(t, float64(missed), metricValue(f, "quicmsg_relay_dropped_total"))
	require.Equal(t, float64(len(gaps)), metricValue(f, "quicmsg_relay_gaps_total", "reason", "slow_consumer"))
	require.Equal(t, float64(missed), metricValue(f, "quicmsg_relay_gap_messages_total", "reason", "slow_consumer"))
	require.Equal(t, 1.0, metricValue(f, "quicmsg_relay_slow_consumer_policy", "policy", "drop"))
	t.Logf("stuck subscriber: %d received, %d missed in %d gap notices", received, missed, len(gaps))
}

func TestBlockPolicyDisconnectsAStuckSubscriberAfterThePublishTimeout(t *testing.T) {
	ts, stuck, _ := slowConsumerScenario(t, "block", "-publish-timeout", "500ms")
	requireSlowConsumerClose(t, stuck)
	ts.waitMetric(t, 1, "quicmsg_relay_publish_timeouts_total")
	ts.waitMetric(t, 1, "quicmsg_slow_consumer_disconnects_total")
}

func TestBlockPolicySlowsThePublisherAndLosesNothing(t *testing.T) {
	ts := startServer(t, "-metrics", "127.0.0.1:0", "-subscriber-queue", "8", "-slow-consumer", "block", "-publish-timeout", "60s")
	conf := ts.clientTLS(t)
	pub, slow := dial(t, ts.addr, conf), dial(t, ts.addr, conf)
	slowCh := openChannel(t, slow, "lossless")
	pubCh := openChannel(t, pub, "lossless")
	ts.waitMetric(t, 2, "quicmsg_relay_subscriptions")

	// More than the subscriber's QUIC window, its send buffer and its
	// relay queue hold: the publisher is held back until it reads.
	const n = 200
	payload := bytes.Repeat([]byte{'x'}, 16<<10)
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			p := bytes.Clone(payload)
			copy(p, strconv.Itoa(i)+":")
			if err := pubCh.Send(testCtx(t), p); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	require.Eventually(t, func() bool {
		return metricValue(scrape(t, ts.metricsURL), "quicmsg_slow_consumer_events_total") >= 1
	}, waitTimeout, 10*time.Millisecond, "the subscriber's queue never filled")
	for i := range n {
		got, err := slowCh.Receive(testCtx(t))
		require.NoError(t, err, "message %d", i)
		require.True(t, bytes.HasPrefix(got, []byte(strconv.Itoa(i)+":")), "message %d out of order", i)
	}
	require.NoError(t, <-sent)
	f := scrape(t, ts.metricsURL)
	require.Equal(t, 0.0, metricValue(f, "quicmsg_relay_dropped_total"))
	require.Equal(t, 0.0, metricValue(f, "quicmsg_relay_publish_timeouts_total"))
}

func TestWildcardsAndInvalidPatterns(t *testing.T) {
	ts := startServer(t, "-metrics", "127.0.0.1:0")
	conf := ts.clientTLS(t)
	pub, sub := dial(t, ts.addr, conf), dial(t, ts.addr, conf)

	bad := openChannel(t, sub, "orders.>.eu")
	_, err := bad.Receive(testCtx(t))
	var ce *transport.ChannelError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, transport.CodeInvalidSubject, ce.Code)

	// The session carries on.
	all := openChannel(t, sub, "orders.>")
	one := openChannel(t, sub, "orders.*.new")
	ts.waitMetric(t, 2, "quicmsg_relay_subscriptions")
	pubCh := openChannel(t, pub, "orders.eu.new")
	send(t, pubCh, "first")
	for _, ch := range []*transport.Channel{all, one} {
		m := receiveMsg(t, ch)
		require.Equal(t, "orders.eu.new", m.Subject, "a wildcard delivery says its subject")
		require.Equal(t, "first", string(m.Data))
	}
	// Publishing to another subject from the same channel.
	sendMsg(t, pubCh, &transport.Message{Subject: "orders.us.old", Data: []byte("second")})
	m := receiveMsg(t, all)
	require.Equal(t, "orders.us.old", m.Subject)
}

func TestQueueGroupMembersShareMessages(t *testing.T) {
	ts := startServer(t, "-metrics", "127.0.0.1:0")
	conf := ts.clientTLS(t)
	pub := dial(t, ts.addr, conf)
	var members []*transport.Channel
	for range 2 {
		c := dial(t, ts.addr, conf)
		ch, err := c.OpenChannelWith(testCtx(t), "jobs.>", transport.ChannelOptions{Group: "workers"})
		require.NoError(t, err)
		members = append(members, ch)
	}
	ts.waitMetric(t, 2, "quicmsg_relay_subscriptions")
	pubCh := openChannel(t, pub, "jobs.build")
	const n = 10
	for i := range n {
		send(t, pubCh, strconv.Itoa(i))
	}
	// Round robin: each member gets half.
	for _, ch := range members {
		for range n / 2 {
			receive(t, ch)
		}
	}
	ts.waitMetric(t, n, "quicmsg_relay_delivered_total")
}

func TestRequestWithoutRespondersGetsStatus503(t *testing.T) {
	ts := startServer(t, "-metrics", "127.0.0.1:0")
	c := dial(t, ts.addr, ts.clientTLS(t))
	inbox := openChannel(t, c, "_INBOX.quicsrvtest")
	ts.waitMetric(t, 1, "quicmsg_relay_subscriptions")
	req := &transport.Message{Subject: "svc.nobody", Data: []byte("?")}
	req.Header.Add(transport.HeaderReplyTo, "_INBOX.quicsrvtest")
	req.Header.Add(transport.HeaderMsgID, "42")
	sendMsg(t, inbox, req)
	m := receiveMsg(t, inbox)
	require.Equal(t, transport.StatusNoResponders, m.Header.Get(transport.HeaderStatus))
	require.Equal(t, "42", m.Header.Get(transport.HeaderInReplyTo))
	ts.waitMetric(t, 1, "quicmsg_relay_no_responders_total")
}

func TestEchoModeAnswersARequest(t *testing.T) {
	ts := startServer(t, "-mode", "echo")
	c := dial(t, ts.addr, ts.clientTLS(t))
	ch := openChannel(t, c, "_INBOX.echo")
	req := &transport.Message{Subject: "svc.echo", Data: []byte("ping")}
	req.Header.Add(transport.HeaderReplyTo, "_INBOX.echo")
	req.Header.Add(transport.HeaderMsgID, "1")
	sendMsg(t, ch, req)
	m := receiveMsg(t, ch)
	require.Equal(t, "_INBOX.echo", m.Subject)
	require.Equal(t, "1", m.Header.Get(transport.HeaderInReplyTo))
	require.Equal(t, "ping", string(m.Data))
}

// A conforming client never publishes to a wildcard subject (its transport
// refuses), so this calls the relay mode handler directly, on the session
// of a real connection, with the message a non-conforming client would
// have sent.
func TestWildcardPublishStopsItsChannelAndTheSessionCarriesOn(t *testing.T) {
	o, err := parseFlags([]string{"-addr", "127.0.0.1:0", "-dev-certs", t.TempDir()}, io.Discard)
	require.NoError(t, err)
	log := slog.New(slog.DiscardHandler)
	tc, err := transportConfig(o, log)
	require.NoError(t, err)
	st, err := setupTLS(o, &tc, log)
	require.NoError(t, err)
	t.Cleanup(st.close)
	h := &hooks{log: log}
	handler, err := h.handler(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.relay.Close() })
	srv, ln, err := listen(o, st, &tc, nil, h, handler)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-served
	})

	conf, err := certs.ClientConfig(certs.ClientOptions{CAFile: st.caFile, ServerName: "localhost"})
	require.NoError(t, err)
	c := dial(t, ln.Addr().String(), conf)
	ch := openChannel(t, c, "orders.>")
	var sess *session.Session
	require.Eventually(t, func() bool {
		for _, s := range srv.Sessions() {
			if _, ok := s.Channel("orders.>"); ok {
				sess = s
			}
		}
		return sess != nil
	}, waitTimeout, 5*time.Millisecond)

	h.publish(testCtx(t), sess, session.Message{Channel: "orders.>", Subject: "orders.>", Data: []byte("x")})
	_, err = ch.Receive(testCtx(t))
	var ce *transport.ChannelError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, transport.CodeInvalidSubject, ce.Code)
	require.Equal(t, uint64(1), h.relay.Stats().Refused)

	other := openChannel(t, c, "orders.eu")
	send(t, other, "still here")
	require.NoError(t, c.Context().Err(), "the session carries on")
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/client"
	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/transport"
)

func TestReqGetsTheEchoOfAReplyWithoutResponse(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	_, wait := startCLI(t, nil, ts.args("reply", "-count", "1", "svc.echo")...)
	ts.waitSubscribers(t, "svc.echo", 1)

	got := runCLI(t, nil, ts.args("req", "svc.echo", "hello there")...)
	require.NoError(t, got.err, got.stderr)
	require.Equal(t, "hello there\n", got.stdout)

	served := wait()
	require.NoError(t, served.err, served.stderr)
	require.Equal(t, "hello there\n", served.stdout, "reply prints each request it answered")
}

func TestReplyWithAFixedResponseOnAWildcardPrintsTheSubject(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	_, wait := startCLI(t, nil, ts.args("reply", "-count", "2", "time.*", "noon")...)
	ts.waitSubscribers(t, "time.*", 1)

	for _, subject := range []string{"time.eu", "time.us"} {
		got := runCLI(t, nil, ts.args("req", subject, "")...)
		require.NoError(t, got.err, got.stderr)
		require.Equal(t, "noon\n", got.stdout)
	}
	served := wait()
	require.NoError(t, served.err, served.stderr)
	require.Equal(t, "time.eu: \ntime.us: \n", served.stdout)
}

func TestReplyCommandAnswersWithItsOutputAndReqSendsHeaders(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	_, wait := startCLI(t, nil, ts.args("reply", "-count", "1", "-headers", "-command", `tr a-z A-Z; printf " via %s" "$QUICCLI_SUBJECT"`, "text.upper")...)
	ts.waitSubscribers(t, "text.upper", 1)

	got := runCLI(t, nil, ts.args("-json", "req", "-headers", "-H", "x-trace=42", "text.upper", "shout")...)
	require.NoError(t, got.err, got.stderr)
	var reply jsonMessage
	require.NoError(t, json.Unmarshal([]byte(got.stdout), &reply), got.stdout)
	require.Equal(t, "SHOUT via text.upper", reply.Payload)
	require.Equal(t, "text.upper", reply.Channel)
	require.Contains(t, reply.Headers, jsonHeader{Key: transport.HeaderInReplyTo, Value: "1"})

	served := wait()
	require.NoError(t, served.err, served.stderr)
	require.Regexp(t, `^\[x-trace=42 reply-to=_INBOX\.[0-9A-Za-z]{22} msg-id=1\] shout\n$`, served.stdout)
}

func TestReqWithNoRespondersFailsAtOnce(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	got := runCLI(t, nil, ts.args("-timeout", "10s", "req", "nobody.home", "?")...)
	require.ErrorIs(t, got.err, transport.ErrNoResponders)
	require.Equal(t, exitError, got.code)
	require.Contains(t, got.err.Error(), `no responders: nothing at `+ts.addr+` subscribes to "nobody.home"`)
}

func TestReqWithoutReplyTimesOutNamingTheTimeout(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	// A listener receives the request but does not answer it.
	_, wait := startCLI(t, nil, ts.args("listen", "-count", "1", "svc.mute")...)
	ts.waitSubscribers(t, "svc.mute", 1)
	got := runCLI(t, nil, ts.args("-timeout", "300ms", "req", "svc.mute", "?")...)
	require.ErrorIs(t, got.err, context.DeadlineExceeded)
	require.Contains(t, got.err.Error(), `no reply to the request on "svc.mute" within 300ms (-timeout)`)
	require.NoError(t, wait().err)
}

func TestReqAgainstAnEchoServerGetsItsDataBack(t *testing.T) {
	ts := startServer(t, serverOptions{})
	got := runCLI(t, nil, ts.args("req", "svc.any", "ping")...)
	require.NoError(t, got.err, got.stderr)
	require.Equal(t, "ping\n", got.stdout)
}

func TestReqAndReplyRefuseBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"req"},
		{"req", "svc.*", "x"},
		{"req", "a", "b", "c"},
		{"req", "-H", "novalue", "svc", "x"},
		{"req", "-H", "subject=x", "svc", "x"},
		{"reply"},
		{"reply", "-command", "cat", "svc", "fixed"},
		{"reply", "-count", "-1", "svc"},
		{"reply", "-group", "a.b", "svc"},
		{"listen", "-group", "bad group", "svc"},
		{"listen", "a.>.b"},
	} {
		got := runCLI(t, nil, append([]string{"-addr", "127.0.0.1:1"}, args...)...)
		require.Equal(t, exitUsage, got.code, "%q: %v", args, got.err)
	}
}

func TestListenReportsAGapCountsItAndExitsWithMissed(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	_, wait := startCLI(t, nil, ts.args("listen", "-count", "5", "logs")...)
	sess := ts.session(t, "logs")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, sess.Send(ctx, "logs", []byte("one")))
	require.NoError(t, sess.SendGap(ctx, "logs", transport.Gap{Missed: 3, Reason: transport.GapSlowConsumer}))
	require.NoError(t, sess.Send(ctx, "logs", []byte("five")))

	got := wait()
	require.Equal(t, exitMissed, got.code, "%v\n%s", got.err, got.stderr)
	require.Equal(t, "one\nfive\n", got.stdout, "1 + 3 missed + 1 reach -count 5")
	require.Contains(t, got.stderr, "quiccli: logs: 3 messages missed (slow consumer)\n")
	require.Contains(t, got.err.Error(), "3 messages missed, 2 messages received")
}

func TestListenDoesNotReconnectAfterASlowConsumerDisconnect(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	_, wait := startCLI(t, nil, ts.args("listen", "-count", "10", "logs")...)
	sess := ts.session(t, "logs")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, sess.Send(ctx, "logs", []byte("one")))
	require.NoError(t, sess.SendGap(ctx, "logs", transport.Gap{Missed: 2, Reason: transport.GapDisconnect}))
	require.NoError(t, sess.DisconnectGracefully(ctx, transport.CodeSlowConsumer, "slow consumer"))

	got := wait()
	require.Equal(t, exitMissed, got.code, "%v\n%s", got.err, got.stderr)
	require.Equal(t, "one\n", got.stdout)
	require.Contains(t, got.stderr, "quiccli: logs: 2 messages missed (disconnect)\n")
	require.Contains(t, got.err.Error(), "disconnected this listener as a slow consumer")
	require.Contains(t, got.err.Error(), "not reconnecting: 1 message received, 2 messages missed; of -count 10, 9 not received")
	require.NotContains(t, got.stderr, "reconnect")
}

func TestListenOnAWildcardPrintsSubjectsAndHeaders(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	_, wait := startCLI(t, nil, ts.args("listen", "-headers", "-count", "2", "-group", "workers", "orders.>")...)
	ts.waitSubscribers(t, "orders.>", 1)

	require.NoError(t, runCLI(t, nil, ts.args("send", "-H", "traceparent=00-ab-cd-01", "-H", "note=two words", "orders.eu.new", "first")...).err)
	require.NoError(t, runCLI(t, nil, ts.args("send", "orders.us", "second")...).err)

	got := wait()
	require.NoError(t, got.err, got.stderr)
	// Two sessions publish: send returns once the server has the message,
	// which may be before the relay passes it on, so the order is free.
	require.ElementsMatch(t, []string{"orders.eu.new: [traceparent=00-ab-cd-01 note=\"two words\"] first", "orders.us: second"},
		strings.Split(strings.TrimSuffix(got.stdout, "\n"), "\n"))
}

func TestListenersOfAQueueGroupShareTheMessages(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	outs := make([]*testenv.Buffer, 2)
	done := make(chan outcome, 2)
	for i := range outs {
		outs[i] = &testenv.Buffer{}
		go func() {
			var stderr testenv.Buffer
			err := run(ctx, ts.args("listen", "-group", "workers", "jobs.>"), strings.NewReader(""), outs[i], &stderr)
			done <- outcome{stderr: stderr.String(), err: err}
		}()
	}
	ts.waitSubscribers(t, "jobs.>", 2)
	var jobs, want []string
	for i := range 10 {
		jobs = append(jobs, "job"+strconv.Itoa(i))
		want = append(want, "jobs.new: job"+strconv.Itoa(i))
	}
	require.NoError(t, runCLI(t, nil, ts.args(append([]string{"send", "jobs.new"}, jobs...)...)...).err)

	lines := func() []string {
		var all []string
		for _, o := range outs {
			all = append(all, strings.FieldsFunc(o.String(), func(r rune) bool { return r == '\n' })...)
		}
		return all
	}
	require.Eventually(t, func() bool { return len(lines()) >= len(jobs) }, 10*time.Second, 5*time.Millisecond)
	cancel()
	for range outs {
		got := <-done
		require.NoError(t, got.err, got.stderr)
	}
	got := lines()
	slices.Sort(got)
	slices.Sort(want)
	require.Equal(t, want, got, "each message to exactly one member of the group")
	for i, o := range outs {
		require.NotEmpty(t, o.String(), "member %d got none: the group shares round robin", i)
	}
}

func TestClientRequestThroughTheRelay(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	_, wait := startCLI(t, nil, ts.args("reply", "-count", "1", "svc.upper", "DONE")...)
	ts.waitSubscribers(t, "svc.upper", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tlsConf, err := certs.ClientConfig(certs.ClientOptions{CAFile: ts.caFile})
	require.NoError(t, err)
	c, err := client.Dial(ctx, ts.addr, tlsConf, nil)
	require.NoError(t, err)
	defer c.Close()

	reply, err := c.Request(ctx, "svc.upper", &transport.Message{Data: []byte("done")})
	require.NoError(t, err)
	require.Equal(t, "DONE", string(reply.Data))
	_, err = c.Request(ctx, "svc.nobody", &transport.Message{Data: []byte("?")})
	require.ErrorIs(t, err, transport.ErrNoResponders)
	require.NoError(t, wait().err)
}

// A -command that outlives -timeout is killed with its children, which
// would otherwise hold its output open and stall every later request.
func TestReplyCommandTimeoutKillsItsChildren(t *testing.T) {
	var stderr bytes.Buffer
	r := &responder{g: &globals{timeout: 200 * time.Millisecond, stderr: &stderr}, command: "sleep 30; echo late", limit: 1024}
	done := make(chan error, 1)
	go func() {
		_, err := r.replyData(context.Background(), &transport.Message{Subject: "svc", Data: []byte("x")})
		done <- err
	}()
	select {
	case err := <-done:
		require.ErrorContains(t, err, "did not finish within")
	case <-time.After(20 * time.Second):
		t.Fatal("replyData still waits for the command's child after 20 s")
	}
}

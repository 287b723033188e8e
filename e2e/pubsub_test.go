package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// sorted returns the lines a process printed, sorted.
func sorted(p *process) []string {
	lines := p.stdout.lines()
	slices.Sort(lines)
	return lines
}

func TestWildcardListenersPrintTheConcreteSubject(t *testing.T) {
	s := startServer(t)
	star := s.quiccli(t, "listen", "-count", "2", "orders.*")
	tail := s.quiccli(t, "listen", "-count", "3", "orders.>")
	middle := s.quiccli(t, "listen", "-count", "1", "orders.*.new")
	exact := s.quiccli(t, "listen", "-count", "1", "orders.new")
	s.waitSubscriptions(t, 4)

	for _, m := range [][2]string{{"orders.new", "first"}, {"orders.paid", "second"}, {"orders.eu.new", "third"}, {"invoices.new", "nobody"}} {
		requireQuiccli(t, s.client("send", m[0], m[1])...)
	}

	for _, p := range []*process{star, tail, middle, exact} {
		require.Equal(t, 0, p.wait(t), "%s ends after -count messages", p.name)
	}
	require.Equal(t, []string{"orders.new: first", "orders.paid: second"}, sorted(star), "* is one token")
	require.Equal(t, []string{"orders.eu.new: third", "orders.new: first", "orders.paid: second"}, sorted(tail), "> is the rest")
	// orders.*.new needs three tokens: orders.new is not one of them.
	require.Equal(t, []string{"orders.eu.new: third"}, middle.stdout.lines())
	require.Equal(t, "first\n", exact.stdout.String(), "a literal channel prints no subject")

	// Publishing to a wildcard is refused, naming the fault.
	r := runQuiccli(t, s.client("send", "orders.*", "x")...)
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "wildcard")
}

func TestWildcardListenerGetsTheSubjectInJSON(t *testing.T) {
	s := startServer(t)
	l := s.quiccli(t, "-json", "listen", "-count", "1", "metrics.>")
	s.waitSubscriptions(t, 1)
	requireQuiccli(t, s.client("send", "metrics.cpu.load", "0.5")...)
	require.Equal(t, 0, l.wait(t))
	var m struct {
		Channel, Subject, Payload string
	}
	require.NoError(t, json.Unmarshal([]byte(l.stdout.String()), &m))
	require.Equal(t, "metrics.>", m.Channel)
	require.Equal(t, "metrics.cpu.load", m.Subject)
	require.Equal(t, "0.5", m.Payload)
}

func TestQueueGroupListenersShareTheMessagesEachOnce(t *testing.T) {
	const perSubject = 10
	s := startServer(t)
	var workers []*process
	for range 3 {
		workers = append(workers, s.quiccli(t, "listen", "-group", "workers", "orders.>"))
	}
	all := s.quiccli(t, "listen", "-count", fmt.Sprint(3*perSubject), "orders.>")
	s.waitSubscriptions(t, 4)

	var want []string
	for _, subject := range []string{"orders.a", "orders.b.c", "orders.d"} {
		args := []string{"send", subject}
		for i := range perSubject {
			msg := fmt.Sprintf("%s-%d", subject, i)
			args = append(args, msg)
			want = append(want, subject+": "+msg)
		}
		requireQuiccli(t, s.client(args...)...)
	}
	slices.Sort(want)

	require.Equal(t, 0, all.wait(t))
	require.Equal(t, want, sorted(all), "a listener outside the group gets every message")
	waitFor(t, "the group to print every message", func() bool {
		n := 0
		for _, w := range workers {
			n += strings.Count(w.stdout.String(), "\n")
		}
		return n >= len(want)
	})
	var got []string
	for _, w := range workers {
		w.signal(t, syscall.SIGTERM)
		require.Equal(t, 0, w.wait(t))
		lines := w.stdout.lines()
		require.NotEmpty(t, lines, "every member of the group gets a share")
		got = append(got, lines...)
	}
	slices.Sort(got)
	require.Equal(t, want, got, "each message went to exactly one member of the group")
}

func TestReqGetsTheReplyOfEachKindOfResponder(t *testing.T) {
	s := startServer(t)
	echo := s.quiccli(t, "reply", "-count", "1", "svc.echo")
	upper := s.quiccli(t, "reply", "-command", "tr a-z A-Z", "svc.upper")
	fixed := s.quiccli(t, "reply", "svc.time", "noon")
	s.waitSubscriptions(t, 3)

	require.Equal(t, "hello\n", requireQuiccli(t, s.client("req", "svc.echo", "hello")...), "reply without RESPONSE echoes")
	require.Equal(t, 0, echo.wait(t), "reply -count 1 ends after one request")
	require.Equal(t, "HELLO WORLD\n", requireQuiccli(t, s.client("req", "svc.upper", "hello world")...), "-command's stdout is the reply")
	require.Equal(t, "noon\n", requireQuiccli(t, s.client("req", "svc.time")...))
	require.Equal(t, "noon\n", requireQuiccli(t, s.client("req", "svc.time", "again")...), "a responder answers every request")

	for _, p := range []*process{upper, fixed} {
		p.signal(t, syscall.SIGTERM)
		require.Equal(t, 0, p.wait(t))
	}
}

// TestReqWithoutRespondersFailsAtOnce: with a -timeout longer than the
// test waits for a process, only the relay's "no responders" answer can end
// req in time.
func TestReqWithoutRespondersFailsAtOnce(t *testing.T) {
	s := startServer(t)
	r := runQuiccli(t, s.client("-timeout", "10m", "req", "svc.nobody", "hello")...)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "no responders")
	require.Contains(t, r.stderr, `"svc.nobody"`)
	require.Empty(t, r.stdout)
}

func TestReqToAnEchoServerIsAnsweredByTheServer(t *testing.T) {
	s := startServer(t, "-mode", "echo")
	require.Equal(t, "ping\n", requireQuiccli(t, s.client("req", "anything", "ping")...))
}

func TestHeadersGoFromSendToListen(t *testing.T) {
	s := startServer(t)
	text := s.quiccli(t, "listen", "-headers", "-count", "2", "chat")
	js := s.quiccli(t, "-json", "listen", "-headers", "-count", "1", "chat")
	plain := s.quiccli(t, "listen", "-count", "2", "chat")
	s.waitSubscriptions(t, 3)

	requireQuiccli(t, s.client("send", "-H", "traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "-H", "note=two words", "chat", "hello")...)
	// Two senders: the second starts once the first message arrived, so
	// that the order is known.
	for _, p := range []*process{text, plain} {
		p.waitLines(t, 1)
	}
	requireQuiccli(t, s.client("send", "chat", "bare")...)

	require.Equal(t, 0, text.wait(t))
	require.Equal(t, "[traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 note=\"two words\"] hello\nbare\n", text.stdout.String(),
		"headers in order before the payload; a message without headers prints none")
	require.Equal(t, 0, plain.wait(t))
	require.Equal(t, "hello\nbare\n", plain.stdout.String(), "without -headers only the payload")

	require.Equal(t, 0, js.wait(t))
	var m struct {
		Payload string
		Headers []struct{ Key, Value string }
	}
	require.NoError(t, json.Unmarshal([]byte(js.stdout.String()), &m))
	require.Equal(t, "hello", m.Payload)
	require.Len(t, m.Headers, 2)
	require.Equal(t, "note", m.Headers[1].Key)
	require.Equal(t, "two words", m.Headers[1].Value)
}

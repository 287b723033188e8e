package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// seqCount is the number of lines of the README's example,
// `seq 1 200000 | quiccli send logs`.
const seqCount = 200000

// exitMissed is quiccli listen's exit status when messages were missed.
const exitMissed = 4

// reMissed matches listen's report of a gap notice on stderr: channel,
// count, reason.
var reMissed = regexp.MustCompile(`(?m)^quiccli: (\S+): (\d+) messages? missed \(([a-z ]+)\)$`)

// missedReported returns the sum of the gap notices a listener reported on
// stderr for channel, and the last count printed for each reason.
func missedReported(t *testing.T, stderr, channel string) (int, map[string]string) {
	t.Helper()
	sum, reasons := 0, map[string]string{}
	for _, m := range reMissed.FindAllStringSubmatch(stderr, -1) {
		if m[1] != channel {
			continue
		}
		n, err := strconv.Atoi(m[2])
		require.NoError(t, err)
		require.Positive(t, n, "a gap notice reports at least one message")
		sum += n
		reasons[m[3]] = m[2]
	}
	return sum, reasons
}

// seqLine is line i of the input: the number i, padded with a tab and x's
// up to width bytes when width is larger.
func seqLine(i, width int) string {
	s := strconv.Itoa(i)
	if width > len(s)+1 {
		s += "\t" + strings.Repeat("x", width-len(s)-1)
	}
	return s
}

// sendSeq runs `quiccli send logs` against s with lines 1..seqCount of
// width bytes on its stdin, as `seq 1 200000 | quiccli send logs` does,
// and requires that it succeeds.
func sendSeq(t *testing.T, s *server, width int) {
	t.Helper()
	sender, stdin := startWithStdin(t, quiccliBin, s.client("send", "logs")...)
	var b strings.Builder
	for i := 1; i <= seqCount; i++ {
		b.WriteString(seqLine(i, width))
		b.WriteByte('\n')
		if b.Len() >= 1<<20 || i == seqCount {
			_, err := stdin.Write([]byte(b.String()))
			require.NoError(t, err)
			b.Reset()
		}
	}
	require.NoError(t, stdin.Close())
	require.Equal(t, 0, sender.wait(t), "send reports every line handed over")
	require.Equal(t, fmt.Sprintf("sent %d messages", seqCount), strings.SplitN(sender.stdout.String(), " (", 2)[0])
}

// seqReport is what a listener of the seq lines got and reported.
type seqReport struct {
	received int
	missed   int               // the sum of the gap notices on stderr
	reasons  map[string]string // reason -> last count, as printed
}

// readSeq checks a finished listener's output: the lines are numbers of the
// input in increasing order (no line twice, none out of order), and it
// returns how many there were and how many gap notices reported missed.
func readSeq(t *testing.T, l *process) seqReport {
	t.Helper()
	var r seqReport
	last := 0
	// One check per line, without require: 200,000 of them.
	for _, line := range l.stdout.lines() {
		n, err := strconv.Atoi(strings.SplitN(line, "\t", 2)[0])
		if err != nil || n <= last || n > seqCount {
			t.Fatalf("after line %d, line %.40q: want the next number of the input, in increasing order, none twice", last, line)
		}
		last = n
		r.received++
	}
	r.missed, r.reasons = missedReported(t, l.stderr.String(), "logs")
	return r
}

// TestSeq200000IsDeliveredOrTheMissedReportedUnderEachPolicy is the
// README's `seq 1 200000 | quiccli send logs` with a `quiccli listen -count
// 200000 logs` under each -slow-consumer policy: either every line arrives,
// in order, and listen exits 0, or listen reports exactly how many it
// missed and exits 4: received + missed = 200,000, or, for a listener the
// server disconnected as a slow consumer, the messages the relay routed to
// it before it left (it says that it was disconnected, and with what).
func TestSeq200000IsDeliveredOrTheMissedReportedUnderEachPolicy(t *testing.T) {
	for _, policy := range []string{"drop", "block", "disconnect"} {
		t.Run(policy, func(t *testing.T) {
			s := startServer(t, "-slow-consumer", policy)
			l := s.quiccli(t, "listen", "-count", strconv.Itoa(seqCount), "logs")
			s.waitSubscriptions(t, 1)
			sendSeq(t, s, 0)

			code := l.wait(t)
			r := readSeq(t, l)
			t.Logf("-slow-consumer %s: listen exited %d, received %d, reported %d missed", policy, code, r.received, r.missed)
			if code == 0 {
				require.Equal(t, seqCount, r.received, "exit 0: every line delivered")
				require.Zero(t, r.missed)
				require.Equal(t, strconv.Itoa(seqCount), l.stdout.lines()[seqCount-1])
				return
			}
			require.Equal(t, exitMissed, code, "a listener that missed messages exits 4\n%s", l.stderr)
			require.Positive(t, r.missed, "a non-zero exit says how many were missed")
			// Every copy the relay routed to the listener was either
			// delivered or reported missed.
			s.waitMetric(t, 0, "quicmsg_relay_queued_messages")
			routed := int(metricValue(s.scrape(t), "quicmsg_relay_routed_total"))
			require.Equal(t, routed, r.received+r.missed, "received + missed = what the relay routed to the listener")
			if !strings.Contains(l.stderr.String(), "disconnected this listener as a slow consumer") {
				require.Equal(t, seqCount, r.received+r.missed, "received + missed = %d", seqCount)
				return
			}
			// A listener disconnected as a slow consumer (disconnect, or
			// block once -publish-timeout passed) is told so, with its
			// counts; what was published after it left was routed to no
			// one.
			require.NotEqual(t, "drop", policy, "drop never disconnects")
			require.Contains(t, l.stderr.String(), fmt.Sprintf("%s received, %s missed", plural(r.received), plural(r.missed)))
			require.Equal(t, seqCount, int(metricValue(s.scrape(t), "quicmsg_relay_published_total")))
		})
	}
}

// plural is quiccli's "1 message", "2 messages".
func plural(n int) string {
	if n == 1 {
		return "1 message"
	}
	return fmt.Sprintf("%d messages", n)
}

// TestStoppedListenerIsToldExactlyHowManyMessagesItMissed forces a gap: the
// listener is stopped (SIGSTOP) while 200,000 lines of 64 bytes, far more
// than its QUIC windows, the server's send buffer and a 64-message relay
// queue hold, go by. Resumed, it gets what was queued and gap notices in
// their place, prints them on stderr, and exits 4 once received + missed
// reaches -count.
func TestStoppedListenerIsToldExactlyHowManyMessagesItMissed(t *testing.T) {
	const width = 64
	s := startServer(t, "-slow-consumer", "drop", "-subscriber-queue", "64")
	l := s.quiccli(t, "listen", "-count", strconv.Itoa(seqCount), "logs")
	s.waitSubscriptions(t, 1)
	l.stop(t)
	sendSeq(t, s, width)
	require.Positive(t, metricValue(s.scrape(t), "quicmsg_relay_dropped_total"), "the stopped listener's queue overflowed")
	l.signal(t, syscall.SIGCONT)

	code := l.wait(t)
	r := readSeq(t, l)
	t.Logf("stopped listener: received %d, reported %d missed", r.received, r.missed)
	require.Equal(t, exitMissed, code, "messages were missed: exit 4\n%s", l.stderr)
	require.Contains(t, r.reasons, "slow consumer", "the gap is reported on stderr with its reason")
	require.Equal(t, seqCount, r.received+r.missed, "received + missed = %d", seqCount)
	require.Less(t, r.received, seqCount)
	for _, line := range l.stdout.lines() {
		if len(line) != width {
			t.Fatalf("line %.40q is %d bytes, not %d: lines arrive whole", line, len(line), width)
		}
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSendReachesEveryListenerOfTheChannelThroughTheRelay(t *testing.T) {
	s := startServer(t)
	text := s.quiccli(t, "listen", "-count", "3", "chat")
	js := s.quiccli(t, "-json", "listen", "-count", "3", "chat")
	news := s.quiccli(t, "listen", "news")
	s.waitSubscriptions(t, 3)

	out := requireQuiccli(t, s.client("send", "chat", "a", "b", "c")...)
	require.Equal(t, fmt.Sprintf("sent 3 messages (3 bytes) on \"chat\" to %s\n", s.addr), out)

	require.Equal(t, 0, text.wait(t), "listen -count 3 ends by itself after 3 messages")
	require.Equal(t, "a\nb\nc\n", text.stdout.String(), "in order, one per line")

	require.Equal(t, 0, js.wait(t))
	type listenJSON struct {
		Channel  string `json:"channel"`
		Size     int    `json:"size"`
		Encoding string `json:"encoding"`
		Payload  string `json:"payload"`
	}
	lines := js.stdout.lines()
	require.Len(t, lines, 3)
	for i, line := range lines {
		var m listenJSON
		require.NoError(t, json.Unmarshal([]byte(line), &m), "line %q", line)
		require.Equal(t, listenJSON{Channel: "chat", Size: 1, Encoding: "utf-8", Payload: string(rune('a' + i))}, m)
	}

	// Each message went to the two listeners of "chat": not back to the
	// sender, not to the listener of "news".
	s.waitMetric(t, 6, "quicmsg_relay_delivered_total")
	f := s.scrape(t)
	require.Equal(t, 3.0, metricValue(f, "quicmsg_relay_published_total"))
	require.Equal(t, 6.0, metricValue(f, "quicmsg_relay_routed_total"))
	news.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, news.wait(t), "SIGTERM is listen's normal end")
	require.Empty(t, news.stdout.String())
}

// firehoseLine is message i of TestSlowListenerDoesNotSlowTheOtherListeners:
// its index, then padding up to size bytes.
func firehoseLine(i, size int) string {
	prefix := fmt.Sprintf("%06d:", i)
	return prefix + strings.Repeat("x", size-len(prefix))
}

// firehoseIndex returns the index of a line made by firehoseLine.
func firehoseIndex(t *testing.T, line string) int {
	t.Helper()
	prefix, _, ok := strings.Cut(line, ":")
	require.True(t, ok, "unexpected line %.40q", line)
	i, err := strconv.Atoi(prefix)
	require.NoError(t, err)
	return i
}

func TestSlowListenerDoesNotSlowTheOtherListeners(t *testing.T) {
	const (
		queue = 32        // -subscriber-queue
		batch = queue / 2 // messages sent before waiting for the fast listener
		size  = 16 << 10  // bytes per message
		// Far more than a stopped listener's QUIC windows, its channel's
		// send buffer on the server (64 KiB) and its relay queue hold.
		maxMessages = 1024
	)
	s := startServer(t, "-slow-consumer", "drop", "-subscriber-queue", strconv.Itoa(queue))
	fast := s.quiccli(t, "listen", "firehose")
	slow := s.quiccli(t, "listen", "firehose")
	s.waitSubscriptions(t, 2)
	// A stopped process reads nothing: the server's messages for it pile
	// up in its QUIC windows, then the server's send buffer, then its
	// relay queue, which overflows.
	slow.stop(t)

	sender, stdin := startWithStdin(t, quiccliBin, s.client("send", "firehose")...)
	// The sender writes a batch, then waits until the fast listener has
	// printed all of it: the fast listener's queue never holds more than a
	// batch, so it must get every message, and it could not get them if
	// the stopped listener held up the relay.
	sent, batchesAfterDrops := 0, 0
	for sent < maxMessages && batchesAfterDrops < 2 {
		var b strings.Builder
		for i := sent; i < sent+batch; i++ {
			b.WriteString(firehoseLine(i, size))
			b.WriteByte('\n')
		}
		_, err := io.WriteString(stdin, b.String())
		require.NoError(t, err)
		sent += batch
		fast.waitLines(t, sent)
		if metricValue(s.scrape(t), "quicmsg_relay_dropped_total") > 0 {
			batchesAfterDrops++
		}
	}
	require.NoError(t, stdin.Close())
	require.Equal(t, 0, sender.wait(t))
	require.Contains(t, sender.stdout.String(), fmt.Sprintf("sent %d messages", sent))

	f := s.scrape(t)
	require.Greater(t, metricValue(f, "quicmsg_relay_dropped_total"), 0.0,
		"%d messages of %d bytes did not overflow the stopped listener's queue", sent, size)
	require.GreaterOrEqual(t, metricValue(f, "quicmsg_slow_consumer_events_total"), 1.0)
	require.Equal(t, 0.0, metricValue(f, "quicmsg_slow_consumer_disconnects_total"), "-slow-consumer drop keeps the listener connected")
	require.Contains(t, s.stderr.String(), "slow consumer: dropping messages for subscriber")

	// Resumed, the slow listener gets what was queued for it and every
	// later message, in order, with gaps where the relay dropped.
	slow.signal(t, syscall.SIGCONT)
	// Once its queue has drained, the next message is queued for it.
	s.waitMetric(t, 0, "quicmsg_relay_queued_messages")
	requireQuiccli(t, s.client("send", "firehose", "after-resume")...)
	fast.waitLines(t, sent+1)
	slow.waitOutput(t, "the message sent after SIGCONT", func(stdout, _ string) bool {
		return stdout == "after-resume\n" || strings.HasSuffix(stdout, "\nafter-resume\n")
	})

	fastLines := fast.stdout.lines()
	require.Len(t, fastLines, sent+1)
	for i, line := range fastLines[:sent] {
		require.Equal(t, i, firehoseIndex(t, line), "the fast listener got every message, in order")
		require.Len(t, line, size)
	}
	require.Equal(t, "after-resume", fastLines[sent])

	slowLines := slow.stdout.lines()
	got := slowLines[:len(slowLines)-1]
	require.Less(t, len(got), sent, "the relay dropped messages for the stopped listener")
	last := -1
	for _, line := range got {
		i := firehoseIndex(t, line)
		require.Greater(t, i, last, "in order")
		last = i
	}

	t.Logf("sent %d messages of %d bytes: the fast listener got all, the stopped one %d (the relay dropped %v)",
		sent, size, len(got), metricValue(s.scrape(t), "quicmsg_relay_dropped_total"))

	// Every copy the relay routed was delivered or dropped, none failed.
	waitFor(t, "the relay's counters to add up", func() bool {
		f := s.scrape(t)
		return metricValue(f, "quicmsg_relay_queued_messages") == 0 &&
			metricValue(f, "quicmsg_relay_routed_total") ==
				metricValue(f, "quicmsg_relay_delivered_total")+metricValue(f, "quicmsg_relay_dropped_total")
	})
	require.Equal(t, 0.0, metricValue(s.scrape(t), "quicmsg_relay_failed_total"))

	fast.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, fast.wait(t))
	// The stopped listener was told, in order, how many it missed: with
	// what it printed, every message sent; it exits 4 at its end.
	slow.signal(t, syscall.SIGTERM)
	require.Equal(t, exitMissed, slow.wait(t))
	missed, reasons := missedReported(t, slow.stderr.String(), "firehose")
	require.Contains(t, reasons, "slow consumer")
	require.Equal(t, sent+1, len(slowLines)+missed, "printed + reported missed = sent")
	require.Equal(t, float64(missed), metricValue(s.scrape(t), "quicmsg_relay_dropped_total"))
}

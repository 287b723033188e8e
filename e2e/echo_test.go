package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPingEchoGetsEveryEchoFromAnEchoServer(t *testing.T) {
	s := startServer(t, "-mode", "echo")
	require.Contains(t, s.stdout.String(), "(quicmsg/1, echo mode)")

	out := requireQuiccli(t, s.client("ping", "-echo", "-count", "3", "-interval", "20ms")...)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 8, out) // the header, 3 replies, a blank line, the statistics' title, counts and times
	require.Equal(t, fmt.Sprintf("PING %s (quicmsg/1) on channel \"ping\": 64 bytes", s.addr), lines[0])
	for seq := range 3 {
		require.Regexp(t, fmt.Sprintf(`^64 bytes from %s: seq=%d time=[0-9.]+ ms$`, regexp.QuoteMeta(s.addr), seq), lines[1+seq])
	}
	requirePingStatistics(t, s.addr, lines[4:])
}

// requirePingStatistics checks the lines of ping's statistics after 3
// pings all answered.
func requirePingStatistics(t *testing.T, addr string, lines []string) {
	t.Helper()
	require.Equal(t, "", lines[0])
	require.Equal(t, fmt.Sprintf("--- %s ping statistics ---", addr), lines[1])
	require.Regexp(t, `^3 pings sent, 3 replies, 0% loss, time \d+ms$`, lines[len(lines)-2])
	m := regexp.MustCompile(`^rtt min/avg/p50/p99/max = ([0-9.]+)/([0-9.]+)/([0-9.]+)/([0-9.]+)/([0-9.]+) ms$`).FindStringSubmatch(lines[len(lines)-1])
	require.NotNil(t, m, "rtt line %q", lines[len(lines)-1])
	var rtt [5]float64 // min, avg, p50, p99, max
	for i := range rtt {
		v, err := strconv.ParseFloat(m[1+i], 64)
		require.NoError(t, err)
		rtt[i] = v
	}
	minRTT, avg, p50, p99, maxRTT := rtt[0], rtt[1], rtt[2], rtt[3], rtt[4]
	require.Greater(t, minRTT, 0.0)
	require.True(t, minRTT <= p50 && p50 <= p99 && p99 <= maxRTT, "min %v p50 %v p99 %v max %v", minRTT, p50, p99, maxRTT)
	require.True(t, minRTT <= avg && avg <= maxRTT, "min %v avg %v max %v", minRTT, avg, maxRTT)
}

func TestPingEchoJSONGivesEachReplyAndASummary(t *testing.T) {
	s := startServer(t, "-mode", "echo")
	out := requireQuiccli(t, s.client("-json", "ping", "-echo", "-count", "3", "-interval", "20ms", "-size", "100")...)
	type event struct {
		Type        string  `json:"type"`
		Seq         int     `json:"seq"`
		Bytes       int     `json:"bytes"`
		RTTus       float64 `json:"rtt_us"`
		Addr        string  `json:"addr"`
		Sent        int     `json:"sent"`
		Received    int     `json:"received"`
		LossPercent float64 `json:"loss_percent"`
		MinUs       float64 `json:"min_us"`
		P50Us       float64 `json:"p50_us"`
		P99Us       float64 `json:"p99_us"`
		MaxUs       float64 `json:"max_us"`
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 4, out)
	for i, line := range lines {
		var e event
		require.NoError(t, json.Unmarshal([]byte(line), &e), "line %q", line)
		if i < 3 {
			require.Equal(t, "reply", e.Type)
			require.Equal(t, i, e.Seq)
			require.Equal(t, 100, e.Bytes)
			require.Greater(t, e.RTTus, 0.0)
			continue
		}
		require.Equal(t, "summary", e.Type)
		require.Equal(t, s.addr, e.Addr)
		require.Equal(t, 3, e.Sent)
		require.Equal(t, 3, e.Received)
		require.Equal(t, 0.0, e.LossPercent)
		require.True(t, e.MinUs <= e.P50Us && e.P50Us <= e.P99Us && e.P99Us <= e.MaxUs, "%+v", e)
	}
}

func TestChatAgainstAnEchoServerPrintsEachLineBack(t *testing.T) {
	s := startServer(t, "-mode", "echo")
	chat, stdin := startWithStdin(t, quiccliBin, s.client("chat", "-name", "ann", "lobby")...)
	_, err := stdin.Write([]byte("hello\n"))
	require.NoError(t, err)
	chat.waitLines(t, 1)
	_, err = stdin.Write([]byte("second line\n"))
	require.NoError(t, err)
	chat.waitLines(t, 2)
	require.NoError(t, stdin.Close())
	require.Equal(t, 0, chat.wait(t), "the end of input ends the chat")
	require.Equal(t, "ann: hello\nann: second line\n", chat.stdout.String())

	// A chat interrupted while it waits for input ends normally too.
	idle, idleStdin := startWithStdin(t, quiccliBin, s.client("chat", "lobby")...)
	defer idleStdin.Close()
	_, err = idleStdin.Write([]byte("connected?\n"))
	require.NoError(t, err)
	idle.waitLines(t, 1)
	idle.signal(t, syscall.SIGINT)
	require.Equal(t, 0, idle.wait(t))
	require.Equal(t, "connected?\n", idle.stdout.String())
}

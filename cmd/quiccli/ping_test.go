package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPingEchoPrintsRoundTripsAndSummaryLikePing8(t *testing.T) {
	ts := startServer(t, serverOptions{})
	got := runCLI(t, nil, ts.args("ping", "-echo", "-count", "3", "-interval", "10ms")...)
	require.NoError(t, got.err, got.stderr)

	lines := got.lines()
	require.Len(t, lines, 8, got.stdout)
	require.Equal(t, `PING `+ts.addr+` (quicmsg/1) on channel "ping": 64 bytes`, lines[0])
	reply := regexp.MustCompile(`^64 bytes from ` + regexp.QuoteMeta(ts.addr) + `: seq=(\d+) time=(\d+\.\d{3}) ms$`)
	for i := range 3 {
		m := reply.FindStringSubmatch(lines[1+i])
		require.NotNil(t, m, lines[1+i])
		require.Equal(t, strconv.Itoa(i), m[1])
	}
	requireSummary(t, ts.addr, lines[4:])
}

// requireSummary checks ping's statistics after 3 pings all answered.
func requireSummary(t *testing.T, addr string, lines []string) {
	t.Helper()
	require.Equal(t, "", lines[0])
	require.Equal(t, "--- "+addr+" ping statistics ---", lines[1])
	require.Regexp(t, `^3 pings sent, 3 replies, 0% loss, time \d+ms$`, lines[2])
	m := regexp.MustCompile(`^rtt min/avg/p50/p99/max = ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms$`).FindStringSubmatch(lines[3])
	require.NotNil(t, m, lines[3])
	var v [5]float64
	for i := range v {
		v[i], _ = strconv.ParseFloat(m[1+i], 64)
	}
	require.Positive(t, v[0])
	require.True(t, v[0] <= v[1] && v[1] <= v[4], "min <= avg <= max: %v", v)
	require.True(t, v[0] <= v[2] && v[2] <= v[3] && v[3] <= v[4], "min <= p50 <= p99 <= max: %v", v)
}

func TestPingEchoJSONGivesOneObjectPerReplyAndASummary(t *testing.T) {
	ts := startServer(t, serverOptions{})
	got := runCLI(t, nil, ts.args("-json", "ping", "-echo", "-count", "2", "-interval", "0", "-size", "100")...)
	require.NoError(t, got.err, got.stderr)
	lines := got.lines()
	require.Len(t, lines, 3)
	for i, line := range lines[:2] {
		var ev pingEvent
		require.NoError(t, json.Unmarshal([]byte(line), &ev))
		require.Equal(t, pingEvent{Type: "reply", Seq: i, Bytes: 100, RTTus: ev.RTTus}, ev)
		require.Positive(t, ev.RTTus)
	}
	var s pingSummary
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &s))
	require.Equal(t, "summary", s.Type)
	require.Equal(t, 2, s.Sent)
	require.Equal(t, 2, s.Received)
	require.Zero(t, s.LossPercent)
	require.True(t, s.MinUs <= s.P50Us && s.P50Us <= s.P99Us && s.P99Us <= s.MaxUs, "%+v", s)
}

// Against a server that predates MODE, ping -echo finds out by waiting.
func TestPingEchoAgainstAnOlderRelayExplainsThatItNeedsEchoMode(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true, mode: modeNone})
	got := runCLI(t, nil, ts.args("-timeout", "300ms", "ping", "-echo", "-count", "3")...)
	require.Error(t, got.err)
	require.Equal(t, exitError, got.code)
	require.Equal(t, "no echo from "+ts.addr+" within 300ms: ping needs a server in echo mode (quicsrv -mode echo); a relay server sends nothing back to the sender", got.err.Error())
}

// The PING/PONG of the control stream works against any server: relay,
// echo, one of an application's own mode, or one that announces none.
func TestPingMeasuresRoundTripsAgainstAnyServer(t *testing.T) {
	for name, o := range map[string]serverOptions{
		"relay":         {relay: true},
		"echo":          {},
		"app mode":      {mode: "orders-v2"},
		"mode not said": {mode: modeNone},
	} {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, o)
			got := runCLI(t, nil, ts.args("ping", "-count", "3", "-interval", "10ms")...)
			require.NoError(t, got.err, got.stderr)
			lines := got.lines()
			require.Len(t, lines, 8, got.stdout)
			mode := map[string]string{"relay": "relay mode", "echo": "echo mode", "app mode": "orders-v2 mode", "mode not said": "mode not announced"}[name]
			require.Equal(t, "PING "+ts.addr+" (quicmsg/1, "+mode+"): PING/PONG on the control stream", lines[0])
			reply := regexp.MustCompile(`^PONG from ` + regexp.QuoteMeta(ts.addr) + `: seq=(\d+) time=(\d+\.\d{3}) ms$`)
			for i := range 3 {
				m := reply.FindStringSubmatch(lines[1+i])
				require.NotNil(t, m, lines[1+i])
				require.Equal(t, strconv.Itoa(i), m[1])
			}
			requireSummary(t, ts.addr, lines[4:])
		})
	}
}

func TestPingJSONAgainstARelay(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	got := runCLI(t, nil, ts.args("-json", "ping", "-count", "2", "-interval", "0")...)
	require.NoError(t, got.err, got.stderr)
	lines := got.lines()
	require.Len(t, lines, 3)
	for i, line := range lines[:2] {
		var ev pingEvent
		require.NoError(t, json.Unmarshal([]byte(line), &ev))
		require.Equal(t, pingEvent{Type: "reply", Seq: i, RTTus: ev.RTTus}, ev)
		require.Positive(t, ev.RTTus)
	}
	var s pingSummary
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &s))
	require.Equal(t, 2, s.Received)
}

// A command that needs echo mode fails at once, in one line that names the
// server's mode and what to use instead, against a server that announces
// another mode: the -timeout of a minute is never waited out.
func TestCommandsThatNeedEchoFailAtOnceAgainstOtherModes(t *testing.T) {
	relay := startServer(t, serverOptions{relay: true})
	app := startServer(t, serverOptions{mode: "orders-v2"})
	for _, c := range []struct {
		ts   *testServer
		args []string
		want string
	}{
		{relay, []string{"ping", "-echo"}, "ping -echo needs a server in echo mode (quicsrv -mode echo), but the server at " + relay.addr + " is in relay mode: use quiccli ping without -echo, which works against any server"},
		{relay, []string{"bench", "-mode", "echo", "-duration", "1s"}, "bench -mode echo needs a server in echo mode (quicsrv -mode echo), but the server at " + relay.addr + " is in relay mode: use -mode oneway or -mode request"},
		{app, []string{"bench", "-mode", "echo", "-duration", "1s"}, "bench -mode echo needs a server in echo mode (quicsrv -mode echo), but the server at " + app.addr + " is in orders-v2 mode: use -mode oneway or -mode request"},
		{app, []string{"bench", "-duration", "1s"}, "bench needs a quicsrv in relay or echo mode, but the server at " + app.addr + " is in orders-v2 mode"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		args := append([]string{"-addr", c.ts.addr, "-ca", c.ts.caFile, "-timeout", "1m"}, c.args...)
		got := runCLIContext(ctx, nil, args...)
		expired := ctx.Err() != nil
		cancel()
		require.False(t, expired, "%v waited for an echo", c.args)
		require.Error(t, got.err, c.args)
		require.Equal(t, exitError, got.code, c.args)
		require.Equal(t, c.want, got.err.Error())
		require.NotContains(t, got.stderr, "\n\n", "one line")
		var sm *serverModeError
		require.ErrorAs(t, got.err, &sm)
	}
}

func TestPingEchoFlagsNeedEcho(t *testing.T) {
	for _, args := range [][]string{{"ping", "-size", "100"}, {"ping", "-channel", "x"}} {
		got := runCLI(t, nil, args...)
		require.Equal(t, exitUsage, got.code, args)
		require.ErrorContains(t, got.err, "-size and -channel apply to ping -echo only")
	}
}

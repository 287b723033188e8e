package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPingPrintsRoundTripsAndSummaryLikePing8(t *testing.T) {
	ts := startServer(t, serverOptions{})
	got := runCLI(t, nil, ts.args("ping", "-count", "3", "-interval", "10ms")...)
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
	require.Equal(t, "", lines[4])
	require.Equal(t, "--- "+ts.addr+" ping statistics ---", lines[5])
	require.Regexp(t, `^3 pings sent, 3 replies, 0% loss, time \d+ms$`, lines[6])
	m := regexp.MustCompile(`^rtt min/avg/p50/p99/max = ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms$`).FindStringSubmatch(lines[7])
	require.NotNil(t, m, lines[7])
	var v [5]float64
	for i := range v {
		v[i], _ = strconv.ParseFloat(m[1+i], 64)
	}
	require.Positive(t, v[0])
	require.True(t, v[0] <= v[1] && v[1] <= v[4], "min <= avg <= max: %v", v)
	require.True(t, v[0] <= v[2] && v[2] <= v[3] && v[3] <= v[4], "min <= p50 <= p99 <= max: %v", v)
}

func TestPingJSONGivesOneObjectPerReplyAndASummary(t *testing.T) {
	ts := startServer(t, serverOptions{})
	got := runCLI(t, nil, ts.args("-json", "ping", "-count", "2", "-interval", "0", "-size", "100")...)
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

func TestPingAgainstARelayExplainsThatItNeedsEchoMode(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	got := runCLI(t, nil, ts.args("-timeout", "300ms", "ping", "-count", "3")...)
	require.Error(t, got.err)
	require.Equal(t, exitError, got.code)
	require.Equal(t, "no echo from "+ts.addr+" within 300ms: ping needs a server in echo mode (quicsrv -mode echo); a relay server sends nothing back to the sender", got.err.Error())
}

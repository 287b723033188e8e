package main

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// getJSON fetches url, requires status code want and decodes the body into v.
func getJSON(t *testing.T, url string, want int, v any) {
	t.Helper()
	resp, err := httpClient.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, want, resp.StatusCode, string(body))
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.NoError(t, json.Unmarshal(body, v), string(body))
}

func TestStatusEndpointsDescribeServerSessionsAndSubscriptions(t *testing.T) {
	ts := startServer(t, "-metrics", "127.0.0.1:0")
	sub := dial(t, ts.addr, ts.clientTLS(t))
	pub := dial(t, ts.addr, ts.clientTLS(t))
	in := openChannel(t, sub, "orders.>")
	ts.waitLog(t, `channel opened.*channel=orders\.>`)
	out := openChannel(t, pub, "orders.new")
	send(t, out, "o1")
	require.Equal(t, "o1", receive(t, in))

	var st serverStatusReply
	getJSON(t, ts.metricsURL+"/status", http.StatusOK, &st)
	require.Equal(t, version(), st.Server.Version)
	require.Equal(t, commitLabel(), st.Server.Commit)
	require.Equal(t, "relay", st.Server.Mode)
	require.Equal(t, ts.addr, st.Server.Listen)
	require.Positive(t, st.Server.UptimeSeconds)
	require.Equal(t, 2, st.Sessions.Active)
	require.EqualValues(t, 2, st.Sessions.Accepted)
	require.NotNil(t, st.Relay)
	require.EqualValues(t, 1, st.Relay.Published)
	require.EqualValues(t, 1, st.Relay.Delivered)
	require.Equal(t, "drop", st.Relay.SlowConsumer)

	var ss page[sessionStatus]
	getJSON(t, ts.metricsURL+"/status/sessions", http.StatusOK, &ss)
	require.Equal(t, 2, ss.Total)
	require.Len(t, ss.Items, 2)
	byID := map[string]sessionStatus{}
	for _, s := range ss.Items {
		byID[s.ID] = s
		require.Regexp(t, `^127\.0\.0\.1:\d+$`, s.Remote)
		require.False(t, s.Detached)
		require.Positive(t, s.DurationSeconds)
	}
	subID, pubID := sub.SessionID().String(), pub.SessionID().String()
	require.Contains(t, byID, subID)
	require.Contains(t, byID, pubID)
	require.Equal(t, []string{"orders.>"}, byID[subID].ChannelNames)
	require.Equal(t, 1, byID[subID].Channels)
	require.EqualValues(t, 1, byID[subID].MessagesOut)
	require.EqualValues(t, 1, byID[pubID].MessagesIn)
	require.Zero(t, byID[pubID].Pending)

	var first page[sessionStatus]
	getJSON(t, ts.metricsURL+"/status/sessions?limit=1&offset=1", http.StatusOK, &first)
	require.Equal(t, 2, first.Total)
	require.Len(t, first.Items, 1)
	require.Equal(t, ss.Items[1].ID, first.Items[0].ID)

	var subs subscriptionsReply
	getJSON(t, ts.metricsURL+"/status/subscriptions", http.StatusOK, &subs)
	require.Equal(t, "relay", subs.Mode)
	require.Equal(t, 2, subs.Subscriptions.Total)
	require.Equal(t, []subscriptionStatus{{Subject: "orders.>", Subscribers: 1}, {Subject: "orders.new", Subscribers: 1}}, subs.Subscriptions.Items)
	require.Nil(t, subs.Cluster, "no -cluster")
}

func TestStatusRefusesAnUnboundedPage(t *testing.T) {
	ts := startServer(t, "-metrics", "127.0.0.1:0", "-mode", "echo")
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "offset=-1"} {
		var e map[string]string
		getJSON(t, ts.metricsURL+"/status/sessions?"+q, http.StatusBadRequest, &e)
		require.Regexp(t, `^(limit|offset) "`, e["error"], q)
	}
	var subs subscriptionsReply
	getJSON(t, ts.metricsURL+"/status/subscriptions", http.StatusOK, &subs)
	require.Equal(t, "echo", subs.Mode)
	require.Zero(t, subs.Subscriptions.Total)
	require.NotNil(t, subs.Subscriptions.Items)
}

func TestPprofIsOffByDefaultAndServedWithTheFlag(t *testing.T) {
	get := func(url string) int {
		resp, err := httpClient.Get(url)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	off := startServer(t, "-metrics", "127.0.0.1:0", "-mode", "echo")
	require.Equal(t, http.StatusNotFound, get(off.metricsURL+"/debug/pprof/"))
	require.Equal(t, http.StatusNotFound, get(off.metricsURL+"/debug/pprof/goroutine"))

	on := startServer(t, "-metrics", "127.0.0.1:0", "-mode", "echo", "-pprof")
	require.Equal(t, http.StatusOK, get(on.metricsURL+"/debug/pprof/"))
	require.Equal(t, http.StatusOK, get(on.metricsURL+"/debug/pprof/goroutine?debug=1"))
	require.Equal(t, http.StatusOK, get(on.metricsURL+"/metrics"), "the metrics are still served")
}

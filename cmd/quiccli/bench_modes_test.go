package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

func TestSeqSetCountsRepeatsWithinAndAcrossReceivers(t *testing.T) {
	a, b, c := &seqSet{}, &seqSet{}, &seqSet{}
	for _, n := range []uint64{0, 1, 2, 200, 1000} {
		a.add(n)
	}
	for _, n := range []uint64{3, 4, 5, 70000} {
		b.add(n)
	}
	dups, unchecked := duplicates([]*seqSet{a, b})
	require.Zero(t, dups, "disjoint sets: every message once")
	require.Zero(t, unchecked)

	a.add(200)   // again at the same receiver
	c.add(4)     // also delivered to b
	c.add(70000) // also delivered to b
	c.add(seqSetMax)
	dups, unchecked = duplicates([]*seqSet{a, b, c})
	require.Equal(t, uint64(3), dups)
	require.Equal(t, uint64(1), unchecked, "numbers past the bound are not checked")
	dups, _ = duplicates(nil)
	require.Zero(t, dups)
}

func TestBenchGroupFlagsAreChecked(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-group", "a.b"}, "-group \"a.b\": want 1 to 255 visible ASCII characters without '.', '*' or '>'"},
		{[]string{"-group", "w", "-size", "16"}, "-group needs -size of at least 17 bytes (kind, send time and sequence number)"},
		{[]string{"-subscribers", "65"}, "-subscribers must be between 1 and 64"},
		{[]string{"-mode", "echo", "-subscribers", "2"}, "-subscribers, -group and -subscriber-addrs go with -mode oneway"},
		{[]string{"-mode", "echo", "-subscriber-addrs", "127.0.0.1:1"}, "-subscribers, -group and -subscriber-addrs go with -mode oneway"},
		{[]string{"-inflight", "4"}, "-inflight goes with -mode request"},
		{[]string{"-mode", "request", "-inflight", "0"}, "-inflight must be between 1 and 1024"},
	} {
		got := runCLI(t, nil, append([]string{"bench"}, c.args...)...)
		require.Equal(t, exitUsage, got.code, "%v", c.args)
		require.Equal(t, c.want, got.err.Error(), "%v", c.args)
	}
}

func TestBenchRequestSyncWaitsForTheRelayToKnowTheResponder(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	g := newGlobals(nil, io.Discard, io.Discard)
	g.addr, g.caFile = ts.addr, ts.caFile
	b := &bench{g: g, o: benchOptions{conns: 1, size: 64, inflight: 1, mode: modeRequest}, epoch: time.Now()}
	defer b.close()
	conf, err := g.tlsConfig()
	require.NoError(t, err)
	require.NoError(t, b.dialAll(t.Context(), conf, 2))
	b.subject = "late.responder"
	// The responder subscribes only after the first test requests were
	// answered "no responders": the sync goes on asking.
	_, err = b.conns[0].Request(t.Context(), b.subject, &transport.Message{Data: []byte{kindSync}})
	require.ErrorIs(t, err, transport.ErrNoResponders)
	late := time.AfterFunc(3*syncEvery, func() {
		ch, err := b.conns[1].OpenChannel(context.Background(), b.subject)
		if err == nil {
			b.readers.Go(func() { b.respond(ch) })
		}
	})
	defer late.Stop()
	mode, err := b.syncRequests(t.Context())
	require.NoError(t, err)
	require.Equal(t, serverRelays, mode)
}

func TestBenchSubscriberAddrsRefusesAnAddressWithoutPortByName(t *testing.T) {
	for _, bad := range []string{"127.0.0.1", "127.0.0.1:4433,", ":4433"} {
		got := runCLI(t, nil, "bench", "-subscriber-addrs", bad)
		require.Equal(t, exitUsage, got.code, bad)
		require.Contains(t, got.err.Error(), "-subscriber-addrs", bad)
		require.Contains(t, got.err.Error(), "is not HOST:PORT", bad)
	}
}

func TestBenchSubscriberAddrsDialsTheReceivingConnectionsThere(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	r := benchJSON(t, ts, "-subscribers", "2", "-subscriber-addrs", ts.addr+","+ts.addr, "-count", "200", "-duration", "5s")
	require.Equal(t, "relay", r.ServerMode)
	require.EqualValues(t, 200, r.Sent)
	require.Zero(t, r.Errors, r.ErrorSamples)
	require.EqualValues(t, 400, r.Delivered, "200 messages, each to 2 subscribers")
}

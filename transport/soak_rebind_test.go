//go:build soak

package transport

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

// TestSoakNATRebindingQuietClient measures the limit of following a NAT
// rebinding: when the client is quiet at the moment its address changes and
// only the server has something to send, the server's packets go to the old
// address until the client's keep-alive (KeepAlivePeriod here, 10 s by
// default) tells it the new one. Each round waits until the client is quiet,
// rebinds, sends one message from the server and times its arrival.
func TestSoakNATRebindingQuietClient(t *testing.T) {
	const (
		rounds    = 5
		keepAlive = 500 * time.Millisecond
	)
	client, server, ln, proxy := natPair(t, &Config{KeepAlivePeriod: keepAlive})
	ctx := testCtx(t)
	send, recv := channelPair(ctx, t, server, client, "down")
	var took []time.Duration
	for i := range rounds {
		waitClientQuiet(t, proxy)
		_, err := proxy.Rebind()
		require.NoError(t, err)
		at := time.Now()
		require.NoError(t, send.Send(ctx, testenv.Checksummed("down", i)))
		msg, err := recv.Receive(ctx)
		require.NoError(t, err)
		took = append(took, time.Since(at))
		require.NoError(t, testenv.VerifyChecksummed(msg, i))
	}
	require.NoError(t, client.Context().Err())
	require.NoError(t, server.Context().Err())
	requireNoNewConn(t, ln)
	slices.Sort(took)
	testenv.Figure(t, "keep-alive period / rounds", "%s / %d", keepAlive, rounds)
	testenv.Figure(t, "quiet client: rebinding to first server message delivered, min / median / max", "%s / %s / %s",
		took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
}

package transport

import (
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// Shutdown writes everything Send accepted before it ends the channel: the
// peer reads every message, then io.EOF, and Send fails with ErrClosed.
func TestChannelShutdownDeliversEverything(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "orders")
	require.NoError(t, err)
	sch, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	const n = 200
	for i := range n {
		require.NoError(t, ch.Send(ctx, fmt.Appendf(nil, "order %d", i)))
	}
	require.NoError(t, ch.Shutdown(ctx))
	require.ErrorIs(t, ch.Send(ctx, []byte("late")), ErrClosed)
	for i := range n {
		msg, err := sch.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("order %d", i), string(msg))
	}
	_, err = sch.Receive(ctx)
	require.ErrorIs(t, err, io.EOF)
	require.NoError(t, ch.Close(), "Close after Shutdown returns its result")
}

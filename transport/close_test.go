package transport

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A graceful Close that the peer cuts short (it closes with an error
// instead of confirming that it read everything) reports the written
// messages in doubt, in its error and in Channel.InDoubt.
func TestCloseCutShortByPeerReportsMessagesInDoubt(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "jobs")
	require.NoError(t, err)
	for range 5 {
		require.NoError(t, ch.Send(ctx, []byte("job")))
	}
	require.NoError(t, ch.Flush(ctx))
	_, err = server.AcceptChannel(ctx) // accepted, never read
	require.NoError(t, err)

	closed := make(chan error, 1)
	go func() { closed <- client.Close() }()
	<-server.GoAwayReceived() // the client waits for the server's confirmation
	require.NoError(t, server.CloseWithError(CodeGoingAway, "server closed"))
	err = <-closed
	require.ErrorIs(t, err, ErrInDoubt)
	require.ErrorIs(t, err, CodeGoingAway, "the error says why")
	require.Equal(t, uint64(5), ch.InDoubt())
	require.Empty(t, ch.Unsent())
}

// The same when the peer does not confirm within the close timeout (here it
// never reads the channel).
func TestCloseTimeoutReportsMessagesInDoubt(t *testing.T) {
	client, server, _ := pair(t, nil, &Config{CloseTimeout: 300 * time.Millisecond})
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "jobs")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("job")))
	require.NoError(t, ch.Flush(ctx))
	_, err = server.AcceptChannel(ctx) // never read: the server cannot confirm
	require.NoError(t, err)
	err = client.Close()
	require.ErrorIs(t, err, ErrInDoubt)
	require.Equal(t, uint64(1), ch.InDoubt())
	require.False(t, errors.Is(err, ErrUnflushed), "everything was written")
}

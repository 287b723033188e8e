package transport

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Ended says who ended a channel's send direction first: this side's
// close, a reset here, the peer stopping reading it (as it closes the
// channel), or the connection's end; nil while the channel is open.
func TestChannelEndedSaysWhoEndedTheChannel(t *testing.T) {
	ctx := testCtx(t)
	opened := func(t *testing.T) (client, server *Conn, ch, sch *Channel) {
		client, server, _ = pair(t, nil, nil)
		ch, err := client.OpenChannel(ctx, "jobs")
		require.NoError(t, err)
		require.NoError(t, ch.Send(ctx, []byte("job")))
		sch, err = server.AcceptChannel(ctx)
		require.NoError(t, err)
		require.NoError(t, sch.Ended(), "open")
		return client, server, ch, sch
	}
	done := func(t *testing.T, sch *Channel) {
		select {
		case <-sch.Done():
		case <-ctx.Done():
			t.Fatal("the channel's send direction never ended")
		}
	}
	t.Run("closed here", func(t *testing.T) {
		_, _, _, sch := opened(t)
		require.NoError(t, sch.Close())
		require.ErrorIs(t, sch.Ended(), ErrClosed)
	})
	t.Run("reset here", func(t *testing.T) {
		_, _, _, sch := opened(t)
		sch.Reset(CodeInvalidSubject)
		var ce *ChannelError
		require.ErrorAs(t, sch.Ended(), &ce)
		require.False(t, ce.Remote)
	})
	t.Run("the peer closed it", func(t *testing.T) {
		_, _, ch, sch := opened(t)
		require.NoError(t, ch.Close())
		done(t, sch)
		var ce *ChannelError
		require.ErrorAs(t, sch.Ended(), &ce)
		require.True(t, ce.Remote)
		require.Equal(t, CodeChannelClosed, ce.Code)
	})
	t.Run("the connection ended", func(t *testing.T) {
		client, _, _, sch := opened(t)
		require.NoError(t, client.CloseWithError(CodeInternalError, "gone"))
		done(t, sch)
		var ce *ConnError
		require.ErrorAs(t, sch.Ended(), &ce)
		require.True(t, ce.Remote)
	})
}

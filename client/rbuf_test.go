package client

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

// The reconnect buffer admits what fits, or one message into an empty
// buffer; TrySend-style reservations fail at once when full, Send-style
// ones wait for space; put-back never refuses, even over the bound.
func TestReconnectBufferBoundAndOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		b := newReconnectBuffer(100, ctx.Done())
		require.NoError(t, b.reserve(ctx, nil, 300, false), "one message larger than the bound goes through alone")
		require.ErrorIs(t, b.reserve(ctx, nil, 1, false), ErrBufferFull)
		b.release(1, 300)

		require.NoError(t, b.reserve(ctx, nil, 60, false))
		require.ErrorIs(t, b.reserve(ctx, nil, 60, false), ErrBufferFull)
		waited := make(chan error, 1)
		go func() { waited <- b.reserve(ctx, nil, 60, true) }()
		synctest.Wait()
		require.Empty(t, waited, "a blocking reserve waits for space")
		b.release(1, 60)
		require.NoError(t, <-waited)

		b.putBack(3, 200)
		msgs, bytes := b.held()
		require.Equal(t, 4, msgs)
		require.Equal(t, 260, bytes, "put-back goes over the bound")
		require.ErrorIs(t, b.reserve(ctx, nil, 1, false), ErrBufferFull)

		short, stop := context.WithCancel(ctx)
		stop()
		require.ErrorIs(t, b.reserve(short, nil, 1, true), context.Canceled)

		go func() { waited <- b.reserve(t.Context(), nil, 1, true) }()
		synctest.Wait()
		cancel() // the client's context: it is closing
		require.ErrorIs(t, <-waited, ErrClosed)
		b.close()
		require.ErrorIs(t, b.reserve(t.Context(), nil, 0, false), ErrClosed)
	})
}

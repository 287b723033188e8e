package transport

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStatsCountBytesWhileReceiveWaits checks the receive side's byte
// count, kept under the receive lock and shown while Receive waits in a
// stream read: Stats is exact after each Receive, answers while a Receive
// holds the lock waiting for data, and, read all through a burst by
// another goroutine, never goes back and ends at the exact total.
func TestStatsCountBytesWhileReceiveWaits(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	cli, err := client.OpenChannel(ctx, "stats")
	require.NoError(t, err)
	require.NoError(t, cli.Send(ctx, make([]byte, 10)))
	srv, err := server.AcceptChannel(ctx)
	require.NoError(t, err)

	var want uint64
	for _, size := range []int{10, 0, 700, 3} {
		if size != 10 {
			require.NoError(t, cli.Send(ctx, make([]byte, size)))
		}
		msg, err := srv.Receive(ctx)
		require.NoError(t, err)
		require.Len(t, msg, size)
		want += uint64(size)
		require.Equal(t, want, srv.Stats().BytesReceived)
	}

	// A Receive waiting for data holds the lock; Stats still answers.
	got := make(chan []byte, 1)
	go func() {
		msg, err := srv.Receive(ctx)
		if err != nil {
			msg = nil
		}
		got <- msg
	}()
	require.Eventually(t, srv.rx.reading.Load, 10*time.Second, time.Millisecond)
	require.Equal(t, want, srv.Stats().BytesReceived)
	require.Equal(t, uint64(4), srv.Stats().MessagesReceived)
	require.NoError(t, cli.Send(ctx, make([]byte, 55)))
	require.Len(t, <-got, 55)
	want += 55
	require.Equal(t, want, srv.Stats().BytesReceived)

	// Read by another goroutine throughout a burst.
	const burst = 2000
	stop, seen := make(chan struct{}), make(chan error, 1)
	limit := want + burst*64
	go func() {
		var last uint64
		for {
			select {
			case <-stop:
				seen <- nil
				return
			default:
			}
			n := srv.Stats().BytesReceived
			if n < last || n > limit {
				seen <- &ChannelError{Channel: "stats", Reason: "byte count went back or past the total"}
				return
			}
			last = n
		}
	}()
	go func() {
		for range burst {
			if cli.Send(ctx, make([]byte, 64)) != nil {
				return
			}
		}
	}()
	buf := make([]byte, 64)
	for range burst {
		buf, err = srv.ReceiveBuf(ctx, buf)
		require.NoError(t, err)
	}
	close(stop)
	require.NoError(t, <-seen)
	want += burst * 64
	require.Equal(t, want, srv.Stats().BytesReceived)
	require.Equal(t, want, server.Stats().BytesReceived)
}

// ReceiveInto with a nil *Message is a programming error: it panics before
// it takes a message, which the next call then returns.
func TestReceiveIntoANilMessagePanicsWithoutTakingAMessage(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	cli, srv := openPair(t, client, server)
	require.NoError(t, cli.Send(ctx, []byte("kept")))
	require.PanicsWithValue(t, "transport: ReceiveInto with a nil *Message", func() { _ = srv.ReceiveInto(ctx, nil) })
	var m Message
	require.NoError(t, srv.ReceiveInto(ctx, &m))
	require.Equal(t, "kept", string(m.Data))
	require.Equal(t, uint64(1), srv.Stats().MessagesReceived)
}

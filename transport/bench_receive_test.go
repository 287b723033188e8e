package transport

// Tests for the fast paths the benchmarks led to: large messages read straight
// into the slice Receive returns (directReadMin), and lone messages written
// by Send itself (writeDirect).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
)

func patterned(size, seed int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

func TestBenchFastPathsKeepMessagesIntact(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "sizes")
	require.NoError(t, err)
	sch, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	sizes := []int{0, 1, 63, 64, 1190, 1194, 1195, 1200, 1201, directReadMin - 1, directReadMin, directReadMin + 1,
		channelReadBuffer - 1, channelReadBuffer, channelReadBuffer + 1, 200_000, DefaultMaxMessageSize, 5, 70_000, 3}
	done := make(chan error, 1)
	go func() {
		for round := range 3 {
			for i, size := range sizes {
				if round == 1 {
					time.Sleep(time.Millisecond) // lone messages: written by Send itself
				}
				if err := ch.Send(ctx, patterned(size, i+round)); err != nil {
					done <- err
					return
				}
			}
		}
		done <- ch.Flush(ctx)
	}()
	for round := range 3 {
		for i, size := range sizes {
			msg, err := sch.Receive(ctx)
			require.NoError(t, err)
			require.Equal(t, patterned(size, i+round), msg, "round %d, message %d of %d bytes", round, i, size)
		}
	}
	require.NoError(t, <-done)
	st := server.Stats()
	require.Equal(t, uint64(3*len(sizes)), st.MessagesReceived)
	require.NoError(t, ch.Close())
	_, err = sch.Receive(ctx)
	require.ErrorIs(t, err, io.EOF)
}

// A Receive cut short by its context in the middle of a large message loses
// nothing; the stream ending in the middle of one is a protocol error that
// resets the channel, never a clean io.EOF.
func TestBenchLargeReceiveInterrupted(t *testing.T) {
	// The test writes frames on the stream behind the channel's back, so
	// the sender's message count is not the receiver's: without
	// acknowledgements, which would find the difference a protocol error.
	client, server, _ := pair(t, nil, &Config{DisableAcks: true})
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "large")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("first")))
	require.NoError(t, ch.Flush(ctx))
	sch, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	msg, err := sch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "first", string(msg))

	// The channel's writer is idle: write a frame in pieces on its stream.
	big := patterned(300_000, 1)
	frame := wire.AppendMessage(nil, 0, big)
	_, err = ch.s.Write(frame[:20_000])
	require.NoError(t, err)
	for range 3 {
		short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		_, err = sch.Receive(short)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
	_, err = ch.s.Write(frame[20_000:150_000])
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	_, err = sch.Receive(short)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = ch.s.Write(frame[150_000:])
	require.NoError(t, err)
	msg, err = sch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, big, msg)

	require.NoError(t, ch.Send(ctx, []byte("after")))
	msg, err = sch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "after", string(msg))

	// The stream ends halfway through a large message.
	require.NoError(t, ch.Flush(ctx))
	_, err = ch.s.Write(frame[:100_000])
	require.NoError(t, err)
	require.NoError(t, ch.Close())
	_, err = sch.Receive(ctx)
	var ce *ChannelError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, CodeProtocolError, ce.Code)
	require.Contains(t, ce.Reason, "after 99994 of the 300000 bytes")
}

// Lone messages written by Send itself and bursts through the writer keep
// their order, and Flush counts both.
func TestBenchDirectWritesKeepOrder(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "order")
	require.NoError(t, err)
	sch, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	const n = 3000
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if i%100 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
			if err := ch.Send(ctx, fmt.Appendf(nil, "%d", i)); err != nil {
				done <- err
				return
			}
		}
		done <- ch.Flush(ctx)
	}()
	for i := range n {
		msg, err := sch.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(i), string(msg))
	}
	require.NoError(t, <-done)
	st := client.Stats()
	require.Equal(t, st.MessagesSent, st.MessagesWritten)
	// Some went directly, some in batches.
	require.Less(t, ch.tx.writes.Load(), uint64(n))
	require.NoError(t, ch.Close())
	_, err = sch.Receive(ctx)
	require.True(t, errors.Is(err, io.EOF))
}

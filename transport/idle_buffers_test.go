package transport

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// heldReadBuffer returns the capacity of the larger read buffer the
// channel's stream reader holds, 0 when it holds only its small inline one.
// No Receive may be running.
func (ch *Channel) heldReadBuffer() int {
	ch.rx.mu.Lock()
	defer ch.rx.mu.Unlock()
	sr := ch.rx.sr
	if sr.buf == nil || sr.isSmall() {
		return 0
	}
	return cap(sr.buf)
}

// heldSendBuffers returns the bytes of send buffers the channel keeps.
func (ch *Channel) heldSendBuffers() int {
	ch.tx.mu.Lock()
	defer ch.tx.mu.Unlock()
	return cap(ch.tx.buf) + cap(ch.tx.spare) + ch.tx.ret.freeCap
}

// TestIdleChannelHoldsNoReadBuffer checks that a channel which received a
// lone echo, and then a burst of small and large messages, holds no read
// buffer once it has received everything: the buffer goes back to the pool
// when the channel drains, and every message arrives whole and in order.
func TestIdleChannelHoldsNoReadBuffer(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	cch, err := client.OpenChannel(ctx, "idle")
	require.NoError(t, err)
	msg := bytes.Repeat([]byte{7}, 64)
	require.NoError(t, cch.Send(ctx, msg))
	sch, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	got, err := sch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, msg, got)
	require.NoError(t, sch.Send(ctx, got))
	got, err = cch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, msg, got)
	require.Zero(t, sch.heldReadBuffer(), "server channel after one echo")
	require.Zero(t, cch.heldReadBuffer(), "client channel after one echo")

	// A burst fills the small buffer and moves to a pooled one; sizes
	// around the small buffer's and the direct-read threshold's.
	sizes := []int{64, 1, smallReadBuffer - 2, smallReadBuffer, 3000, directReadMin - 1, directReadMin + 1, 100 << 10}
	const n = 400
	go func() {
		for i := range n {
			m := bytes.Repeat([]byte{byte(i)}, sizes[i%len(sizes)])
			if cch.Send(ctx, m) != nil {
				return
			}
		}
	}()
	for i := range n {
		got, err := sch.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, bytes.Repeat([]byte{byte(i)}, sizes[i%len(sizes)]), got, fmt.Sprintf("message %d", i))
	}
	require.Zero(t, sch.heldReadBuffer(), "server channel after the burst")
	// The sender lets go of the buffers the burst grew once the receiver
	// acknowledged everything.
	require.Eventually(t, func() bool { return cch.heldSendBuffers() <= 2*idleSendKeep },
		10*time.Second, 10*time.Millisecond, "send buffers held: %d bytes", cch.heldSendBuffers())
}

// TestIdleChannelsHaveNoWriterGoroutine checks that channels which sent a
// message and are idle keep no writer goroutine on either side, and that
// their sending still ends cleanly when the connection does: Send fails
// with the connection's error and Close returns.
func TestIdleChannelsHaveNoWriterGoroutine(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	before := runtime.NumGoroutine()
	const n = 20
	var chans []*Channel
	for i := range n {
		cch, err := client.OpenChannel(ctx, fmt.Sprintf("idle-%d", i))
		require.NoError(t, err)
		require.NoError(t, cch.Send(ctx, []byte("ping")))
		sch, err := server.AcceptChannel(ctx)
		require.NoError(t, err)
		_, err = sch.Receive(ctx)
		require.NoError(t, err)
		require.NoError(t, sch.Send(ctx, []byte("pong")))
		_, err = cch.Receive(ctx)
		require.NoError(t, err)
		chans = append(chans, cch, sch)
	}
	// Each of the 2n channels had a writer of its own before; the header
	// readers end once their channel is accepted.
	require.Eventually(t, func() bool { return runtime.NumGoroutine()-before < n/2 },
		10*time.Second, 10*time.Millisecond, "goroutines: %d before, %d now", before, runtime.NumGoroutine())

	require.NoError(t, client.CloseWithError(CodeNoError, ""))
	for _, ch := range chans[:2] {
		<-ch.Conn().Context().Done()
	}
	err := chans[0].Send(ctx, []byte("late"))
	require.Error(t, err)
	require.ErrorIs(t, err, net.ErrClosed)
	for _, ch := range chans {
		_ = ch.Close()
	}
}

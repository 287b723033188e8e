package transport

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// ServeChannels hands every channel the peer opens to its handler, on the
// goroutine that read the header, and returns when the connection ends,
// after the handler calls returned. AcceptChannel cannot take the same
// connection's channels as well, nor a second ServeChannels.
func TestServeChannelsHandsOutEveryChannel(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)

	var mu sync.Mutex
	got := map[string]*Channel{}
	arrived := make(chan struct{}, 8)
	served := make(chan error, 1)
	go func() {
		served <- server.ServeChannels(func(ch *Channel) {
			mu.Lock()
			got[ch.Name()] = ch
			mu.Unlock()
			arrived <- struct{}{}
		})
	}()
	for i := range 3 {
		ch, err := client.OpenChannel(ctx, fmt.Sprintf("c%d", i))
		require.NoError(t, err)
		require.NoError(t, ch.Send(ctx, []byte("hi")))
	}
	for range 3 {
		select {
		case <-arrived:
		case <-ctx.Done():
			t.Fatal("a channel was not handed out")
		}
	}
	mu.Lock()
	require.Len(t, got, 3)
	for _, ch := range got {
		m, err := ch.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, "hi", string(m))
	}
	mu.Unlock()

	_, err := server.AcceptChannel(ctx)
	require.ErrorIs(t, err, ErrAcceptInUse)
	require.ErrorIs(t, server.ServeChannels(func(*Channel) {}), ErrAcceptInUse)

	require.NoError(t, client.CloseWithError(CodeNoError, ""))
	err = <-served
	var ce *ConnError
	require.ErrorAs(t, err, &ce, "ServeChannels returns why the connection ended: %v", err)
}

// After AcceptChannel, ServeChannels refuses the connection.
func TestServeChannelsAfterAcceptChannel(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "a")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("x")))
	_, err = server.AcceptChannel(ctx)
	require.NoError(t, err)
	require.ErrorIs(t, server.ServeChannels(func(*Channel) {}), ErrAcceptInUse)
}

// A malformed header is refused and counted, and the channels after it are
// served (as with AcceptChannel).
func TestServeChannelsRefusesBadHeader(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	s, err := client.qc.OpenStreamSync(ctx)
	require.NoError(t, err)
	_, err = s.Write([]byte{0xff, 0xff, 0xff})
	require.NoError(t, err)
	arrived := make(chan string, 1)
	served := make(chan error, 1)
	go func() { served <- server.ServeChannels(func(ch *Channel) { arrived <- ch.Name() }) }()
	ch, err := client.OpenChannel(ctx, "good")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("x")))
	select {
	case name := <-arrived:
		require.Equal(t, "good", name)
	case <-ctx.Done():
		t.Fatal("the good channel was not handed out")
	}
	require.Eventually(t, func() bool { return server.Stats().RejectedChannels == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, server.CloseWithError(CodeNoError, ""))
	<-served
}

package transport

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestIdleConnHoldsNoHandshakeCallback checks that an accepted connection
// gave back its place in the per-address handshake gate and holds no
// callback on its QUIC context for it: the release is unregistered (and
// the registration dropped, since the token stays reachable from the
// connection's context) once the handshake completed, instead of waiting
// for the connection's end.
func TestIdleConnHoldsNoHandshakeCallback(t *testing.T) {
	_, server, _ := pair(t, nil, nil)
	tok, ok := server.qc.Context().Value(handshakeTokenKey{}).(*handshakeToken)
	require.True(t, ok, "a listener's connection holds a handshake token")
	require.True(t, tok.released.Load(), "the place in the gate is given back at Accept")
	require.Nil(t, tok.stop, "the release was unregistered from the connection's context, and the registration dropped")
	// The connection still works and ends as before.
	require.NoError(t, server.Context().Err())
}

// TestConnSizeClass checks that a connection's own struct, which every idle
// connection holds, stays within the 1152-byte allocation size class: the
// TLS state read after the handshake is kept behind a pointer, allocated
// only when read.
func TestConnSizeClass(t *testing.T) {
	require.LessOrEqual(t, unsafe.Sizeof(Conn{}), uintptr(1152))
	_, server, _ := pair(t, nil, nil)
	require.Nil(t, server.state, "an idle connection has not read its TLS state")
	st := server.ConnectionState()
	require.True(t, st.TLS.HandshakeComplete)
}

// TestIdleConnHoldsNoCloseState checks what an open server connection and
// its channel, after a message each way, do not hold (issue 12, memory per
// idle session): no close state (the closer's done channel and abort
// context are made once a close begins), no ready channel of its own (one
// closed channel shared by every Conn made after its HELLO exchange), no
// migration channels on a server's side, and a control stream reader with a
// 128-byte small buffer. Closing still works, and waits, as before.
func TestIdleConnHoldsNoCloseState(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	cch, err := client.OpenChannel(ctx, "idle")
	require.NoError(t, err)
	require.NoError(t, cch.Send(ctx, []byte("ping")))
	sch, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	msg, err := sch.Receive(ctx)
	require.NoError(t, err)
	require.NoError(t, sch.Send(ctx, msg))
	_, err = cch.Receive(ctx)
	require.NoError(t, err)

	for name, e := range map[string]*closer{"server conn": &server.end, "server channel": &sch.end, "client conn": &client.end} {
		require.Nil(t, e.done, "%s: no done channel before a close", name)
		require.Nil(t, e.abortCtx, "%s: no abort context before a close", name)
	}
	require.Equal(t, closedReady, server.ready, "the server's Conn shares the closed ready channel")
	require.Nil(t, server.mig.turn, "a server's Conn has no migration turn")
	require.Nil(t, server.mig.done, "a server's Conn has no migration end")
	require.NotNil(t, client.mig.turn, "a client's Conn can migrate")

	require.NoError(t, sch.Close())
	require.NotNil(t, sch.end.done, "the close made its state")
	require.NoError(t, server.CloseWithError(CodeNoError, ""))
	select {
	case <-server.end.doneChan():
	default:
		t.Fatal("CloseWithError returned before the close finished")
	}
}

// TestControlReaderSmallBuffer checks the control stream reader's small
// buffer: 128 bytes in the reader's own allocation, not a channel's 512.
func TestControlReaderSmallBuffer(t *testing.T) {
	sr := newControlReader(nil)
	require.Len(t, sr.small, smallControlBuffer)
	require.Len(t, newStreamReader(nil, channelReadBuffer).small, smallReadBuffer)
}

// TestServeChannelsMakesNoReadyList checks that a connection whose
// channels are taken by ServeChannels holds none of AcceptChannel's ready
// list signals.
func TestServeChannelsMakesNoReadyList(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	got := make(chan *Channel, 1)
	served := make(chan error, 1)
	go func() { served <- server.ServeChannels(func(ch *Channel) { got <- ch }) }()
	cch, err := client.OpenChannel(ctx, "idle")
	require.NoError(t, err)
	require.NoError(t, cch.Send(ctx, []byte("ping")))
	sch := <-got
	_, err = sch.Receive(ctx)
	require.NoError(t, err)
	server.mu.Lock()
	avail, done := server.in.avail, server.in.done
	server.mu.Unlock()
	require.Nil(t, avail)
	require.Nil(t, done)
	require.NoError(t, server.CloseWithError(CodeNoError, ""))
	require.Error(t, <-served)
}

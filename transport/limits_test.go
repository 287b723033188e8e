package transport

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
)

func TestHelloCarriesTheByteBudgetAndSendBuffer(t *testing.T) {
	client, server, _ := pair(t,
		&Config{PendingCap: 50, PendingBytes: 3 << 20, SendBufferSize: 32 << 10},
		&Config{PendingBytes: 5 << 20})
	require.Equal(t, Limits{MaxMessageSize: DefaultMaxMessageSize, PendingCap: 50, PendingBytes: 3 << 20, SendBufferSize: 32 << 10}, client.PeerLimits())
	require.Equal(t, Limits{MaxMessageSize: DefaultMaxMessageSize, PendingCap: DefaultPendingCap, PendingBytes: 5 << 20, SendBufferSize: DefaultSendBufferSize}, server.PeerLimits())
	require.Equal(t, client.PeerLimits(), server.Limits())
	require.Equal(t, DefaultMaxConnectionReceiveWindow, server.ReceiveWindow())
}

func TestReceiveWindowsAreConfigured(t *testing.T) {
	q, err := (&Config{}).QUICConfig()
	require.NoError(t, err)
	require.Equal(t, uint64(DefaultMaxStreamReceiveWindow), q.MaxStreamReceiveWindow)
	require.Equal(t, uint64(DefaultMaxConnectionReceiveWindow), q.MaxConnectionReceiveWindow)

	// A maximum below quic-go's starting window lowers the start too.
	q, err = (&Config{MaxStreamReceiveWindow: 16 << 10, MaxConnectionReceiveWindow: 32 << 10}).QUICConfig()
	require.NoError(t, err)
	require.Equal(t, uint64(16<<10), q.InitialStreamReceiveWindow)
	require.Equal(t, uint64(32<<10), q.InitialConnectionReceiveWindow)

	_, err = (&Config{MaxConnectionReceiveWindow: -1}).QUICConfig()
	require.ErrorContains(t, err, "Config.MaxConnectionReceiveWindow")
	_, err = (&Config{PendingBytes: -1}).QUICConfig()
	require.ErrorContains(t, err, "Config.PendingBytes")
}

// A Send that waited for room in a full send buffer while SLOW_DOWN arrived
// does not slip its message in when room appears: it waits for RESUME, so
// that after the signal the peer receives only what was buffered before it.
func TestSendWaitingForRoomHonoursSlowDown(t *testing.T) {
	client, server, _ := pair(t,
		&Config{MaxStreamReceiveWindow: 16 << 10, MaxConnectionReceiveWindow: 32 << 10},
		&Config{SendBufferSize: 1 << 10})
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "flow")
	require.NoError(t, err)
	sch, err := server.AcceptChannel(ctx)
	require.NoError(t, err)

	// Fill the stream's flow-control window and then the send buffer, until
	// more was accepted than the window holds and the writer has made no
	// progress for five polls in a row: it is stuck until the server reads.
	const window, size = 16 << 10, 100
	msg := make([]byte, size)
	accepted, still := 0, 0
	var written uint64
	// Polled on the wall clock: whether the writer is stuck depends on QUIC
	// flow control over a real socket, which synctest cannot see blocked.
	require.Eventually(t, func() bool {
		for ch.TrySend(msg) == nil {
			accepted++
		}
		w := client.Stats().MessagesWritten
		if w != written || accepted*wire.MessageLen(size) <= window {
			written, still = w, 0
			return false
		}
		still++
		return still == 5
	}, 10*time.Second, 10*time.Millisecond)
	late := make(chan error, 1)
	lateMsg := make([]byte, size)
	copy(lateMsg, "late")
	go func() { late <- ch.Send(ctx, lateMsg) }()

	require.NoError(t, server.SlowDown())
	// Polled: SLOW_DOWN crosses a real UDP socket.
	require.Eventually(t, client.PeerSlowedDown, 10*time.Second, time.Millisecond)
	for range accepted {
		got, err := sch.Receive(ctx)
		require.NoError(t, err)
		require.Len(t, got, size)
	}
	select {
	case err := <-late:
		t.Fatalf("Send returned %v after SLOW_DOWN, before RESUME", err)
	default:
	}
	require.NoError(t, server.Resume())
	require.NoError(t, <-late)
	got, err := sch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, lateMsg, got)
}

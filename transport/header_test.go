package transport

import (
	"errors"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// TestSlowChannelHeaderDoesNotHoldUpTheNextChannel: a stream whose header
// trickles in is opened first, a well-formed channel right after it. The
// well-formed channel comes out of AcceptChannel while the slow header is
// still incomplete, and the slow one once its header is done. (Before,
// headers were read one at a time inside AcceptChannel: the good channel
// waited for the slow header's 5 s deadline, and the slow one was reset.)
func TestSlowChannelHeaderDoesNotHoldUpTheNextChannel(t *testing.T) {
	// A deadline no machine stall reaches: the order of events is tested.
	client, server, _ := pair(t, &Config{ChannelHeaderTimeout: 30 * time.Second}, nil)
	ctx := testCtx(t)

	header := wire.AppendChannelHeader(nil, "slow")
	slow, err := client.qc.OpenStreamSync(ctx)
	require.NoError(t, err)
	_, err = slow.Write(header[:2]) // type and name length, no name yet
	require.NoError(t, err)
	good, err := client.OpenChannel(ctx, "good")
	require.NoError(t, err)
	require.NoError(t, good.Send(ctx, []byte("hello")))

	first, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	require.Equal(t, "good", first.Name(), "the complete header comes out first")
	msg, err := first.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "hello", string(msg))

	// Only now does the slow header complete.
	_, err = slow.Write(header[2:])
	require.NoError(t, err)
	second, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	require.Equal(t, "slow", second.Name())
	require.Zero(t, server.Stats().RejectedChannels)
}

// TestLateChannelHeaderIsRejected: a header that is not complete within
// ChannelHeaderTimeout gets its stream reset with PROTOCOL_ERROR and is
// counted; the connection and the channels after it carry on.
func TestLateChannelHeaderIsRejected(t *testing.T) {
	client, server, _ := pair(t, &Config{ChannelHeaderTimeout: 100 * time.Millisecond}, nil)
	ctx := testCtx(t)

	stuck, err := client.qc.OpenStreamSync(ctx)
	require.NoError(t, err)
	_, err = stuck.Write([]byte{wire.StreamChannel})
	require.NoError(t, err)

	accepted := make(chan *Channel, 1)
	go func() {
		ch, err := server.AcceptChannel(ctx)
		if err == nil {
			accepted <- ch
		}
		close(accepted)
	}()
	_ = stuck.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = stuck.Read(make([]byte, 1))
	var se *quic.StreamError
	require.True(t, errors.As(err, &se), "stream reset, got %v", err)
	require.Equal(t, quic.StreamErrorCode(CodeProtocolError), se.ErrorCode)
	// Polled: the server counts the rejection after the reset went out on a
	// real socket, so synctest cannot tell when it is done.
	require.Eventually(t, func() bool { return server.Stats().RejectedChannels == 1 }, 10*time.Second, time.Millisecond)

	after, err := client.OpenChannel(ctx, "after")
	require.NoError(t, err)
	ch := <-accepted
	require.NotNil(t, ch)
	require.Equal(t, "after", ch.Name())
	require.NoError(t, after.Send(ctx, []byte("x")))
	msg, err := ch.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "x", string(msg))
}

// TestChannelWhoseFirstFrameIsLateIsAccepted: QUIC hands the server a
// stream as soon as a frame of a later stream of the peer arrives (it
// opens the earlier ones implicitly), so a channel whose first frame is
// delayed (lost and retransmitted, as after a partition when every client
// resumes at once) exists on the server before any of its bytes. Its
// header deadline runs from its first byte: it is accepted, not reset
// with PROTOCOL_ERROR. (Before, the deadline ran from the implicit open,
// and a resumed client's channel was refused: it stayed dead both ways.)
func TestChannelWhoseFirstFrameIsLateIsAccepted(t *testing.T) {
	const timeout = 100 * time.Millisecond
	client, server, _ := pair(t, &Config{ChannelHeaderTimeout: timeout}, nil)
	ctx := testCtx(t)

	late, err := client.qc.OpenStreamSync(ctx) // nothing written yet: no frame
	require.NoError(t, err)
	good, err := client.OpenChannel(ctx, "good") // a later stream: opens late's on the server
	require.NoError(t, err)
	require.NoError(t, good.Send(ctx, []byte("hello")))
	first, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	require.Equal(t, "good", first.Name())

	time.Sleep(3 * timeout) // late's first frame is on its way
	_, err = late.Write(wire.AppendChannelHeader(nil, "late"))
	require.NoError(t, err)
	second, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	require.Equal(t, "late", second.Name())
	require.Zero(t, server.Stats().RejectedChannels)
}

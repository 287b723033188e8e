package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
)

func seqOf(m []byte) int { return int(binary.BigEndian.Uint32(m)) }

// retainedBytes is what a channel holds for the acknowledgement window.
func retainedBytes(ch *Channel) int {
	ch.tx.mu.Lock()
	defer ch.tx.mu.Unlock()
	return ch.tx.ret.inUse() + len(ch.tx.buf)
}

// openPair opens a channel from client and accepts it on server.
func openPair(t *testing.T, client, server *Conn) (cli, srv *Channel) {
	t.Helper()
	return openNamed(t, client, server, "acks")
}

// Messages the receiver returns from Receive are acknowledged, and the
// sender frees what it retained for them.
func TestAcksFlowAndFreeRetention(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	require.True(t, client.AcksEnabled())
	require.True(t, server.AcksEnabled())
	ctx := testCtx(t)
	cli, srv := openPair(t, client, server)
	const n = 1000
	go func() {
		for i := range n {
			if cli.Send(ctx, seqMsg(i)) != nil {
				return
			}
		}
	}()
	for i := range n {
		m, err := srv.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, i, seqOf(m))
	}
	require.Eventually(t, func() bool { return cli.Acked() == n }, 10*time.Second, time.Millisecond)
	require.Zero(t, retainedBytes(cli), "everything acknowledged is freed")
	require.Equal(t, uint64(n), client.Stats().MessagesAcked)
	require.Nil(t, cli.Unacked(), "no failure, nothing unacknowledged to report")
}

// A receiver that stops reading stops its sender within the window: Send
// waits and TrySend fails with ErrAckWindowFull until it reads again.
func TestAckWindowIsEndToEndBackpressure(t *testing.T) {
	const window = 32 << 10
	client, server, _ := pair(t, nil, &Config{AckWindow: window})
	ctx := testCtx(t)
	cli, srv := openPair(t, client, server)
	msg := make([]byte, 1000)
	var accepted int
	var err error
	for accepted = 0; accepted < 1000; accepted++ {
		if err = cli.TrySend(msg); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, ErrAckWindowFull)
	require.ErrorIs(t, err, ErrWouldBlock, "ErrAckWindowFull matches ErrWouldBlock")
	require.LessOrEqual(t, accepted*wire.MessageLen(len(msg)), window)
	require.LessOrEqual(t, retainedBytes(cli), window)

	sent := make(chan error, 1)
	go func() { sent <- cli.Send(ctx, msg) }()
	select {
	case err := <-sent:
		t.Fatalf("Send returned %v while the window was full", err)
	case <-time.After(50 * time.Millisecond):
	}
	for range accepted + 1 {
		_, err := srv.Receive(ctx)
		require.NoError(t, err)
	}
	require.NoError(t, <-sent, "the waiting Send went through once the receiver read")
	require.Eventually(t, func() bool { return cli.Acked() == uint64(accepted+1) }, 10*time.Second, time.Millisecond)
	require.NoError(t, cli.TrySend(msg))
}

// After the connection is killed, what the peer's application received and
// Unacked, then Unsent, are exactly what was sent: in order, no overlap.
func TestUnackedIsExactAfterTheConnectionIsKilled(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	cli, srv := openPair(t, client, server)
	const n, read = 2000, 700
	for i := range n {
		require.NoError(t, cli.Send(ctx, seqMsg(i)))
	}
	for i := range read {
		m, err := srv.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, i, seqOf(m))
	}
	// The receiver acknowledges within its short delay.
	require.Eventually(t, func() bool { return cli.Acked() == read }, 10*time.Second, time.Millisecond)
	require.NoError(t, server.CloseWithError(CodeGoingAway, "killed"))
	waitEnd(t, client)

	unacked, unsent := cli.Unacked(), cli.Unsent()
	require.Equal(t, uint64(read), cli.Acked())
	require.Equal(t, uint64(len(unacked)), cli.InDoubt())
	require.Equal(t, n, read+len(unacked)+len(unsent), "received + unacked + unsent = sent")
	for i, m := range append(unacked, unsent...) {
		require.Equal(t, read+i, seqOf(m.Data), "in order, right after what was received")
	}
	require.NotEmpty(t, unacked)
}

// With DisableAcks on either side acknowledgements are off: nothing is
// retained or acknowledged, and a failure leaves what was written in doubt,
// as before.
func TestAcksOffWithDisableAcksOnEitherSide(t *testing.T) {
	for name, cfgs := range map[string][2]*Config{
		"server": {{DisableAcks: true}, nil},
		"client": {nil, {DisableAcks: true}},
	} {
		t.Run(name, func(t *testing.T) {
			client, server, _ := pair(t, cfgs[0], cfgs[1])
			require.False(t, client.AcksEnabled())
			require.False(t, server.AcksEnabled())
			ctx := testCtx(t)
			cli, srv := openPair(t, client, server)
			for i := range 10 {
				require.NoError(t, cli.Send(ctx, seqMsg(i)))
			}
			for range 10 {
				_, err := srv.Receive(ctx)
				require.NoError(t, err)
			}
			// The peer can have the last batch before the writer, back
			// from quic-go's Write, has let go of it.
			require.Eventually(t, func() bool { return retainedBytes(cli) == 0 }, 10*time.Second, time.Millisecond,
				"nothing is retained without acknowledgements")
			require.NoError(t, server.CloseWithError(CodeGoingAway, "killed"))
			waitEnd(t, client)
			require.Zero(t, cli.Acked())
			require.Nil(t, cli.Unacked())
			require.Equal(t, uint64(10), cli.InDoubt(), "written and unconfirmed: in doubt")
			require.Zero(t, client.Stats().MessagesAcked)
		})
	}
}

// A DialEarly client offers acknowledgements and retains what it writes
// before the server's HELLO; a server without them makes it drop that.
func TestDialEarlyDropsRetentionWhenTheServerHasNoAcks(t *testing.T) {
	ln := listen(t, &Config{DisableAcks: true})
	ctx := testCtx(t)
	client, err := DialEarly(ctx, ln.Addr().String(), testTLS(t).client, nil, "early")
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.CloseWithError(CodeNoError, "") })
	ch := client.EarlyChannels()[0]
	require.NoError(t, ch.SendReplaySafe(ctx, []byte("x")))
	server, err := ln.Accept(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.CloseWithError(CodeNoError, "") })
	require.NoError(t, client.WaitReady(ctx))
	require.False(t, client.AcksEnabled())
	require.NoError(t, ch.Flush(ctx))
	require.Zero(t, retainedBytes(ch))
}

// waitEnd waits for c to end.
func waitEnd(t *testing.T, c *Conn) {
	t.Helper()
	select {
	case <-c.Context().Done():
	case <-testCtx(t).Done():
		t.Fatal("the connection did not end")
	}
}

// injectAck writes an ACK frame from c as if the peer's application had
// received count messages on stream.
func injectAck(c *Conn, stream, count uint64) {
	c.ctrl.mu.Lock()
	defer c.ctrl.mu.Unlock()
	_, _ = c.ctrl.s.Write(wire.AppendAck(nil, []wire.AckEntry{{Stream: stream, Count: count}}))
}

// An ACK that counts more than was written, or less than an earlier one,
// closes the connection with PROTOCOL_ERROR and a reason naming the stream
// and the counts; one for a stream the sender does not know is ignored.
func TestMalformedAckIsAProtocolError(t *testing.T) {
	for name, tc := range map[string]struct {
		count uint64
		want  string
	}{
		"above what was written": {count: 7, want: "count 7 exceeds the 6 messages written"},
		"going back":             {count: 2, want: "count 2 is below the 6 acknowledged before"},
	} {
		t.Run(name, func(t *testing.T) {
			client, server, _ := pair(t, nil, nil)
			ctx := testCtx(t)
			cli, srv := openPair(t, client, server)
			for i := range 5 {
				require.NoError(t, srv.Send(ctx, seqMsg(i)))
				_, err := cli.Receive(ctx)
				require.NoError(t, err)
			}
			stream := uint64(cli.s.StreamID())
			injectAck(client, stream+400, 1) // unknown stream: ignored
			require.NoError(t, srv.Send(ctx, []byte("still up")))
			_, err := cli.Receive(ctx)
			require.NoError(t, err)
			require.Eventually(t, func() bool { return srv.Acked() == 6 }, 10*time.Second, time.Millisecond)

			injectAck(client, stream, tc.count)
			waitEnd(t, client)
			err = context.Cause(client.Context())
			require.ErrorIs(t, err, CodeProtocolError)
			require.ErrorContains(t, err, "stream")
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// An ACK on a connection without acknowledgements is a protocol error.
func TestAckWithoutNegotiationIsAProtocolError(t *testing.T) {
	client, server, _ := pair(t, &Config{DisableAcks: true}, nil)
	cli, _ := openPair(t, client, server)
	injectAck(client, uint64(cli.s.StreamID()), 0)
	waitEnd(t, client)
	err := context.Cause(client.Context())
	require.ErrorIs(t, err, CodeProtocolError)
	require.ErrorContains(t, err, "not negotiated")
	require.False(t, errors.Is(err, CodeNoError))
}

// A message larger than the window goes alone once nothing is held; the
// next waits for its acknowledgement. A negative window is refused by name.
func TestMessageLargerThanTheAckWindowGoesAlone(t *testing.T) {
	_, err := Listen("127.0.0.1:0", testTLS(t).server, &Config{AckWindow: -1})
	require.ErrorContains(t, err, "Config.AckWindow")

	client, server, _ := pair(t, nil, &Config{AckWindow: 4 << 10})
	ctx := testCtx(t)
	cli, srv := openPair(t, client, server)
	big := make([]byte, 10<<10)
	require.NoError(t, cli.TrySend(big), "an empty window takes any message")
	require.ErrorIs(t, cli.TrySend([]byte("small")), ErrAckWindowFull)
	m, err := srv.Receive(ctx)
	require.NoError(t, err)
	require.Len(t, m, len(big))
	require.Eventually(t, func() bool { return cli.Acked() == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, cli.TrySend([]byte("small")))
}

// The acknowledgement window does not hold up a close: a Send waiting for
// it fails with ErrClosed when the channel closes, and the connection's
// graceful close completes once the peer reads.
func TestAckWindowDoesNotBlockTheClose(t *testing.T) {
	client, server, _ := pair(t, nil, &Config{AckWindow: 4 << 10})
	ctx := testCtx(t)
	cli, srv := openPair(t, client, server)
	msg := make([]byte, 1000)
	for i := 0; i < 100 && cli.TrySend(msg) == nil; i++ {
	}
	sent := make(chan error, 1)
	go func() { sent <- cli.Send(ctx, msg) }()
	require.Eventually(t, func() bool {
		cli.tx.mu.Lock()
		defer cli.tx.mu.Unlock()
		return cli.tx.progress != nil
	}, 10*time.Second, time.Millisecond, "the Send waits for the window")
	closed := make(chan error, 1)
	go func() { closed <- client.Shutdown(ctx) }()
	require.ErrorIs(t, <-sent, ErrClosed)
	for {
		if _, err := srv.Receive(ctx); err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
	}
	require.NoError(t, <-closed, "the peer read everything: the close is confirmed")
	require.Nil(t, cli.Unacked())
}

// A receiver counts a channel's messages for acknowledgement in batches:
// the connection's acknowledgement lock is taken about once per
// ackBatchMessages messages of a channel already in the next ACK, not once
// per message, and still every message of every channel is acknowledged,
// also the last ones of a count that is not a multiple of the batch.
func TestReceiveCountsAcksInBatches(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	a, sa := openNamed(t, client, server, "a")
	b, sb := openNamed(t, client, server, "b")
	counts := map[*Channel]int{a: 1003, b: 37}
	for cli, n := range counts {
		go func() {
			for i := range n {
				if cli.Send(ctx, seqMsg(i)) != nil {
					return
				}
			}
		}()
	}
	for i := range counts[a] {
		for _, srv := range []*Channel{sa, sb} {
			if srv == sb && i >= counts[b] {
				continue
			}
			m, err := srv.Receive(ctx)
			require.NoError(t, err)
			require.Equal(t, i, seqOf(m))
		}
	}
	for cli, n := range counts {
		require.Eventually(t, func() bool { return cli.Acked() == uint64(n) }, 10*time.Second, time.Millisecond,
			"acknowledged %d of %d", cli.Acked(), n)
	}
	acks := &server.acks
	acks.mu.Lock()
	counted, taken := acks.counted, acks.taken
	acks.mu.Unlock()
	// Each channel takes the lock once per batch, and once for its first
	// message after every ACK taken.
	limit := (counts[a]+counts[b])/ackBatchMessages + 2 + 2*taken
	require.LessOrEqual(t, counted, limit, "lock taken %d times for %d messages, %d ACKs", counted, counts[a]+counts[b], taken)
}

// An ACK that the control reader parses after the connection ended (it may
// have read it ahead) is not counted: Unacked was settled when the
// connection ended, and the messages it returns refer to the retained
// buffers, which an ACK would free into the shared send buffer pool for
// another channel to overwrite.
func TestAckAfterTheConnectionEndedIsIgnored(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	cli, _ := openPair(t, client, server)
	const n = 100
	for i := range n {
		require.NoError(t, cli.Send(ctx, seqMsg(i)))
	}
	require.NoError(t, cli.Flush(ctx))
	require.NoError(t, cli.Close()) // closed before its connection ended: not failed
	require.NoError(t, server.CloseWithError(CodeGoingAway, "killed"))
	waitEnd(t, client)
	before := len(cli.Unacked())
	require.NotZero(t, before, "the server never read: nothing was acknowledged")
	require.NoError(t, cli.acked(uint64(before)))
	require.Len(t, cli.Unacked(), before, "a late ACK does not change what was settled")
}

package transport

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A graceful Close that the peer cuts short (it closes with an error
// instead of confirming that it read everything) reports the written
// messages in doubt, in its error and in Channel.InDoubt.
func TestCloseCutShortByPeerReportsMessagesInDoubt(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "jobs")
	require.NoError(t, err)
	for range 5 {
		require.NoError(t, ch.Send(ctx, []byte("job")))
	}
	require.NoError(t, ch.Flush(ctx))
	_, err = server.AcceptChannel(ctx) // accepted, never read
	require.NoError(t, err)

	closed := make(chan error, 1)
	go func() { closed <- client.Close() }()
	<-server.GoAwayReceived() // the client waits for the server's confirmation
	require.NoError(t, server.CloseWithError(CodeGoingAway, "server closed"))
	err = <-closed
	require.ErrorIs(t, err, ErrInDoubt)
	require.ErrorIs(t, err, CodeGoingAway, "the error says why")
	require.Equal(t, uint64(5), ch.InDoubt())
	require.Empty(t, ch.Unsent())
}

// The same when the peer does not confirm within the close timeout (here it
// never reads the channel).
func TestCloseTimeoutReportsMessagesInDoubt(t *testing.T) {
	client, server, _ := pair(t, nil, &Config{CloseTimeout: 300 * time.Millisecond})
	ch := unreadChannel(t, client, server)
	err := client.Close()
	require.ErrorIs(t, err, ErrInDoubt)
	require.Equal(t, uint64(1), ch.InDoubt())
	require.False(t, errors.Is(err, ErrUnflushed), "everything was written")
}

// unreadChannel opens a channel from client, writes one message on it, and
// has server accept it and never read it: the server cannot confirm a close.
func unreadChannel(t *testing.T, client, server *Conn) *Channel {
	t.Helper()
	ctx := testCtx(t)
	ch, err := client.OpenChannel(ctx, "jobs")
	require.NoError(t, err)
	require.NoError(t, ch.Send(ctx, []byte("job")))
	require.NoError(t, ch.Flush(ctx))
	_, err = server.AcceptChannel(ctx)
	require.NoError(t, err)
	return ch
}

// waitingShutdown starts client.Shutdown without a deadline and returns,
// once the server got its GOAWAY, where its result will arrive.
func waitingShutdown(t *testing.T, client, server *Conn) <-chan error {
	t.Helper()
	shutdown := make(chan error, 1)
	go func() { shutdown <- client.Shutdown(context.Background()) }()
	select {
	case <-server.GoAwayReceived(): // the Shutdown is waiting for the server
	case <-testCtx(t).Done():
		t.Fatal("no GOAWAY from the Shutdown")
	}
	return shutdown
}

// Shutdown waits as long as its context allows, then reports what the peer
// did not confirm, and says that the context ended.
func TestShutdownContextBoundsTheClose(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	ch := unreadChannel(t, client, server)
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err := client.Shutdown(sctx)
	require.ErrorIs(t, err, ErrInDoubt)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the error says which bound ended the close")
	require.Equal(t, uint64(1), ch.InDoubt())
	require.ErrorIs(t, client.Shutdown(ctx), ErrInDoubt, "a second call returns the first one's result")
}

// A Close while a Shutdown without a deadline waits for a peer that never
// confirms ends both within Close's timeout: a deferred Close never hangs.
func TestCloseCutsShortAShutdownThatWaits(t *testing.T) {
	client, server, _ := pair(t, nil, &Config{CloseTimeout: 300 * time.Millisecond})
	ctx := testCtx(t)
	ch := unreadChannel(t, client, server)

	shutdown := waitingShutdown(t, client, server)
	closed := make(chan error, 1)
	go func() { closed <- client.Close() }()
	for _, res := range []<-chan error{closed, shutdown} {
		select {
		case err := <-res:
			require.ErrorIs(t, err, ErrInDoubt)
			require.ErrorContains(t, err, "close timeout of 300ms")
		case <-ctx.Done():
			t.Fatal("Close did not cut the Shutdown short")
		}
	}
	require.Equal(t, uint64(1), ch.InDoubt())
}

// closeState's rule for when a peer's graceful close is complete, over
// sequences of events.
func TestCloseStatePeerFinished(t *testing.T) {
	type event func(*closeState)
	goAway := func(code ErrorCode, opened uint64) event {
		return func(s *closeState) { s.peerGoAway(code, opened) }
	}
	accept := func(s *closeState) { s.channelAccepted() }
	refuse := func(n int) event { return func(s *closeState) { s.streamsRefused(n) } }
	fin := func(s *closeState) { s.peerControlEnded() }
	for _, tc := range []struct {
		name    string
		events  []event
		allRead bool
		want    bool
	}{
		{"nothing happened", nil, true, false},
		{"closing GOAWAY and FIN, no channels", []event{goAway(CodeNoError, 0), fin}, true, true},
		{"closing GOAWAY without FIN", []event{goAway(CodeNoError, 0)}, true, false},
		{"FIN without GOAWAY", []event{fin}, true, false},
		{"GOAWAY with an error code", []event{goAway(CodeGoingAway, 0), fin}, true, false},
		{"a channel not yet accepted", []event{goAway(CodeNoError, 2), accept, fin}, true, false},
		{"every channel accepted or refused", []event{goAway(CodeNoError, 2), accept, refuse(1), fin}, true, true},
		{"accepted before the GOAWAY", []event{accept, accept, goAway(CodeNoError, 2), fin}, true, true},
		{"a channel not read to its end", []event{goAway(CodeNoError, 1), accept, fin}, false, false},
		{"the last GOAWAY is not a closing one", []event{goAway(CodeNoError, 0), goAway(CodeGoingAway, 0), fin}, true, false},
		{"a closing GOAWAY after another", []event{goAway(CodeGoingAway, 0), goAway(CodeNoError, 1), refuse(1), fin}, true, true},
		{"FIN before the last GOAWAY counts", []event{goAway(CodeNoError, 3), fin, refuse(3)}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s closeState
			for _, e := range tc.events {
				e(&s)
			}
			require.Equal(t, tc.want, s.peerFinished(func() bool { return tc.allRead }))
		})
	}
}

// Once this side closes, it opens no channel and turns away the peer's,
// counting them, and its closing GOAWAY reports what it opened.
func TestCloseStateThisSideClosing(t *testing.T) {
	var s closeState
	require.True(t, s.channelOpened())
	require.True(t, s.channelOpened())
	require.True(t, s.channelAccepted())
	require.Equal(t, uint64(2), s.beginClose())
	require.False(t, s.channelOpened())
	require.False(t, s.channelAccepted(), "refused while closing")
	require.Equal(t, uint64(2), s.opened)
	require.Equal(t, uint64(2), s.accepted, "a stream turned away is still counted as taken")
	s.peerGoAway(CodeNoError, 2)
	require.True(t, s.peerClosingToo())
	s.peerControlEnded()
	require.True(t, s.peerFinished(func() bool { return true }))
}

// CloseWithError during a graceful close closes at once, with its code, and
// the graceful close reports what the peer never confirmed.
func TestCloseWithErrorEndsAGracefulCloseAtOnce(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	ch := unreadChannel(t, client, server)
	shutdown := waitingShutdown(t, client, server)
	require.NoError(t, client.CloseWithError(CodeGoingAway, "leaving"))
	var err error
	select {
	case err = <-shutdown:
	case <-ctx.Done():
		t.Fatal("CloseWithError did not end the Shutdown")
	}
	require.ErrorIs(t, err, ErrInDoubt)
	require.ErrorIs(t, err, CodeGoingAway, "the error says why")
	require.Equal(t, uint64(1), ch.InDoubt())
	<-server.Context().Done()
	require.ErrorIs(t, contextCause(server), CodeGoingAway)
}

// A channel's Shutdown without a deadline, waiting for a writer that flow
// control holds, is cut short by a later Close (bounded by CloseTimeout)
// and by Reset: neither waits behind the first call's unbounded wait.
func TestLaterCloseCutsShortAChannelShutdownThatWaits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		later func(ch *Channel) error
	}{
		{"Close", func(ch *Channel) error { return ch.Close() }},
		{"Reset", func(ch *Channel) error { ch.Reset(CodeChannelClosed); return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvCfg := &Config{MaxStreamReceiveWindow: 64 << 10, MaxConnectionReceiveWindow: 128 << 10}
			client, server, _ := pair(t, srvCfg, &Config{CloseTimeout: 300 * time.Millisecond, SendBufferSize: 1 << 20})
			ch := unreadChannel(t, client, server)
			ctx := testCtx(t)
			msg := make([]byte, 16<<10)
			for range 32 { // 512 KiB: far more than the peer's window
				require.NoError(t, ch.Send(ctx, msg))
			}
			first := make(chan error, 1)
			go func() { first <- ch.Shutdown(context.Background()) }()
			// The first Shutdown has begun once Send refuses; the wait is
			// for a goroutine to start, so the wall clock.
			require.Eventually(t, func() bool { return errors.Is(ch.TrySend([]byte("x")), ErrClosed) },
				10*time.Second, time.Millisecond)
			later := make(chan error, 1)
			go func() { later <- tc.later(ch) }()
			for _, res := range []chan error{later, first} {
				select {
				case <-res:
				case <-ctx.Done():
					t.Fatal("the later call did not cut the first Shutdown short")
				}
			}
			require.ErrorIs(t, ch.Shutdown(ctx), ErrUnflushed, "what flow control held back is reported")
		})
	}
}

// A channel closed after its peer stopped reading it (the peer closed its
// end first) fails later Sends with a *ChannelError carrying the peer's
// code, as a write that met the peer's STOP_SENDING does, and not with
// quic-go's untyped error for closing a reset stream: callers tell a
// channel that ended from a connection that ended by the error's type.
func TestSendAfterClosingAChannelThePeerClosedFailsWithChannelError(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	ctx := testCtx(t)
	cch, err := client.OpenChannel(ctx, "jobs")
	require.NoError(t, err)
	require.NoError(t, cch.Send(ctx, []byte("job")))
	sch, err := server.AcceptChannel(ctx)
	require.NoError(t, err)
	_, err = sch.Receive(ctx)
	require.NoError(t, err)
	require.NoError(t, cch.Close())
	<-sch.Done() // the client stopped reading: the stream's send side is reset
	require.NoError(t, sch.Close())
	err = sch.Send(ctx, []byte("late"))
	var ce *ChannelError
	require.ErrorAs(t, err, &ce)
	require.True(t, ce.Remote)
	require.ErrorIs(t, err, CodeChannelClosed)
	require.NoError(t, server.Context().Err(), "the connection is still up")
}

// GoAwaySent is true from the moment the peer can have the GOAWAY: a
// peer that answers at once (a client closes its channels to leave, and
// a resumable session asks GoAwaySent to carry them) must never find it
// false. Here the check runs once the peer has the frame, before
// SendGoAway returns.
func TestGoAwaySentIsTrueBeforeThePeerCanAnswer(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	seen := make(chan bool, 1)
	ctx := testCtx(t)
	testHookGoAwayWritten = func() {
		select {
		case <-client.GoAwayReceived():
			seen <- server.GoAwaySent()
		case <-ctx.Done():
			seen <- false // the client never had the GOAWAY
		}
	}
	t.Cleanup(func() { testHookGoAwayWritten = nil })
	require.NoError(t, server.SendGoAway(CodeGoingAway, "move along"))
	require.True(t, <-seen)
	require.True(t, server.GoAwaySent())
}

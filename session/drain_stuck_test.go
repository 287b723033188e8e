package session

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
	"github.com/quicmsg/quicmsg/transport"
)

// A peer that sends PINGs and never reads its control stream fills it
// with PONGs until the server's control writes block. Its GOAWAY then
// cannot be written, but it must not hold up Shutdown nor the GOAWAY of
// the other sessions: Shutdown returns once its ctx ends, having closed
// the stuck connection.
func TestShutdownIsNotHeldUpByAPeerThatDoesNotReadItsControlStream(t *testing.T) {
	srv, addr, done := serve(t, &Config{}, echo)
	healthy := dial(t, addr, nil)
	raw := dialRawHello(t, addr, wire.Hello{Version: wire.Version, MaxMessageSize: 1 << 20, PendingCap: 1000, Ping: true})

	var written atomic.Int64
	go func() {
		frames := make([]byte, 0, 64<<10)
		for len(frames) < 60<<10 {
			frames = wire.AppendControl(frames, wire.Control{Type: wire.ControlPing, Opaque: 7})
		}
		for range 64 { // 3.8 MiB of PINGs at most, far beyond the PONGs' stream window
			n, err := raw.ctrl.Write(frames)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	// Real sockets, so the wall clock: the PONGs fill the stream window
	// over QUIC; once the writes stop making progress the server's
	// control reader is stuck in a PONG write.
	last, still := int64(-1), 0
	for deadline := time.Now().Add(20 * time.Second); still < 10 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		if w := written.Load(); w != last {
			last, still = w, 0
			continue
		}
		still++
	}
	require.Equal(t, 10, still, "the PING writes never stalled")

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	select {
	case err := <-shut:
		require.ErrorIs(t, err, context.DeadlineExceeded, "the stuck session had to be closed")
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown is held up by the peer that does not read")
	}
	require.ErrorIs(t, <-done, ErrServerClosed)
	ga, ok := healthy.PeerGoAway()
	require.True(t, ok, "the healthy session got its GOAWAY")
	require.Equal(t, transport.CodeGoingAway, ga.Code)
}

package transport

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
)

func TestPingMeasuresRoundTripBothWays(t *testing.T) {
	c, s, _ := pair(t, nil, nil)
	for _, conn := range []*Conn{c, s} {
		rtt, err := conn.Ping(testCtx(t))
		require.NoError(t, err)
		require.Positive(t, rtt)
		t.Logf("rtt %v", rtt)
	}
	// The connection carries on: a channel still works after the pings.
	ch, err := c.OpenChannel(testCtx(t), "after-ping")
	require.NoError(t, err)
	require.NoError(t, ch.Send(testCtx(t), []byte("x")))
	in, err := s.AcceptChannel(testCtx(t))
	require.NoError(t, err)
	msg, err := in.Receive(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, "x", string(msg))
}

func TestPeerModeAndCapabilitiesComeFromHello(t *testing.T) {
	c, s, _ := pair(t, &Config{Mode: "my-app/v2"}, &Config{DisableAcks: true})
	require.Equal(t, "my-app/v2", c.PeerMode())
	require.True(t, c.PeerCapabilities().Has(CapAcks|CapHeaders|CapPing), c.PeerCapabilities().String())
	require.False(t, c.PeerCapabilities().Has(CapResume), "a listener without OnResume issues no token")
	require.Empty(t, s.PeerMode(), "the client announced no mode")
	require.Equal(t, CapHeaders|CapPing, s.PeerCapabilities(), "the client does not offer acknowledgements")
	require.Equal(t, "headers,ping", s.PeerCapabilities().String())
	require.Equal(t, "none", Capabilities(0).String())
}

func TestConfigRejectsBadMode(t *testing.T) {
	for _, mode := range []string{"two words", "ünï", string(make([]byte, wire.MaxModeLen+1))} {
		_, err := Listen("127.0.0.1:0", testTLS(t).server, &Config{Mode: mode})
		require.ErrorContains(t, err, "Config.Mode")
	}
}

// Many goroutines ping at once: each gets the PONG of its own PING, and
// nothing is left waiting afterwards.
func TestConcurrentPingsEachGetTheirPong(t *testing.T) {
	c, s, _ := pair(t, nil, nil)
	const workers, each = 40, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				_, err := c.Ping(testCtx(t))
				errs <- err
			}
		})
	}
	// The server pings meanwhile too, on the same control streams.
	for range each {
		_, err := s.Ping(testCtx(t))
		require.NoError(t, err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	requireNoPingWaiting(t, c)
}

func requireNoPingWaiting(t *testing.T, c *Conn) {
	t.Helper()
	p := &c.rare.Load().pings
	p.mu.Lock()
	defer p.mu.Unlock()
	require.Empty(t, p.waiting)
	require.Empty(t, p.slots)
}

// A peer that did not announce PING (a peer of an older release) is never
// sent one: Ping fails at once with an error that names the capability.
func TestPingRefusedForPeerWithoutCapability(t *testing.T) {
	t.Run("raw HELLO without PING", func(t *testing.T) {
		srv := newRawServer(t, wire.Hello{})
		c := dialRaw(t, srv)
		_, err := c.Ping(testCtx(t))
		requireNoPingCapability(t, err)
		require.Empty(t, c.PeerMode())
		require.NoError(t, c.Close(), "the raw server confirms the graceful close")
		for f := range srv.frames {
			require.NotEqual(t, wire.ControlPing, f.Type, "a PING reached a peer that did not announce it")
		}
	})
	t.Run("transport peer without PING", func(t *testing.T) {
		c, s, _ := pair(t, &Config{noPing: true}, nil)
		_, err := c.Ping(testCtx(t))
		requireNoPingCapability(t, err)
		require.NoError(t, c.Context().Err())
		// A PING it gets anyway is the protocol error an older peer sees.
		writeRawControl(t, c, wire.AppendControl(nil, wire.Control{Type: wire.ControlPing, Opaque: 1}))
		<-s.Context().Done()
		requireProtocolClose(t, c, "unexpected PING frame")
	})
}

func requireNoPingCapability(t *testing.T, err error) {
	t.Helper()
	var ce *CapabilityError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, CapPing, ce.Missing)
	require.ErrorIs(t, err, errors.ErrUnsupported)
	require.ErrorContains(t, err, "did not announce the ping capability")
}

// At most MaxOutstandingPings pings wait for their PONG; one more waits for
// a slot and sends its PING only when an earlier one was answered. A PONG
// is matched by its opaque value, whatever the order; one for a ping given
// up on is dropped.
func TestPingsOutstandingAreBounded(t *testing.T) {
	srv := newRawServer(t, wire.Hello{Ping: true, Mode: ModeRelay})
	c := dialRaw(t, srv)
	require.Equal(t, ModeRelay, c.PeerMode())
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	type result struct{ err error }
	done := make(chan result, MaxOutstandingPings+1)
	var wg sync.WaitGroup
	for range MaxOutstandingPings + 1 {
		wg.Go(func() {
			_, err := c.Ping(ctx)
			done <- result{err}
		})
	}
	defer wg.Wait()
	seen := map[uint64]bool{}
	for range MaxOutstandingPings {
		f := <-srv.frames
		require.Equal(t, wire.ControlPing, f.Type)
		require.False(t, seen[f.Opaque], "opaque value %d sent twice", f.Opaque)
		seen[f.Opaque] = true
	}
	p := &c.rare.Load().pings
	p.mu.Lock()
	require.Len(t, p.waiting, MaxOutstandingPings, "the last Ping waits for a slot, its PING unsent")
	p.mu.Unlock()
	require.Empty(t, done, "no ping ended unanswered")
	// Answer one, the last sent first: its Ping returns, and the one that
	// waited for a slot sends its PING.
	var last uint64
	for v := range seen {
		last = max(last, v)
	}
	srv.write(wire.AppendControl(nil, wire.Control{Type: wire.ControlPong, Opaque: last}))
	require.NoError(t, (<-done).err)
	f := <-srv.frames
	require.Equal(t, wire.ControlPing, f.Type)
	require.False(t, seen[f.Opaque])
	// Give up on the rest; their late PONGs are dropped and the connection
	// carries on.
	cancel()
	for range MaxOutstandingPings {
		require.ErrorIs(t, (<-done).err, context.Canceled)
	}
	for v := range seen {
		srv.write(wire.AppendControl(nil, wire.Control{Type: wire.ControlPong, Opaque: v}))
	}
	srv.write(wire.AppendControl(nil, wire.Control{Type: wire.ControlPong, Opaque: 1 << 60}))
	requireNoPingWaiting(t, c)
	go func() {
		f := <-srv.frames
		srv.write(wire.AppendControl(nil, wire.Control{Type: wire.ControlPong, Opaque: f.Opaque}))
	}()
	_, err := c.Ping(testCtx(t))
	require.NoError(t, err, "the connection carries on after late and unknown PONGs")
}

func TestPingEndsWithTheConnection(t *testing.T) {
	srv := newRawServer(t, wire.Hello{Ping: true})
	c := dialRaw(t, srv)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Ping(testCtx(t))
		errc <- err
	}()
	require.Equal(t, wire.ControlPing, (<-srv.frames).Type)
	require.NoError(t, c.CloseWithError(CodeInternalError, "gone"))
	require.ErrorIs(t, <-errc, CodeInternalError)
	_, err := c.Ping(testCtx(t))
	require.ErrorIs(t, err, CodeInternalError, "a Ping on a closed connection fails at once")
}

func TestPingAfterDialEarlyWaitsForHello(t *testing.T) {
	ln := listen(t, &Config{Mode: ModeEcho})
	c, err := DialEarly(testCtx(t), ln.Addr().String(), testTLS(t).client, nil)
	require.NoError(t, err)
	defer c.CloseWithError(CodeNoError, "")
	_, err = c.Ping(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, ModeEcho, c.PeerMode())
}

// rawServer is a quicmsg server written with plain quic-go that answers
// one connection's HELLO with its own and passes on the client's later
// control frames; it answers a graceful close by closing.
type rawServer struct {
	addr   string
	frames chan wire.Control // the client's frames after its HELLO; closed at the end
	mu     sync.Mutex
	s      *quic.Stream
}

func newRawServer(t *testing.T, h wire.Hello) *rawServer {
	t.Helper()
	tc, err := serverTLS(testTLS(t).server)
	require.NoError(t, err)
	ln, err := quic.ListenAddr("127.0.0.1:0", tc, &quic.Config{})
	require.NoError(t, err)
	srv := &rawServer{addr: ln.Addr().String(), frames: make(chan wire.Control, 64)}
	h.Version, h.MaxMessageSize, h.PendingCap = wire.Version, 1<<20, 10
	h.SessionID = make([]byte, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(srv.frames)
		srv.serve(ctx, ln, h)
	}()
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		<-done
	})
	return srv
}

// serve serves one connection until it ends or ctx does.
func (srv *rawServer) serve(ctx context.Context, ln *quic.Listener, h wire.Hello) {
	qc, err := ln.Accept(ctx)
	if err != nil {
		return
	}
	defer qc.CloseWithError(0, "")
	s, err := qc.AcceptStream(ctx)
	if err != nil {
		return
	}
	sr := newControlReader(s)
	if sr.fill(1) != nil || sr.buffered()[0] != wire.StreamControl {
		return
	}
	sr.consume(1)
	if _, err := readControlFrame(sr); err != nil {
		return
	}
	srv.mu.Lock()
	srv.s = s
	srv.mu.Unlock()
	srv.write(wire.AppendControl(nil, wire.Control{Type: wire.ControlHello, Hello: h}))
	// Ends the reads below when the test is over.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
			s.CancelRead(0)
		case <-stop:
		}
	})
	defer wg.Wait()
	defer close(stop)
	for {
		f, err := readControlFrame(sr)
		if err != nil {
			return
		}
		if f.Type == wire.ControlGoAway && f.Code == uint64(CodeNoError) {
			_ = qc.CloseWithError(0, "")
		}
		select {
		case srv.frames <- f:
		case <-ctx.Done():
			return
		}
	}
}

func (srv *rawServer) write(b []byte) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	_, _ = srv.s.Write(b)
}

func dialRaw(t *testing.T, srv *rawServer) *Conn {
	t.Helper()
	c, err := Dial(testCtx(t), srv.addr, testTLS(t).client, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseWithError(CodeNoError, "") })
	return c
}

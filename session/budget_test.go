package session

import (
	"context"
	"encoding/binary"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
	"github.com/quicmsg/quicmsg/transport"
)

func TestDefaultServerBudgetIsAShareOfTheMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	debug.SetMemoryLimit(4 << 30)
	require.Equal(t, (4<<30)/ServerPendingMemoryLimitShare, DefaultServerPendingBytes())
	debug.SetMemoryLimit(math.MaxInt64)
	if total, ok := memTotal(); ok {
		require.Equal(t, int(total/ServerPendingPhysicalShare), DefaultServerPendingBytes())
	} else {
		require.Equal(t, FallbackServerPendingBytes, DefaultServerPendingBytes())
	}
}

func TestByteBudgetSlowsDownBeforeMessageCap(t *testing.T) {
	release := make(chan struct{})
	const budget, size = 1 << 20, 64 << 10
	srv, addr := startServer(t, &Config{PendingCap: 1000, PendingBytes: budget}, HandlerFunc(func(ctx context.Context, s *Session, m Message) {
		select {
		case <-release:
		case <-ctx.Done():
		}
	}))
	c := dial(t, addr, nil)
	require.Equal(t, budget, c.PeerLimits().PendingBytes, "the budget is advertised in HELLO")
	require.Equal(t, 1000, c.PeerLimits().PendingCap)
	ctx := testCtx(t)
	ch, err := c.OpenChannel(ctx, "big")
	require.NoError(t, err)
	const count = 40
	sent := make(chan error, 1)
	go func() {
		for range count {
			if err := ch.Send(ctx, make([]byte, size)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	// The client closes only once the server has read everything: a
	// CONNECTION_CLOSE behind a window of data can be dropped by quic-go's
	// queue of unprocessed packets (see flood).
	defer func() {
		close(release)
		require.NoError(t, <-sent)
		// Real sockets, so the wall clock: the messages cross QUIC (see helpers_test.go).
		require.Eventually(t, func() bool { return srv.Stats().MessagesHandled == count }, 20*time.Second, 5*time.Millisecond)
	}()
	var sess *Session
	// Real sockets, so the wall clock: SLOW_DOWN reaches the client over its QUIC control stream (see helpers_test.go).
	require.Eventually(t, func() bool {
		if ss := srv.Sessions(); len(ss) == 1 {
			sess = ss[0]
		}
		return sess != nil && sess.BackpressureActive() && c.PeerSlowedDown()
	}, 20*time.Second, 5*time.Millisecond)
	st := sess.Stats()
	require.Less(t, st.Pending, 1000, "the byte budget fired long before the message cap")
	require.LessOrEqual(t, st.PendingBytes, int64(budget+size), "one reader holds at most one message beyond the budget")
	require.Equal(t, st.PendingBytes, srv.Stats().PendingBytes)
}

// A client of this project that honours SLOW_DOWN floods four channels with
// small messages at a handler that stalls until the flood has reached the
// cap and the server has taken everything that was under way, under
// OverflowDisconnect: what its send buffers held when the signal arrived is
// within the allowance, so it is never shed and everything it sent is
// handled.
func TestClientObeyingSlowDownIsNeverShed(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	stop := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(stop)
	var handled atomic.Int64
	srv, addr := startServer(t, &Config{PendingCap: 1000, Overflow: OverflowDisconnect}, HandlerFunc(func(ctx context.Context, s *Session, m Message) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		handled.Add(1)
	}))
	c := dial(t, addr, nil)
	ctx := testCtx(t)
	const channels, n = 4, 5000
	var wg sync.WaitGroup
	errs := make([]error, channels)
	for i := range channels {
		ch, err := c.OpenChannel(ctx, "flood-"+string(rune('a'+i)))
		require.NoError(t, err)
		wg.Go(func() {
			msg := make([]byte, 64)
			for j := range n {
				binary.BigEndian.PutUint32(msg, uint32(j))
				if errs[i] = ch.Send(ctx, msg); errs[i] != nil {
					return
				}
			}
			errs[i] = ch.Flush(ctx)
		})
	}
	// Real sockets, so the wall clock: the flood and the SLOW_DOWN that stops it cross QUIC (see helpers_test.go).
	require.Eventually(t, func() bool { return c.PeerSlowedDown() || c.Context().Err() != nil }, 20*time.Second, time.Millisecond)
	waitStalled(t, srv, 1000)
	require.NoError(t, context.Cause(c.Context()), "the client was not disconnected while the handler stalled")
	stop()
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return handled.Load() == channels*n || c.Context().Err() != nil }, 60*time.Second, 5*time.Millisecond)
	require.NoError(t, context.Cause(c.Context()), "the client was not disconnected")
	require.Equal(t, int64(channels*n), handled.Load())
	require.GreaterOrEqual(t, srv.Stats().BackpressureEvents, uint64(1), "the flood did reach the cap")
	require.Zero(t, srv.Stats().OverloadDisconnects)
}

// A raw peer that ignores SLOW_DOWN on four channels is shed, and the
// session counts once in OverloadDisconnects, not once per channel reader.
func TestPeerIgnoringSlowDownIsShedOncePerSession(t *testing.T) {
	srv, addr := startStalledSheddingServer(t, Config{PendingCap: 1000})
	raw := dialRaw(t, addr)
	floodUntilClosed(t, raw)
	var ae *quic.ApplicationError
	require.ErrorAs(t, context.Cause(raw.qc.Context()), &ae)
	require.Equal(t, quic.ApplicationErrorCode(transport.CodeOverloaded), ae.ErrorCode)
	require.Contains(t, ae.ErrorMessage, "after SLOW_DOWN")
	// Real sockets, so the wall clock: the server learns of the closed connection from quic-go (see helpers_test.go).
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 0 }, 20*time.Second, 5*time.Millisecond)
	require.Equal(t, uint64(1), srv.Stats().OverloadDisconnects)
}

// A raw peer that advertises a 1 TiB send buffer in HELLO and ignores
// SLOW_DOWN is shed all the same: the receiver counts at most
// transport.MaxAdvertisedSendBuffer of it in the allowance, so the peer
// trips it after about 2 MiB here rather than never.
func TestPeerAdvertisingHugeSendBufferIsShed(t *testing.T) {
	srv, addr := startStalledSheddingServer(t, Config{PendingCap: 1000, PendingBytes: 64 << 10})
	raw := dialRawHello(t, addr, wire.Hello{Version: wire.Version, MaxMessageSize: 1 << 20, PendingCap: 1000, SendBuffer: 1 << 40})
	// Real sockets, so the wall clock: the session starts once the server has read the raw HELLO (see helpers_test.go).
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 1 }, 20*time.Second, 5*time.Millisecond)
	require.Equal(t, transport.MaxAdvertisedSendBuffer, srv.Sessions()[0].Conn().PeerLimits().SendBufferSize)
	// 4000 messages of 1000 bytes: about twice the clamped allowance
	// (2 × 64 KiB + 2 × 1 MiB), far below the one the peer asked for.
	const count = 4000
	frames := wire.AppendChannelHeader(nil, "flood")
	for range count {
		frames = wire.AppendMessage(frames, 0, make([]byte, 1000))
	}
	s, err := raw.qc.OpenStreamSync(testCtx(t))
	require.NoError(t, err)
	var wg sync.WaitGroup
	defer func() { _ = raw.qc.CloseWithError(0, ""); wg.Wait() }()
	// The write ends early with the server's close: that is the point.
	wg.Go(func() { _, _ = s.Write(frames) })
	require.Eventually(t, func() bool {
		return raw.qc.Context().Err() != nil || srv.Stats().MessagesReceived == count
	}, 30*time.Second, 5*time.Millisecond)
	var ae *quic.ApplicationError
	require.ErrorAs(t, context.Cause(raw.qc.Context()), &ae, "the peer took all %d messages without being shed", count)
	require.Equal(t, quic.ApplicationErrorCode(transport.CodeOverloaded), ae.ErrorCode)
	require.Contains(t, ae.ErrorMessage, "after SLOW_DOWN")
	require.Less(t, srv.Stats().MessagesReceived, uint64(count))
	require.Equal(t, uint64(1), srv.Stats().OverloadDisconnects)
}

func TestAllowanceArithmeticSaturates(t *testing.T) {
	require.Equal(t, int64(5), satAdd(2, 3))
	require.Equal(t, int64(math.MaxInt64), satAdd(math.MaxInt64-1, 2))
	require.Equal(t, int64(6), satMul(2, 3))
	require.Equal(t, int64(0), satMul(0, math.MaxInt64))
	require.Equal(t, int64(math.MaxInt64), satMul(2, 1<<62))
	require.Equal(t, int64(math.MaxInt64), satMul(100, math.MaxInt64/64))
}

// floodFigures is what runFlood measured.
type floodFigures struct {
	heapGrowth   int64 // server and clients, bytes
	formula      int64 // bytes the documented bounds allow for both
	pending      int64 // the server's pending bytes at the measurement
	received     uint64
	roundTrips   int // healthy session's round trips while the flood was held
	maxRoundTrip time.Duration
	rtts         []time.Duration
}

// floodSetup configures runFlood.
type floodSetup struct {
	clients    int // raw flooders ignoring SLOW_DOWN
	perClient  int // 1 MiB messages each tries to send
	roundTrips int
	cfg        Config
}

// runFlood starts a server whose handler stalls on channel "flood" and
// echoes elsewhere, connects one healthy client and setup.clients raw peers
// that each write 1 MiB messages on channel "flood" without heeding
// SLOW_DOWN, waits until the server stops taking more, and measures the heap
// growth of this process (server and clients) after a GC against the
// documented bound: min(server budget + clients × message, clients ×
// (session budget + message)) + clients × connection window on the server
// side, clients × window (what the sender keeps until it is
// acknowledged) on the client side, and 256 KiB per connection for its
// fixed costs. Then the healthy client makes its round trips.
func runFlood(t *testing.T, setup floodSetup) floodFigures {
	release := make(chan struct{})
	var releaseOnce sync.Once
	stop := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(stop)
	var floodsEnded atomic.Int64 // flood channels whose reader ended
	onClose := setup.cfg.OnChannelClose
	setup.cfg.OnChannelClose = func(s *Session, name string) {
		if name == "flood" {
			floodsEnded.Add(1)
		}
		if onClose != nil {
			onClose(s, name)
		}
	}
	srv, addr := startServer(t, &setup.cfg, HandlerFunc(func(ctx context.Context, s *Session, m Message) {
		if m.Channel != "flood" {
			_ = s.Send(ctx, m.Channel, m.Data)
			return
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
	}))
	cfg, err := setup.cfg.withDefaults()
	require.NoError(t, err)
	const msgSize = 1 << 20
	frame := wire.AppendChannelHeader(nil, "flood")
	frame = wire.AppendMessage(frame, 0, make([]byte, msgSize))
	header := len(wire.AppendChannelHeader(nil, "flood"))

	healthy := dial(t, addr, nil)
	ctx := testCtx(t)
	rt, err := healthy.OpenChannel(ctx, "rt")
	require.NoError(t, err)
	raws := make([]*rawClient, setup.clients)
	for i := range raws {
		raws[i] = dialRaw(t, addr)
	}
	// Real sockets, so the wall clock: the sessions start once the server has read each HELLO (see helpers_test.go).
	require.Eventually(t, func() bool { return srv.ActiveSessions() == setup.clients+1 }, 20*time.Second, 5*time.Millisecond)
	before := heapAlloc()

	flood(t, raws, frame, header, setup.perClient, func() bool { return floodsEnded.Load() == int64(setup.clients) })
	waitStalled(t, srv, uint64(setup.clients))
	after := heapAlloc()
	f := floodFigures{heapGrowth: after - before, pending: srv.Stats().PendingBytes, received: srv.Stats().MessagesReceived}
	window := int64(cfg.Transport.MaxConnectionReceiveWindow)
	if window == 0 {
		window = transport.DefaultMaxConnectionReceiveWindow
	}
	n := int64(setup.clients)
	held := min(int64(cfg.ServerPendingBytes)+n*msgSize, n*(int64(cfg.PendingBytes)+msgSize))
	f.formula = held + n*window + n*window + (n+1)*256<<10

	for range setup.roundTrips {
		start := time.Now()
		require.NoError(t, rt.Send(ctx, []byte("ping")))
		got, err := rt.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, "ping", string(got))
		f.roundTrips++
		f.rtts = append(f.rtts, time.Since(start))
		f.maxRoundTrip = max(f.maxRoundTrip, time.Since(start))
	}
	require.NoError(t, healthy.Context().Err(), "the healthy session is unaffected")
	stop()
	return f
}

// flood makes every raw client write count messages of frame (which
// starts with a channel header of header bytes) on a new stream, in the
// background, until the writes are done or the test ends. At the end the
// writes stop with a stream reset and the clients close only once ended
// reports that the server has seen every reset: a CONNECTION_CLOSE that
// arrives behind a connection window of data can be dropped by quic-go's
// queue of 256 unprocessed packets, and the server would then learn of
// the close only at its idle timeout, after the test's Server.Close had
// waited out Config.CloseTimeout.
func flood(t *testing.T, raws []*rawClient, frame []byte, header, count int, ended func() bool) {
	var wg sync.WaitGroup
	streams := make([]*quic.Stream, 0, len(raws))
	t.Cleanup(func() {
		for _, s := range streams {
			s.CancelWrite(0)
		}
		wg.Wait()
		// Real sockets, so the wall clock: the resets reach the server over QUIC (see helpers_test.go).
		require.Eventually(t, ended, 20*time.Second, 5*time.Millisecond, "the server never saw the flood channels end")
	})
	for _, r := range raws {
		s, err := r.qc.OpenStreamSync(testCtx(t))
		require.NoError(t, err)
		streams = append(streams, s)
		wg.Go(func() {
			if _, err := s.Write(frame); err != nil {
				return
			}
			for range count - 1 {
				if _, err := s.Write(frame[header:]); err != nil {
					return
				}
			}
		})
	}
}

// waitStalled waits until the server has received at least least messages
// and then nothing more for a second: the senders are held back.
func waitStalled(t *testing.T, srv *Server, least uint64) {
	t.Helper()
	const quietFor = 20 // polls of 50 ms
	deadline := time.Now().Add(60 * time.Second)
	for srv.Stats().MessagesReceived < least && time.Now().Before(deadline) {
		// Real sockets, so the wall clock: "held back" means QUIC flow control stopped real senders; only the wall clock shows that nothing more arrives (see helpers_test.go).
		time.Sleep(10 * time.Millisecond)
	}
	last, quiet := srv.Stats().MessagesReceived, 0
	for quiet < quietFor && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if r := srv.Stats().MessagesReceived; r != last {
			last, quiet = r, 0
			continue
		}
		quiet++
	}
	require.GreaterOrEqual(t, last, least, "the senders' messages never arrived")
	require.Equal(t, quietFor, quiet, "the server kept receiving: nothing held the senders back")
}

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// Ten peers flood 1 MiB messages at a stalled handler, ignoring SLOW_DOWN;
// the server's budget holds, the heap grows no more than the documented
// formula, and a healthy session beside them keeps its round trips.
func TestFloodOfLargeMessagesStaysWithinMemoryFormula(t *testing.T) {
	f := runFlood(t, floodSetup{clients: 10, perClient: 24, roundTrips: 20, cfg: Config{
		PendingBytes:       4 << 20,
		ServerPendingBytes: 12 << 20,
		Transport: transport.Config{
			MaxStreamReceiveWindow:     2 << 20,
			MaxConnectionReceiveWindow: 2 << 20,
		},
	}})
	t.Logf("heap growth %d MiB, formula %d MiB, pending %d MiB, %d messages received, max round trip %v",
		f.heapGrowth>>20, f.formula>>20, f.pending>>20, f.received, f.maxRoundTrip)
	require.LessOrEqual(t, f.pending, int64(12<<20+10*(1<<20)), "server budget plus one message per reader")
	require.LessOrEqual(t, f.heapGrowth, f.formula)
	require.Equal(t, 20, f.roundTrips)
}

// A message that takes a client past the allowance under
// OverflowDisconnect was returned by Receive, which may have acknowledged
// it: the shedding session queues it, and those its other readers had
// received, like any other, so that every message read is handled or
// pending, never dropped.
func TestShedSessionKeepsEveryMessageItRead(t *testing.T) {
	var sess atomic.Pointer[Session]
	srv, addr := startStalledSheddingServer(t, Config{PendingCap: 1000, OnSessionStart: func(s *Session) { sess.Store(s) }})
	raw := dialRaw(t, addr)
	floodUntilClosed(t, raw)
	// Real sockets, so the wall clock: the server learns of the closed connection from quic-go (see helpers_test.go).
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 0 }, 20*time.Second, 5*time.Millisecond)
	// The session leaves the server's table before its readers end: a
	// reader may still be between Receive and the pending queue.
	sess.Load().readers.Wait()
	st := sess.Load().Stats()
	require.Equal(t, st.MessagesReceived, st.MessagesHandled+uint64(st.Pending), "every message read is handled or pending")
}

// floodUntilClosed writes 4000 messages of 64 bytes on each of 4 channels
// of raw, ignoring SLOW_DOWN, until the server closes the connection.
func floodUntilClosed(t *testing.T, raw *rawClient) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range 4 {
		frames := wire.AppendChannelHeader(nil, "flood-"+string(rune('a'+i)))
		for range 4000 {
			frames = wire.AppendMessage(frames, 0, make([]byte, 64))
		}
		s, err := raw.qc.OpenStreamSync(testCtx(t))
		if err != nil {
			// The server may shed the client before its last channels
			// open: what was sent already took it past the allowance.
			var ae *quic.ApplicationError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, quic.ApplicationErrorCode(transport.CodeOverloaded), ae.ErrorCode)
			break
		}
		// The writes end early with the server's close: that is the point.
		wg.Go(func() { _, _ = s.Write(frames) })
	}
	<-raw.qc.Context().Done()
	wg.Wait()
}

// A message leaves the pending count as its handler returns, not with the
// batch the worker took it in: a handler that blocks on the third message
// holds back only that one (the first two are counted handled and their
// room is free).
func TestHandledMessagesLeavePendingOneByOne(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv, addr := startServer(t, &Config{PendingCap: 1000}, HandlerFunc(func(ctx context.Context, s *Session, m Message) {
		if string(m.Data) != "m3" {
			return
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
	}))
	c := dial(t, addr, nil)
	ctx := testCtx(t)
	ch, err := c.OpenChannel(ctx, "work")
	require.NoError(t, err)
	// Sent in one go, so that the worker takes them in one batch.
	_, err = ch.SendMsgs(ctx, []transport.Message{{Data: []byte("m1")}, {Data: []byte("m2")}, {Data: []byte("m3")}})
	require.NoError(t, err)
	var st SessionStats
	require.Eventually(t, func() bool {
		ss := srv.Sessions()
		if len(ss) != 1 {
			return false
		}
		st = ss[0].Stats()
		return st.MessagesReceived == 3 && st.MessagesHandled == 2
	}, 20*time.Second, 5*time.Millisecond, "stats: %+v", &st)
	require.Equal(t, 1, st.Pending, "only the message whose handler blocks is pending")
}

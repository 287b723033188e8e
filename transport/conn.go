package transport

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// SessionID identifies a session. The server assigns it in the HELLO
// exchange; it is random and unique across server restarts.
type SessionID [16]byte

// String returns the ID in hexadecimal.
func (id SessionID) String() string { return hex.EncodeToString(id[:]) }

// GoAway is what a peer said in its GOAWAY frame.
type GoAway struct {
	Code   ErrorCode
	Reason string
}

// Limits are the receive limits a side announces in its HELLO.
type Limits struct {
	MaxMessageSize int
	PendingCap     int
	// PendingBytes is the budget of unhandled message bytes; 0 from a peer
	// that did not announce one.
	PendingBytes int
	// SendBufferSize is the side's send buffer per channel, in bytes: what
	// a conforming sender may still write on a channel, twice over (the
	// batch being written and the one behind it), after SLOW_DOWN reached
	// it. A peer that did not announce one is taken to use
	// DefaultSendBufferSize; what a peer announced counts up to
	// max(MaxAdvertisedSendBuffer, this side's Config.SendBufferSize).
	SendBufferSize int
}

// ConnStats are a connection's counters, summed over its channels.
type ConnStats struct {
	MessagesSent     uint64 // messages accepted by Send
	MessagesWritten  uint64 // messages written to QUIC streams
	MessagesReceived uint64 // messages returned by Receive
	BytesSent        uint64 // payload bytes accepted by Send
	BytesReceived    uint64 // payload bytes returned by Receive
	RejectedChannels uint64 // incoming streams reset for a bad channel header
}

// Conn is a quicmsg connection: a QUIC connection with a control stream and
// any number of named channels. All methods are safe for concurrent use.
type Conn struct {
	qc       *quic.Conn
	cfg      Config
	isClient bool
	ctrl     *quic.Stream

	// The session ID and the peer's limits are known once ready is closed:
	// at once for Dial and Accept, after the server's HELLO for DialEarly.
	ready     chan struct{}
	id        SessionID
	peer      Limits
	peerMax   atomic.Int64 // peer.MaxMessageSize, read on every Send
	earlyData bool         // DialEarly returned before the handshake completed
	rejected  atomic.Bool  // the server refused our 0-RTT data
	early     []*Channel   // channels opened by DialEarly

	ctx    context.Context
	cancel context.CancelCauseFunc

	ctrlMu     sync.Mutex // serialises writes on ctrl
	ctrlBuf    []byte
	localSlow  bool // we asked the peer to slow down
	ctrlClosed bool

	peerSlow atomic.Bool // fast path for Send

	mu          sync.Mutex
	resumed     chan struct{} // closed when the peer resumes
	goAway      *GoAway
	goAwayCh    chan struct{}
	peerOpened  uint64 // channels the peer opened, from its closing GOAWAY
	peerClosing bool   // the peer sent a closing GOAWAY and ended its control stream
	accepted    uint64 // incoming streams taken from QUIC
	opened      uint64 // channels this side opened
	closing     bool
	channels    map[*Channel]struct{}
	stats       ConnStats // counters of channels that are gone
	in          incoming  // the peer's new streams; see incoming.go

	wg        sync.WaitGroup // control reader, channel flushers, stream acceptor and header readers
	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error
}

// newConn wraps an established connection. peer is nil for an early client
// connection, whose control reader then waits for the server's HELLO.
func newConn(qc *quic.Conn, ctrl *quic.Stream, sr *streamReader, cfg Config, isClient bool, id SessionID, peer *wire.Hello) *Conn {
	c := &Conn{
		qc:       qc,
		cfg:      cfg,
		isClient: isClient,
		ctrl:     ctrl,
		ready:    make(chan struct{}),
		goAwayCh: make(chan struct{}),
		channels: make(map[*Channel]struct{}),
		closed:   make(chan struct{}),
	}
	if peer != nil {
		c.setPeer(id, *peer)
	} else {
		// Until the server's HELLO says otherwise, assume the default limit.
		c.peerMax.Store(DefaultMaxMessageSize)
		select {
		case <-qc.HandshakeComplete():
		default:
			c.earlyData = true
		}
	}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	context.AfterFunc(qc.Context(), func() {
		c.cancel(convertConnErr(context.Cause(qc.Context())))
	})
	c.wg.Add(1)
	go c.readControl(sr)
	return c
}

func (c *Conn) setPeer(id SessionID, h wire.Hello) {
	c.id = id
	c.peer = Limits{
		MaxMessageSize: int(min(h.MaxMessageSize, MaxMessageSizeLimit)),
		PendingCap:     int(min(h.PendingCap, 1<<31)),
		PendingBytes:   int(min(h.PendingBytes, 1<<62)),
		SendBufferSize: int(min(h.SendBuffer, uint64(max(MaxAdvertisedSendBuffer, c.cfg.SendBufferSize)))),
	}
	if c.peer.SendBufferSize == 0 {
		c.peer.SendBufferSize = DefaultSendBufferSize
	}
	c.peerMax.Store(int64(c.peer.MaxMessageSize))
	close(c.ready)
}

// Ready returns a channel that is closed once the HELLO exchange is
// complete: at once for connections from Dial and Accept, when the server's
// HELLO arrives for DialEarly.
func (c *Conn) Ready() <-chan struct{} { return c.ready }

// WaitReady waits until the HELLO exchange is complete, which on a
// connection from DialEarly proves that the server accepted the session
// (and, with mutual TLS, this client's certificate). If the connection ends
// first it returns a [*DialError] that names the fault, as Dial would.
func (c *Conn) WaitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-c.ctx.Done():
		return dialError(c.qc.RemoteAddr().String(), c.cfg.HandshakeTimeout, context.Cause(c.ctx))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SessionID returns the ID the server assigned to this connection; it is
// the zero ID until [Conn.Ready] is closed.
func (c *Conn) SessionID() SessionID {
	select {
	case <-c.ready:
		return c.id
	default:
		return SessionID{}
	}
}

// PeerLimits returns the receive limits the peer announced, each counted up
// to what this side accepts of it (MaxMessageSizeLimit,
// MaxAdvertisedSendBuffer); before [Conn.Ready] is closed, the defaults.
func (c *Conn) PeerLimits() Limits {
	select {
	case <-c.ready:
		return c.peer
	default:
		return Limits{MaxMessageSize: DefaultMaxMessageSize, PendingCap: DefaultPendingCap, SendBufferSize: DefaultSendBufferSize}
	}
}

// Limits returns the receive limits this side announced in its HELLO.
func (c *Conn) Limits() Limits {
	return Limits{
		MaxMessageSize: c.cfg.MaxMessageSize,
		PendingCap:     c.cfg.PendingCap,
		PendingBytes:   c.cfg.PendingBytes,
		SendBufferSize: c.cfg.SendBufferSize,
	}
}

// ReceiveWindow returns the largest QUIC connection receive window this side
// grants the peer (Config.MaxConnectionReceiveWindow): the most the peer can
// have sent that this side has not read.
func (c *Conn) ReceiveWindow() int { return c.cfg.MaxConnectionReceiveWindow }

// Used0RTT reports whether this connection sent data in 0-RTT that the
// server accepted. It is meaningful once the handshake has completed.
func (c *Conn) Used0RTT() bool {
	select {
	case <-c.qc.HandshakeComplete():
		return c.qc.ConnectionState().Used0RTT
	default:
		return false
	}
}

// earlyRejected reports whether the server refused our 0-RTT data.
func (c *Conn) earlyRejected() bool {
	if !c.earlyData {
		return false
	}
	if c.rejected.Load() {
		return true
	}
	select {
	case <-c.qc.HandshakeComplete():
		return !c.qc.ConnectionState().Used0RTT
	default:
		return false
	}
}

// HandshakeComplete returns a channel closed when the TLS handshake has
// completed (and, on a server, the client is authenticated).
func (c *Conn) HandshakeComplete() <-chan struct{} { return c.qc.HandshakeComplete() }

// waitHandshake waits for the handshake, for messages that must not travel
// in 0-RTT data.
func (c *Conn) waitHandshake(ctx context.Context, block bool) error {
	select {
	case <-c.qc.HandshakeComplete():
		return nil
	default:
	}
	if !block {
		return ErrWouldBlock
	}
	select {
	case <-c.qc.HandshakeComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return context.Cause(c.ctx)
	}
}

// inEarlyData reports whether writes still travel as 0-RTT data, which the
// server may yet reject.
func (c *Conn) inEarlyData() bool {
	if !c.earlyData {
		return false
	}
	select {
	case <-c.qc.HandshakeComplete():
		return false
	default:
		return true
	}
}

// Context returns a context that is cancelled when the connection closes, for
// whatever reason; context.Cause returns why (a [*ConnError] for an
// application close, a quic-go error such as *quic.IdleTimeoutError otherwise).
func (c *Conn) Context() context.Context { return c.ctx }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.qc.LocalAddr() }

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// ConnectionState returns the QUIC and TLS state of the connection.
func (c *Conn) ConnectionState() quic.ConnectionState { return c.qc.ConnectionState() }

// err returns why the connection ended, or nil while it is alive.
func (c *Conn) err() error {
	if c.ctx.Err() == nil {
		return nil
	}
	return context.Cause(c.ctx)
}

// OpenChannel opens a channel named name (1 to 255 bytes of UTF-8). It blocks
// while the peer's channel limit is reached, until ctx ends. The peer sees the
// channel at once.
func (c *Conn) OpenChannel(ctx context.Context, name string) (*Channel, error) {
	if err := wire.ValidateName(name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	// See DialEarly: no stream is created while the handshake may complete.
	if c.earlyData {
		if err := c.waitHandshake(ctx, true); err != nil {
			return nil, err
		}
	}
	return c.openChannel(ctx, name)
}

// EarlyChannels returns the channels DialEarly opened, in the order named.
func (c *Conn) EarlyChannels() []*Channel { return c.early }

func (c *Conn) openChannel(ctx context.Context, name string) (*Channel, error) {
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return nil, ErrClosed
	}
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.wrapErr(err)
	}
	ch := newChannel(c, s, name, nil)
	if !c.register(ch, true) {
		s.CancelWrite(quic.StreamErrorCode(CodeGoingAway))
		s.CancelRead(quic.StreamErrorCode(CodeGoingAway))
		return nil, ErrClosed
	}
	ch.start(wire.AppendChannelHeader(nil, name))
	return ch, nil
}

// AcceptChannel returns the next channel opened by the peer. Headers of
// new channels are read concurrently (up to 16 at once), each within
// Config.ChannelHeaderTimeout, so that a slow header does not hold up the
// channels opened after it. Channels come out in the order the peer opened
// them, except that one whose header is still incomplete is passed over
// until it is complete: a channel opened later may come out first. A
// stream whose header is malformed or late is reset with CodeProtocolError,
// counted in ConnStats.RejectedChannels and skipped; the connection carries
// on.
func (c *Conn) AcceptChannel(ctx context.Context) (*Channel, error) {
	if !c.startIncoming() {
		if err := c.err(); err != nil {
			return nil, err
		}
		return nil, ErrClosed
	}
	r, err := c.nextReady(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	ch := newChannel(c, r.s, r.name, r.sr)
	if !c.register(ch, false) {
		c.mu.Lock()
		c.accepted++
		c.mu.Unlock()
		resetStream(r.s, CodeGoingAway)
		return nil, ErrClosed
	}
	ch.start(nil)
	return ch, nil
}

func readChannelHeader(s *quic.Stream, sr *streamReader, timeout time.Duration) (string, error) {
	_ = s.SetReadDeadline(time.Now().Add(timeout))
	defer s.SetReadDeadline(time.Time{})
	return readNext(sr, parseChannelHeader)
}

// parseChannelHeader parses a channel stream's type byte and header.
func parseChannelHeader(b []byte) (string, int, error) {
	if len(b) == 0 {
		return "", 0, wire.ErrShort
	}
	if b[0] != wire.StreamChannel {
		return "", 0, fmt.Errorf("stream type 0x%02x where a channel was expected", b[0])
	}
	name, n, err := wire.ParseChannelHeader(b[1:])
	return name, 1 + n, err
}

func (c *Conn) register(ch *Channel, opened bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.ctx.Err() != nil {
		return false
	}
	// Counting an accepted channel only once it is registered keeps
	// maybeFinish from closing the connection under a channel being set up.
	if opened {
		c.opened++
	} else {
		c.accepted++
	}
	c.channels[ch] = struct{}{}
	c.wg.Add(1)
	return true
}

// forget drops a finished channel and keeps its counters.
func (c *Conn) forget(ch *Channel) {
	st := ch.stats()
	c.mu.Lock()
	delete(c.channels, ch)
	c.stats.MessagesSent += st.MessagesSent
	c.stats.MessagesWritten += st.MessagesWritten
	c.stats.MessagesReceived += st.MessagesReceived
	c.stats.BytesSent += st.BytesSent
	c.stats.BytesReceived += st.BytesReceived
	c.mu.Unlock()
}

// Stats returns the connection's counters.
func (c *Conn) Stats() ConnStats {
	c.mu.Lock()
	s := c.stats
	chans := make([]*Channel, 0, len(c.channels))
	for ch := range c.channels {
		chans = append(chans, ch)
	}
	c.mu.Unlock()
	for _, ch := range chans {
		st := ch.stats()
		s.MessagesSent += st.MessagesSent
		s.MessagesWritten += st.MessagesWritten
		s.MessagesReceived += st.MessagesReceived
		s.BytesSent += st.BytesSent
		s.BytesReceived += st.BytesReceived
	}
	return s
}

func (c *Conn) wrapErr(err error) error {
	if cerr := c.err(); cerr != nil {
		return cerr
	}
	if isConnLevel(err) {
		// quic-go fails the streams before it cancels the connection's
		// context: end Context now, so that a caller who sees this error
		// also sees the connection gone.
		c.cancel(convertConnErr(err))
		return c.err()
	}
	return convertConnErr(err)
}

// isConnLevel reports whether err is one that quic-go returns for a stream
// because its whole connection ended.
func isConnLevel(err error) bool {
	var (
		ae  *quic.ApplicationError
		te  *quic.TransportError
		ite *quic.IdleTimeoutError
		hte *quic.HandshakeTimeoutError
		sre *quic.StatelessResetError
		vne *quic.VersionNegotiationError
	)
	return errors.As(err, &ae) || errors.As(err, &te) || errors.As(err, &ite) ||
		errors.As(err, &hte) || errors.As(err, &sre) || errors.As(err, &vne) ||
		errors.Is(err, quic.ErrServerClosed) || errors.Is(err, quic.ErrTransportClosed)
}

// SlowDown asks the peer to stop sending: its Send calls wait and its
// TrySend calls fail with ErrSlowDown until [Conn.Resume]. Repeated calls send
// one signal.
func (c *Conn) SlowDown() error { return c.setLocalSlow(true) }

// Resume lets the peer send again after [Conn.SlowDown].
func (c *Conn) Resume() error { return c.setLocalSlow(false) }

func (c *Conn) setLocalSlow(slow bool) error {
	c.ctrlMu.Lock()
	defer c.ctrlMu.Unlock()
	if c.localSlow == slow {
		return nil
	}
	t := wire.ControlResume
	if slow {
		t = wire.ControlSlowDown
	}
	if err := c.writeControlLocked(wire.Control{Type: t}); err != nil {
		return err
	}
	c.localSlow = slow
	return nil
}

// PeerSlowedDown reports whether the peer has asked this side to slow down.
func (c *Conn) PeerSlowedDown() bool { return c.peerSlow.Load() }

// SendGoAway tells the peer that this side is going away, with a code and a
// reason, without closing anything: the peer should finish its work and
// reconnect, elsewhere if it can.
func (c *Conn) SendGoAway(code ErrorCode, reason string) error {
	c.ctrlMu.Lock()
	defer c.ctrlMu.Unlock()
	return c.writeControlLocked(wire.Control{Type: wire.ControlGoAway, Code: uint64(code), Reason: reason})
}

// GoAwayReceived returns a channel that is closed when the peer sends GOAWAY.
func (c *Conn) GoAwayReceived() <-chan struct{} { return c.goAwayCh }

// PeerGoAway returns what the peer said in its GOAWAY, if it sent one.
func (c *Conn) PeerGoAway() (GoAway, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.goAway == nil {
		return GoAway{}, false
	}
	return *c.goAway, true
}

func (c *Conn) writeControlLocked(f wire.Control) error {
	if c.ctrlClosed {
		return ErrClosed
	}
	c.ctrlBuf = wire.AppendControl(c.ctrlBuf[:0], f)
	if _, err := c.ctrl.Write(c.ctrlBuf); err != nil {
		return c.wrapErr(err)
	}
	return nil
}

// waitResume waits while the peer has asked us to slow down.
func (c *Conn) waitResume(ctx context.Context) error {
	for c.peerSlow.Load() {
		c.mu.Lock()
		ch := c.resumed
		c.mu.Unlock()
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return context.Cause(c.ctx)
		}
	}
	return nil
}

func (c *Conn) readControl(sr *streamReader) {
	defer c.wg.Done()
	for {
		f, err := readControlFrame(sr)
		var malformed *wire.MalformedError
		switch {
		case err == nil:
		case errors.As(err, &malformed):
			c.protocolError(err.Error())
			return
		default:
			c.controlEnded(err)
			return
		}
		if err := c.handleControl(f); err != nil {
			c.protocolError(err.Error())
			return
		}
	}
}

// controlEnded handles the end of the peer's control stream: a FIN after a
// graceful GOAWAY, a rejected 0-RTT attempt, or a failure.
func (c *Conn) controlEnded(err error) {
	switch {
	case errors.Is(err, io.EOF):
		c.mu.Lock()
		c.peerClosing = c.goAway != nil && c.goAway.Code == CodeNoError
		c.mu.Unlock()
		c.maybeFinish()
	case errors.Is(err, quic.Err0RTTRejected):
		c.rejected.Store(true)
		c.cancel(ErrEarlyDataRejected)
		_ = c.qc.CloseWithError(quic.ApplicationErrorCode(CodeNoError), "0-RTT rejected")
	case c.err() == nil:
		c.protocolError(fmt.Sprintf("control stream failed: %v", err))
	}
}

func (c *Conn) handleControl(f wire.Control) error {
	select {
	case <-c.ready:
	default:
		return c.handleEarlyHello(f)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch f.Type {
	case wire.ControlSlowDown:
		if !c.peerSlow.Load() {
			c.resumed = make(chan struct{})
			c.peerSlow.Store(true)
		}
	case wire.ControlResume:
		if c.peerSlow.Load() {
			c.peerSlow.Store(false)
			close(c.resumed)
		}
	case wire.ControlGoAway:
		first := c.goAway == nil
		c.goAway = &GoAway{Code: ErrorCode(f.Code), Reason: f.Reason}
		if ErrorCode(f.Code) == CodeNoError {
			c.peerOpened = f.Opened
		}
		if first {
			close(c.goAwayCh)
		}
	default:
		return fmt.Errorf("unexpected %s frame after the HELLO exchange", f.Type)
	}
	return nil
}

// handleEarlyHello takes the server's HELLO on a connection from DialEarly.
func (c *Conn) handleEarlyHello(f wire.Control) error {
	if f.Type != wire.ControlHello || len(f.Hello.SessionID) != len(SessionID{}) {
		return fmt.Errorf("expected the server's HELLO with a %d-byte session ID, got %s", len(SessionID{}), f.Type)
	}
	if f.Hello.Version != wire.Version {
		_ = c.qc.CloseWithError(quic.ApplicationErrorCode(CodeVersionMismatch),
			fmt.Sprintf("server speaks version %d, this client version %d", f.Hello.Version, wire.Version))
		return nil
	}
	c.setPeer(SessionID(f.Hello.SessionID), f.Hello)
	return nil
}

func (c *Conn) protocolError(reason string) {
	_ = c.qc.CloseWithError(quic.ApplicationErrorCode(CodeProtocolError), reason)
}

// maybeFinish closes the connection once a peer that is closing gracefully
// has nothing more for us: its control stream ended after a closing GOAWAY,
// every channel it opened was accepted, and every channel's receive side was
// read to its end.
func (c *Conn) maybeFinish() {
	c.mu.Lock()
	done := c.peerClosing && c.accepted >= c.peerOpened
	if done {
		for ch := range c.channels {
			if !ch.recvDone.Load() {
				done = false
				break
			}
		}
	}
	c.mu.Unlock()
	if done {
		_ = c.qc.CloseWithError(quic.ApplicationErrorCode(CodeNoError), "")
	}
}

// CloseWithError closes the connection at once with code and reason. Messages
// not yet written are discarded; the peer sees a [*ConnError] with Remote set.
func (c *Conn) CloseWithError(code ErrorCode, reason string) error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		_ = c.qc.CloseWithError(quic.ApplicationErrorCode(code), reason)
		c.wg.Wait()
		close(c.closed)
	})
	<-c.closed
	return nil
}

// Close closes the connection gracefully: it writes what Send accepted on
// every channel, tells the peer, and waits until the peer has read everything
// and closed too, or until Config.CloseTimeout. It returns an error wrapping
// ErrUnflushed if accepted messages could not be written in time, and one
// wrapping ErrInDoubt if the connection ended before the peer confirmed that
// it had read every channel to its end (it was cut short, the close timeout
// passed, or the peer was closing too): then [Channel.InDoubt] counts what
// each channel wrote and [Channel.Unsent] holds what it never wrote. Close
// is idempotent; every call waits for the first to finish.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.closeGracefully()
		c.wg.Wait()
		close(c.closed)
	})
	<-c.closed
	return c.closeErr
}

func (c *Conn) closeGracefully() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CloseTimeout)
	defer cancel()
	c.mu.Lock()
	c.closing = true
	chans := make([]*Channel, 0, len(c.channels))
	for ch := range c.channels {
		chans = append(chans, ch)
	}
	opened := c.opened
	unclaimed := c.takeAllReadyLocked()
	c.mu.Unlock()
	c.refuseReady(unclaimed)

	// Channels the peer opened that were never accepted will not be read:
	// refuse them, so that the peer does not wait for them to end.
	drained, cancelled := context.WithCancel(context.Background())
	cancelled()
	for {
		s, err := c.qc.AcceptStream(drained)
		if err != nil {
			break
		}
		s.CancelRead(quic.StreamErrorCode(CodeChannelClosed))
		s.CancelWrite(quic.StreamErrorCode(CodeChannelClosed))
		c.mu.Lock()
		c.accepted++
		c.mu.Unlock()
	}

	errs := make([]error, len(chans))
	var wg sync.WaitGroup
	for i, ch := range chans {
		wg.Go(func() { errs[i] = ch.Shutdown(ctx) })
	}
	wg.Wait()
	err := errors.Join(errs...)

	c.ctrlMu.Lock()
	werr := c.writeControlLocked(wire.Control{Type: wire.ControlGoAway, Code: uint64(CodeNoError), Opened: opened})
	if werr == nil {
		c.ctrlClosed = true
		_ = c.ctrl.Close()
	}
	c.ctrlMu.Unlock()
	confirmed := false
	if werr == nil {
		confirmed = c.awaitPeerClose(ctx)
	}
	_ = c.qc.CloseWithError(quic.ApplicationErrorCode(CodeNoError), "")
	if !confirmed {
		err = errors.Join(err, c.unconfirmed(ctx, chans))
	}
	return err
}

// awaitPeerClose waits for the peer to close after our closing GOAWAY,
// refusing channels it opens meanwhile. It reports whether the peer
// confirmed the close: it closed with NO_ERROR, which it does only once it
// has read every channel to its end, and it was not closing itself (a peer
// that closes gracefully too may have stopped reading our channels).
func (c *Conn) awaitPeerClose(ctx context.Context) bool {
	for {
		s, err := c.qc.AcceptStream(ctx)
		if err != nil {
			var ae *quic.ApplicationError
			if !errors.As(err, &ae) || !ae.Remote || ErrorCode(ae.ErrorCode) != CodeNoError {
				return false
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.goAway == nil || c.goAway.Code != CodeNoError
		}
		s.CancelRead(quic.StreamErrorCode(CodeChannelClosed))
		s.CancelWrite(quic.StreamErrorCode(CodeChannelClosed))
	}
}

// unconfirmed marks what chans wrote as in doubt after a close the peer did
// not confirm, and returns an error wrapping ErrInDoubt if anything was.
func (c *Conn) unconfirmed(ctx context.Context, chans []*Channel) error {
	cause := context.Cause(c.qc.Context())
	if ctx.Err() != nil {
		cause = fmt.Errorf("no close from the peer within the close timeout of %s", c.cfg.CloseTimeout)
	}
	var n uint64
	for _, ch := range chans {
		n += ch.markInDoubt(cause)
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d messages written, the connection ended before the peer confirmed reading them: %w", ErrInDoubt, n, convertConnErr(cause))
}

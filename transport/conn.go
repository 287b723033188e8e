package transport

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
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
	MessagesReceived uint64 // messages returned by Receive, and gap notices (which count as messages for acknowledgements)
	BytesSent        uint64 // payload bytes accepted by Send
	BytesReceived    uint64 // payload bytes returned by Receive
	// MessagesAcked counts messages the peer acknowledged (returned from
	// its Receive); 0 with acknowledgements off.
	MessagesAcked    uint64
	RejectedChannels uint64 // incoming streams reset for a bad channel header
}

// Conn is a quicmsg connection: a QUIC connection with a control stream and
// any number of named channels. All methods are safe for concurrent use.
//
// Closing follows one convention across the module: [Conn.Shutdown] is the
// graceful close, waiting until the peer confirmed it or its context ends;
// [Conn.Close] is Shutdown bounded by Config.CloseTimeout; and
// [Conn.CloseWithError] closes at once.
//
// Goroutines: the control reader (control.go) runs from the HELLO
// exchange until the connection ends, and then runs the end hook
// (connEnded); the stream acceptor and one header reader per
// new stream (incoming.go) run from the first AcceptChannel; each channel
// has a writer. All are counted in wg, end when the connection ends, and
// are waited for by the close (close.go).
type Conn struct {
	// Immutable after newConn.
	qc       *quic.Conn
	cfg      Config
	isClient bool
	ctx      context.Context
	cancel   context.CancelCauseFunc

	// The session ID and the peer's limits are written once, before ready
	// is closed (by newConn, or by the control reader on the server's HELLO
	// after DialEarly), and only read after it: at once for Dial and Accept.
	ready     chan struct{}
	id        SessionID
	peer      Limits
	peerMax   atomic.Int64 // peer.MaxMessageSize, read on every Send
	earlyData bool         // DialEarly returned before the handshake completed
	rejected  atomic.Bool  // the server refused our 0-RTT data (set by the control reader)
	remote    net.Addr     // the server's address, on a client's connection
	res       resumeInfo   // what the HELLO exchange decided about resumption; see resume.go

	// local is the local address: quic-go's own LocalAddr is not safe to
	// read while it switches a client's connection to a new path, so it is
	// kept here, set by newConn and replaced by a migration.
	local atomic.Pointer[localAddr]
	mig   migration // a client's migrations and the sockets it owns; see migrate.go

	stateOnce sync.Once             // reads state once the handshake has completed; see handshakeState
	state     *quic.ConnectionState // written once by stateOnce; a pointer keeps Conn in a smaller size class

	// acksOn says whether channels retain what they write until the peer
	// acknowledges it: this side's offer until the peer's HELLO, then
	// whether both sides offered acknowledgements. Set before ready is
	// closed. acks coalesces this side's ACK frames; see acks.go.
	acksOn atomic.Bool
	acks   acker

	// headersOn says whether both sides offered the HEADERS extension;
	// set before ready is closed.
	headersOn atomic.Bool
	// peerCaps is what the peer announced in its HELLO; set before ready
	// is closed.
	peerCaps Capabilities

	// rare holds what few connections use (see connRare); nil until one
	// of them is first needed, so that an idle connection does not carry it.
	rare atomic.Pointer[connRare]

	// tracker is the listener that holds this server connection for its
	// Close (Listener.track), told when the connection ends.
	tracker atomic.Pointer[Listener]

	ctrl controlWriter  // this side's control frames; see control.go
	sig  peerSignals    // what the peer said on its control stream; see control.go
	rs   resumeExchange // the RESUME_STATE exchange; see resumestate.go
	req  requests       // Request's inbox and the requests waiting on it; see request.go

	// mu guards the channel set, the counters of channels that are gone,
	// the graceful-close state and the incoming streams.
	mu       sync.Mutex
	channels map[*Channel]struct{}      // added by OpenChannel and AcceptChannel, removed by Channel.Close/Reset
	byStream map[quic.StreamID]*Channel // the same channels by stream ID, for ACK frames, and those gone that still await one
	awaiting int                        // channels gone from channels that byStream keeps for their ACKs; at most MaxChannels
	// confirmed says that this side's graceful close was confirmed by the
	// peer, which had then read everything this side wrote.
	confirmed atomic.Bool
	stats     ConnStats  // counters of channels that are gone
	cs        closeState // see close.go
	in        incoming   // the peer's new streams; see incoming.go

	wg  sync.WaitGroup // control reader, channel writers, stream acceptor and header readers
	end closer         // the one close of the connection; see close.go
}

// newConn wraps an established connection. peer is nil for an early client
// connection, whose control reader then waits for the server's HELLO (and
// sets res). The caller starts the control reader on the stream reader
// it read the HELLO with.
func newConn(qc *quic.Conn, ctrl *quic.Stream, cfg Config, isClient bool, id SessionID, peer *wire.Hello, res resumeInfo) *Conn {
	c := &Conn{
		qc:       qc,
		cfg:      cfg,
		isClient: isClient,
		ctrl:     controlWriter{s: ctrl},
		sig:      peerSignals{goAwayCh: make(chan struct{})},
		channels: make(map[*Channel]struct{}),
		byStream: make(map[quic.StreamID]*Channel),
		res:      res,
	}
	c.acksOn.Store(!cfg.DisableAcks)
	c.acks.maxBytes = max(1, cfg.AckWindow/ackBytesDivisor)
	c.acks.flush = c.flushAcks
	c.local.Store(&localAddr{qc.LocalAddr()})
	if isClient { // migrations are the client's; a server's Conn holds no migration state
		c.remote = qc.RemoteAddr()
		c.mig.done = make(chan struct{})
		c.mig.turn = make(chan struct{}, 1)
	}
	if peer != nil {
		c.ready = closedReady // the HELLO exchange is complete
		c.setPeer(id, *peer)
	} else {
		c.ready = make(chan struct{}) // closed by handleEarlyHello
		// Until the server's HELLO says otherwise, assume the default limit.
		c.peerMax.Store(DefaultMaxMessageSize)
		select {
		case <-qc.HandshakeComplete():
		default:
			c.earlyData = true
		}
	}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	// The control reader's place in wg is taken here; whoever made the
	// connection starts the reader (readControl) at once.
	c.wg.Add(1)
	return c
}

// connEnded is the end hook: it runs once quic-go's connection has ended,
// on the control reader as it ends (endOnReader). The reader lives as long
// as the connection, so that no goroutine (context.AfterFunc's) is started
// per connection for the hook.
func (c *Conn) connEnded() {
	if testHookConnEnded != nil {
		testHookConnEnded(c)
	}
	c.cancel(c.connErr(context.Cause(c.qc.Context())))
	c.stopAcks()
	if l := c.tracker.Swap(nil); l != nil { // an ended Conn does not keep its listener
		l.untrack(c)
	}
	if c.isClient {
		c.mig.release()
	}
}

// testHookConnEnded, set only by tests, runs first in the end hook.
var testHookConnEnded func(*Conn)

// endOnReader waits, on the control reader as it ends, for quic-go's
// connection to end (quic-go fails the streams a moment before it cancels
// the connection's context), and runs the end hook.
func (c *Conn) endOnReader() {
	<-c.qc.Context().Done()
	c.connEnded()
}

// setPeer records the peer's HELLO and the session ID. It does not close
// ready: a Conn made after the HELLO exchange has closedReady, and
// handleEarlyHello closes an early client's own.
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
	acks := !c.cfg.DisableAcks && h.Acks
	c.acksOn.Store(acks)
	c.headersOn.Store(!c.cfg.noHeaders && h.Headers)
	c.peerCaps = capabilitiesOf(&h)
	if h.Mode != "" {
		c.rareState().peerMode = h.Mode
	}
	c.acks.mu.Lock()
	c.acks.on = acks
	c.acks.mu.Unlock()
}

// connRare is the part of a Conn that few connections use. Its fields
// are independent: each is written once, as its comment says, or guards
// itself.
type connRare struct {
	early    []*Channel // channels opened by DialEarly, set before DialEarly returns
	peerMode string     // the peer's MODE, set with its HELLO before ready is closed
	pings    pings      // this side's pings awaiting their PONG; see ping.go
}

// rareState returns c.rare, making it if it is not there yet.
func (c *Conn) rareState() *connRare {
	if r := c.rare.Load(); r != nil {
		return r
	}
	c.rare.CompareAndSwap(nil, &connRare{pings: newPings()})
	return c.rare.Load()
}

// closedReady is the ready channel of every Conn made after its HELLO
// exchange: one closed channel for all, not one each.
var closedReady = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// Ready returns a channel that is closed once the HELLO exchange is
// complete: at once for connections from Dial and Accept, when the server's
// HELLO arrives for DialEarly.
func (c *Conn) Ready() <-chan struct{} { return c.ready }

// WaitReady waits until the HELLO exchange is complete, which on a
// connection from DialEarly proves that the server accepted the session
// (and, with mutual TLS, this client's certificate). If the connection ends
// first it returns a [*DialError] that names the fault, or the
// [*ResumeError] of a refused Config.Resume, as Dial would.
func (c *Conn) WaitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-c.ctx.Done():
		if re := resumeFailure(c.cfg.Resume, context.Cause(c.ctx)); re != nil {
			return re
		}
		return dialError(dialBounds{addr: c.RemoteAddr().String(), handshake: c.cfg.HandshakeTimeout}, context.Cause(c.ctx))
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
func (c *Conn) Limits() Limits { return c.cfg.advertised() }

// ReceiveWindow returns the largest QUIC connection receive window this side
// grants the peer (Config.MaxConnectionReceiveWindow): the most the peer can
// have sent that this side has not read.
func (c *Conn) ReceiveWindow() int { return c.cfg.MaxConnectionReceiveWindow }

// Used0RTT reports whether this connection sent data in 0-RTT that the
// server accepted. It is meaningful once the handshake has completed.
func (c *Conn) Used0RTT() bool {
	select {
	case <-c.qc.HandshakeComplete():
		return c.handshakeState().Used0RTT
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
		return !c.handshakeState().Used0RTT
	default:
		return false
	}
}

// HandshakeComplete returns a channel closed when the TLS handshake has
// completed (and, on a server, the client is authenticated).
func (c *Conn) HandshakeComplete() <-chan struct{} { return c.qc.HandshakeComplete() }

// HandshakeStarted returns when the connection's first packet reached the
// server's [Listener], before any cryptography: with the time its session
// began, it gives how long the QUIC handshake and the HELLO exchange took.
// It returns the zero time on a client's connection and on one accepted
// from a quic.Transport of the caller's (ListenTransport).
func (c *Conn) HandshakeStarted() time.Time {
	if tok, ok := c.qc.Context().Value(handshakeTokenKey{}).(*handshakeToken); ok {
		return tok.start
	}
	return time.Time{}
}

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

// LocalAddr returns the local network address: on a client's connection,
// that of the socket it last moved to with [Conn.Migrate] or
// [Conn.MigrateAddr], once that returned.
func (c *Conn) LocalAddr() net.Addr { return c.local.Load().Addr }

// RemoteAddr returns the peer's network address. On a server's
// connection it follows the client when the client's address changes (a
// migration, or a NAT that rebinds the client to another port).
func (c *Conn) RemoteAddr() net.Addr {
	if c.isClient {
		return c.remote
	}
	return c.qc.RemoteAddr()
}

// ConnectionState returns the QUIC and TLS state of the connection. Once
// the handshake has completed it is read once and kept (its GSO field then
// describes the socket the connection had at that time).
func (c *Conn) ConnectionState() quic.ConnectionState {
	select {
	case <-c.qc.HandshakeComplete():
		return c.handshakeState()
	default:
	}
	if c.mig.turn == nil { // a server's side: no migration switches its paths
		return c.qc.ConnectionState()
	}
	// Before the handshake completes, the live state is read holding the
	// migration turn, so that no migration switches paths under the read;
	// a migration that holds the turn waits for the handshake, after
	// which the kept state is returned.
	select {
	case c.mig.turn <- struct{}{}:
		defer c.endTurn()
		return c.qc.ConnectionState()
	case <-c.qc.HandshakeComplete():
		return c.handshakeState()
	}
}

// handshakeState returns quic-go's ConnectionState, read once after the
// handshake completed. quic-go reads the connection's socket in
// ConnectionState without synchronising with the switch to a new path, so
// it is read only before a migration can begin (Migrate reads it first)
// and kept. Call it only once the handshake has completed.
func (c *Conn) handshakeState() quic.ConnectionState {
	c.stateOnce.Do(func() {
		st := c.qc.ConnectionState()
		c.state = &st
	})
	return *c.state
}

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
	return c.openChannel(ctx, name, ChannelOptions{}, false)
}

// EarlyChannels returns the channels DialEarly opened, in the order named.
func (c *Conn) EarlyChannels() []*Channel {
	if r := c.rare.Load(); r != nil {
		return r.early
	}
	return nil
}

// openChannel opens a channel with opts; sendOpts says whether its header
// carries them (the peer knows CHANNEL_OPTS) or only this side applies them.
func (c *Conn) openChannel(ctx context.Context, name string, opts ChannelOptions, sendOpts bool) (*Channel, error) {
	c.mu.Lock()
	closing := c.cs.closing
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
	ch := newChannel(c, s, name, opts, nil)
	if !c.register(ch, true) {
		resetStream(s, CodeGoingAway)
		return nil, ErrClosed
	}
	ch.applyPriority()
	hdr := wire.ChannelOptions{}
	if sendOpts {
		hdr = opts.toWire()
	}
	ch.start(wire.AppendChannelHeaderWith(nil, name, hdr))
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
	if err := c.startIncoming(); err != nil {
		return nil, err
	}
	r, err := c.nextReady(ctx)
	if err != nil {
		return nil, err
	}
	return c.handOut(r)
}

// handOut makes the channel of a stream whose header was read, for
// AcceptChannel or ServeChannels; once the connection is closing or gone
// it resets the stream instead.
func (c *Conn) handOut(r readyStream) (*Channel, error) {
	if err := c.err(); err != nil {
		return nil, err
	}
	ch := newChannel(c, r.s, r.hdr.name, r.hdr.opts, r.sr)
	if !c.register(ch, false) {
		resetStream(r.s, CodeGoingAway)
		return nil, ErrClosed
	}
	ch.applyPriority()
	ch.start(nil)
	return ch, nil
}

// readChannelHeader reads the header of a stream the peer opened; the
// peer has timeout to send it from the stream's first byte on. QUIC hands
// out a stream as soon as a frame of a later stream of the peer arrives (it
// opens the earlier ones implicitly), so the stream's own first frame may
// still be on its way, retransmitted after a loss: until it arrives the
// stream is only a number the peer has used, and the wait for it lasts as
// long as the connection.
func readChannelHeader(s *quic.Stream, sr *streamReader, timeout time.Duration) (streamHeader, error) {
	if err := sr.fill(1); err != nil {
		return streamHeader{}, err
	}
	_ = s.SetReadDeadline(time.Now().Add(timeout))
	defer s.SetReadDeadline(time.Time{})
	return readNext(sr, parseChannelHeader)
}

// streamHeader is what a channel stream's header says.
type streamHeader struct {
	name string
	opts ChannelOptions
}

// parseChannelHeader parses a channel stream's type byte and header, with
// or without options.
func parseChannelHeader(b []byte) (streamHeader, int, error) {
	name, opts, n, err := wire.ParseStreamHeader(b)
	return streamHeader{name: name, opts: optionsFromWire(opts)}, n, err
}

// register adds a channel this side opened (opened) or took from the peer,
// and reports whether it may be used: not once the connection is closing
// or gone. A channel is counted in the close state only here, so that a
// graceful close never ends the connection under a channel being set up.
func (c *Conn) register(ch *Channel, opened bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	alive := c.ctx.Err() == nil
	var ok bool
	if opened {
		ok = alive && c.cs.channelOpened()
	} else {
		ok = c.cs.channelAccepted() && alive
	}
	if !ok {
		return false
	}
	c.channels[ch] = struct{}{}
	c.byStream[ch.s.StreamID()] = ch
	c.wg.Add(1)
	return true
}

// channelRead is called when a channel's receive side has ended: read to
// its end, reset or refused.
func (c *Conn) channelRead() { c.finishIfDone() }

// channelDone drops a channel that was closed or reset, keeps its
// counters, and finishes a graceful close the peer began if that was the
// last thing it waited for.
//
// A channel whose written messages are not all acknowledged stays in
// byStream, so that the ACKs still on their way (the peer acknowledges
// what it read before the channel closed) settle them and Unacked stays
// exact; handleAck lets it go once nothing is left. At most MaxChannels
// such channels are kept per connection; past that a closing channel's
// later ACKs are ignored, and what it holds counts as unacknowledged.
func (c *Conn) channelDone(ch *Channel) {
	st := ch.stats()
	awaits := ch.awaitsAck()
	c.mu.Lock()
	delete(c.channels, ch)
	if awaits && c.awaiting < c.cfg.MaxChannels {
		c.awaiting++
	} else {
		delete(c.byStream, ch.s.StreamID())
	}
	c.stats.add(st)
	c.mu.Unlock()
	c.finishIfDone()
}

// Stats returns the connection's counters.
func (c *Conn) Stats() ConnStats {
	c.mu.Lock()
	s := c.stats
	chans := slices.Collect(maps.Keys(c.channels))
	c.mu.Unlock()
	for _, ch := range chans {
		s.add(ch.stats())
	}
	return s
}

// add adds a channel's message and byte counters to s.
func (s *ConnStats) add(ch ConnStats) {
	s.MessagesSent += ch.MessagesSent
	s.MessagesWritten += ch.MessagesWritten
	s.MessagesReceived += ch.MessagesReceived
	s.BytesSent += ch.BytesSent
	s.BytesReceived += ch.BytesReceived
	s.MessagesAcked += ch.MessagesAcked
}

func (c *Conn) wrapErr(err error) error {
	if cerr := c.err(); cerr != nil {
		return cerr
	}
	if isConnLevel(err) {
		// quic-go fails the streams before it cancels the connection's
		// context: end Context now, so that a caller who sees this error
		// also sees the connection gone.
		c.cancel(c.connErr(err))
		return c.err()
	}
	return c.connErr(err)
}

// isConnLevel reports whether err is one that quic-go returns for a stream
// because its whole connection ended.
func isConnLevel(err error) bool {
	// errors.AsType, not errors.As: no allocation per call, on every
	// connection's end.
	return is[*quic.ApplicationError](err) || is[*quic.TransportError](err) || is[*quic.IdleTimeoutError](err) ||
		is[*quic.HandshakeTimeoutError](err) || is[*quic.StatelessResetError](err) || is[*quic.VersionNegotiationError](err) ||
		errors.Is(err, quic.ErrServerClosed) || errors.Is(err, quic.ErrTransportClosed)
}

// is reports whether err's tree holds an error of type E.
func is[E error](err error) bool {
	_, ok := errors.AsType[E](err)
	return ok
}

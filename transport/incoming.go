package transport

import (
	"context"
	"sync"

	"github.com/quic-go/quic-go"
)

// maxHeaderReads is how many of the peer's new streams a connection takes
// from QUIC before AcceptChannel takes them: their headers being read, or
// read and waiting. Further streams wait in QUIC, within the peer's stream
// limit (Config.MaxChannels).
const maxHeaderReads = 16

// incoming reads the headers of the peer's new streams, up to
// maxHeaderReads at once, so that a header trickled slowly does not hold up
// the channels opened after it. Started by the first AcceptChannel.
//
// The acceptor goroutine is started by the first AcceptChannel and ends
// when the connection ends; it starts one header reader per stream. All are
// counted in Conn.wg. A stream taken from QUIC is owned by exactly one of:
// the goroutine reading its header, the ready list, or AcceptChannel;
// whichever resets it or hands it out counts it in the close state, once
// (closeState.channelAccepted or streamsRefused), so that a graceful close
// the peer began sees every channel the peer opened.
type incoming struct {
	slots chan struct{} // one per stream taken from QUIC and not yet handed out or reset
	avail chan struct{} // a token when ready may have grown (capacity 1); AcceptChannel only
	done  chan struct{} // closed when the stream acceptor has ended; AcceptChannel only

	// Guarded by Conn.mu.
	started bool
	serving bool // ServeChannels takes the streams: AcceptChannel may not
	ready   []readyStream
	err     error // why the acceptor ended, set before done is closed
}

// readyStream is a stream whose channel header was read.
type readyStream struct {
	seq uint64 // order in which QUIC handed the stream over
	s   *quic.Stream
	sr  *streamReader
	hdr streamHeader
}

// startIncoming starts the stream acceptor once, for AcceptChannel. It
// fails if ServeChannels takes the streams or the connection is closing or
// closed.
func (c *Conn) startIncoming() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.in.serving:
		return ErrAcceptInUse
	case c.in.started:
		return nil
	case !c.initIncomingLocked():
		return c.closedErr()
	}
	// The ready list's signals, which ServeChannels does without.
	c.in.avail = make(chan struct{}, 1)
	c.in.done = make(chan struct{})
	c.wg.Add(1)
	go c.acceptStreams()
	return nil
}

// closedErr is why the connection is closed, ErrClosed while it is only
// closing.
func (c *Conn) closedErr() error {
	if err := c.err(); err != nil {
		return err
	}
	return ErrClosed
}

// initIncomingLocked marks the peer's streams as taken by this side, for
// AcceptChannel or ServeChannels, and reports false if the connection is
// closing or closed. c.mu is held.
func (c *Conn) initIncomingLocked() bool {
	if c.cs.closing || c.ctx.Err() != nil {
		return false
	}
	c.in.started = true
	c.in.slots = make(chan struct{}, maxHeaderReads)
	return true
}

// acceptStreams takes the peer's new streams from QUIC while there is a
// free slot, and reads each header on a goroutine of its own.
func (c *Conn) acceptStreams() {
	defer c.wg.Done()
	var seq uint64
	for {
		s, err := c.nextStream()
		if err != nil {
			c.endIncoming(err)
			return
		}
		seq++
		c.wg.Add(1)
		go c.readHeader(seq, s)
	}
}

// nextStream waits for a free header slot, then for the peer's next
// stream, and returns it holding the slot; the error is why the
// connection ended.
func (c *Conn) nextStream() (*quic.Stream, error) {
	select {
	case c.in.slots <- struct{}{}:
	case <-c.ctx.Done():
		return nil, c.err()
	}
	s, err := c.qc.AcceptStream(c.ctx)
	if err != nil {
		<-c.in.slots
		return nil, c.wrapErr(err)
	}
	return s, nil
}

func (c *Conn) endIncoming(err error) {
	c.mu.Lock()
	c.in.err = err
	c.mu.Unlock()
	close(c.in.done)
}

// readHeader reads the header of stream s within Config.ChannelHeaderTimeout
// and puts it on the ready list, or resets the stream.
func (c *Conn) readHeader(seq uint64, s *quic.Stream) {
	defer c.wg.Done()
	sr := newStreamReader(s, channelReadBuffer)
	hdr, err := readChannelHeader(s, sr, c.cfg.ChannelHeaderTimeout)
	c.mu.Lock()
	if err == nil && !c.cs.closing {
		c.in.ready = append(c.in.ready, readyStream{seq: seq, s: s, sr: sr, hdr: hdr})
		c.mu.Unlock()
		c.signalReady()
		return
	}
	c.mu.Unlock()
	c.headerFailed(s, err)
	<-c.in.slots
}

// headerFailed refuses stream s, whose header could not be read (err) or
// arrived while this side is closing (err nil), unless the connection is
// gone, and the stream with it.
func (c *Conn) headerFailed(s *quic.Stream, err error) {
	switch {
	case err != nil && c.err() != nil:
	case err != nil:
		c.mu.Lock()
		c.stats.RejectedChannels++
		c.mu.Unlock()
		c.refuseStream(s, CodeProtocolError)
	default:
		c.refuseStream(s, CodeChannelClosed)
	}
}

func (c *Conn) signalReady() {
	select {
	case c.in.avail <- struct{}{}:
	default:
	}
}

// takeReady removes and returns the earliest stream on the ready list.
// Called with c.mu held.
func (c *Conn) takeReady() (readyStream, bool) {
	if len(c.in.ready) == 0 {
		return readyStream{}, false
	}
	first := 0
	for i, r := range c.in.ready {
		if r.seq < c.in.ready[first].seq {
			first = i
		}
	}
	r := c.in.ready[first]
	c.in.ready = append(c.in.ready[:first], c.in.ready[first+1:]...)
	return r, true
}

// nextReady waits for a stream whose header was read.
func (c *Conn) nextReady(ctx context.Context) (readyStream, error) {
	for {
		c.mu.Lock()
		r, ok := c.takeReady()
		more := len(c.in.ready) > 0
		c.mu.Unlock()
		if ok {
			<-c.in.slots
			if more {
				c.signalReady() // for another AcceptChannel waiting
			}
			return r, nil
		}
		select {
		case <-c.in.avail:
		case <-ctx.Done():
			return readyStream{}, ctx.Err()
		case <-c.in.done:
			c.mu.Lock()
			err, n := c.in.err, len(c.in.ready)
			c.mu.Unlock()
			if n == 0 {
				return readyStream{}, err
			}
		}
	}
}

// takeAllReadyLocked empties the ready list, for a graceful close: the
// streams on it were never handed out and will not be. Called with c.mu
// held, after closing was set, so that no more join the list; it counts
// them as refused, and the caller resets them with refuseReady.
func (c *Conn) takeAllReadyLocked() []readyStream {
	rs := c.in.ready
	c.in.ready = nil
	c.cs.streamsRefused(len(rs))
	return rs
}

// refuseReady resets streams taken with takeAllReadyLocked and frees their slots.
func (c *Conn) refuseReady(rs []readyStream) {
	for _, r := range rs {
		resetStream(r.s, CodeChannelClosed)
		<-c.in.slots
	}
}

func resetStream(s *quic.Stream, code ErrorCode) {
	s.CancelRead(quic.StreamErrorCode(code))
	s.CancelWrite(quic.StreamErrorCode(code))
}

// ServeChannels takes the peer's new channels on the caller's goroutine,
// for as long as the connection lives, and calls handle with each one: the
// alternative to a loop around [Conn.AcceptChannel] that needs no goroutine
// parked in AcceptChannel beside the one that takes streams from QUIC.
// Headers are read as AcceptChannel reads them (up to 16 at once, each
// within Config.ChannelHeaderTimeout, a malformed or late one reset and
// counted in ConnStats.RejectedChannels), each on a short-lived goroutine
// of its own, and handle runs on that goroutine as soon as the header is
// complete: calls for different channels may run at the same time and in
// any order. handle owns the channel; it should return promptly (start a
// goroutine for the channel's life), as ServeChannels waits for every call
// before it returns.
//
// It returns when the connection ends, with the error AcceptChannel would
// return then; at once with [ErrAcceptInUse] if AcceptChannel or
// ServeChannels took channels of this connection before, or ErrClosed if
// the connection is closing.
func (c *Conn) ServeChannels(handle func(*Channel)) error {
	if err := c.startServing(); err != nil {
		return err
	}
	var handlers sync.WaitGroup
	defer handlers.Wait()
	for {
		s, err := c.nextStream()
		if err != nil {
			return err
		}
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			c.serveStream(s, handle)
		}()
	}
}

func (c *Conn) startServing() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.in.started {
		return ErrAcceptInUse
	}
	if !c.initIncomingLocked() {
		return c.closedErr()
	}
	c.in.serving = true
	return nil
}

// serveStream reads the header of stream s and hands the channel to handle
// (ServeChannels), or resets the stream.
func (c *Conn) serveStream(s *quic.Stream, handle func(*Channel)) {
	sr := newStreamReader(s, channelReadBuffer)
	hdr, err := readChannelHeader(s, sr, c.cfg.ChannelHeaderTimeout)
	<-c.in.slots
	c.mu.Lock()
	closing := c.cs.closing
	c.mu.Unlock()
	if err != nil || closing {
		c.headerFailed(s, err) // as readHeader: CodeChannelClosed once closing
		return
	}
	if ch, err := c.handOut(readyStream{s: s, sr: sr, hdr: hdr}); err == nil {
		handle(ch)
	}
}

package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quicmsg/quicmsg/transport"
)

// Message is a message received from a session, with the channel it came on.
type Message struct {
	Channel string
	Data    []byte
}

// SessionStats are a session's counters.
type SessionStats struct {
	MessagesReceived   uint64 // read from the client's channels
	MessagesHandled    uint64 // returned from the handler
	BackpressureEvents uint64 // times the pending cap was reached
	Pending            int    // received, not yet handled
}

// Session is one client connection on a [Server]. It lives while its
// connection does. All methods are safe for concurrent use.
type Session struct {
	srv   *Server
	conn  *transport.Conn
	start time.Time

	openMu   sync.Mutex // serialises opening channels from the server side
	mu       sync.Mutex
	channels map[string]*transport.Channel
	queue    []Message
	head     int
	pending  int
	slowed   bool
	space    chan struct{} // closed and replaced when the queue drains below half the cap
	working  bool          // a worker goroutine is draining the queue
	ended    bool

	backpressure atomic.Bool
	received     atomic.Uint64
	handled      atomic.Uint64
	events       atomic.Uint64

	readers sync.WaitGroup
}

func newSession(srv *Server, c *transport.Conn) *Session {
	return &Session{srv: srv, conn: c, start: time.Now(), space: make(chan struct{})}
}

// ID returns the session's unique ID.
func (s *Session) ID() transport.SessionID { return s.conn.SessionID() }

// RemoteAddr returns the client's address.
func (s *Session) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// Conn returns the session's connection.
func (s *Session) Conn() *transport.Conn { return s.conn }

// Context is cancelled when the session's connection ends; context.Cause says why.
func (s *Session) Context() context.Context { return s.conn.Context() }

// Used0RTT reports whether the client resumed with 0-RTT data that the
// server accepted (known once the handshake has completed).
func (s *Session) Used0RTT() bool { return s.conn.Used0RTT() }

// Started returns when the session began.
func (s *Session) Started() time.Time { return s.start }

// BackpressureActive reports whether the session has asked its client to
// slow down because its pending messages reached the cap.
func (s *Session) BackpressureActive() bool { return s.backpressure.Load() }

// Stats returns the session's counters.
func (s *Session) Stats() SessionStats {
	s.mu.Lock()
	p := s.pending
	s.mu.Unlock()
	return SessionStats{
		MessagesReceived:   s.received.Load(),
		MessagesHandled:    s.handled.Load(),
		BackpressureEvents: s.events.Load(),
		Pending:            p,
	}
}

// Channels returns the names of the session's open channels.
func (s *Session) Channels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.channels))
	for n := range s.channels {
		names = append(names, n)
	}
	return names
}

// Send sends msg on the session's channel named channel, opening the channel
// if the session does not have it yet. It waits as transport.Channel.Send does.
func (s *Session) Send(ctx context.Context, channel string, msg []byte) error {
	ch, err := s.channel(ctx, channel)
	if err != nil {
		return err
	}
	return ch.Send(ctx, msg)
}

// TrySend is Send without waiting: it fails with transport.ErrWouldBlock or
// transport.ErrSlowDown where Send would wait. Opening a channel may still
// wait for the client's channel limit until ctx ends.
func (s *Session) TrySend(ctx context.Context, channel string, msg []byte) error {
	ch, err := s.channel(ctx, channel)
	if err != nil {
		return err
	}
	return ch.TrySend(msg)
}

// Channel returns the session's open channel named name, if it has one.
// Unlike Send, it never opens a channel.
func (s *Session) Channel(name string) (*transport.Channel, bool) {
	ch := s.lookup(name)
	return ch, ch != nil
}

func (s *Session) lookup(name string) *transport.Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.channels[name]
}

func (s *Session) channel(ctx context.Context, name string) (*transport.Channel, error) {
	if ch := s.lookup(name); ch != nil {
		return ch, nil
	}
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if ch := s.lookup(name); ch != nil {
		return ch, nil
	}
	ch, err := s.conn.OpenChannel(ctx, name)
	if err != nil {
		return nil, err
	}
	if !s.addChannel(ch) {
		ch.Reset(transport.CodeDuplicateChannel)
		return nil, fmt.Errorf("session: channel %q: %w", name, transport.CodeDuplicateChannel)
	}
	return ch, nil
}

// addChannel registers ch and starts its reader; false if the name is taken.
func (s *Session) addChannel(ch *transport.Channel) bool {
	s.mu.Lock()
	if _, dup := s.channels[ch.Name()]; dup || s.ended {
		s.mu.Unlock()
		return false
	}
	if s.channels == nil {
		s.channels = make(map[string]*transport.Channel)
	}
	s.channels[ch.Name()] = ch
	s.readers.Add(1)
	s.mu.Unlock()
	if f := s.srv.cfg.OnChannelOpen; f != nil {
		f(s, ch.Name())
	}
	go s.read(ch)
	return true
}

// Disconnect closes the session's connection at once with code and reason.
func (s *Session) Disconnect(code transport.ErrorCode, reason string) error {
	return s.conn.CloseWithError(code, reason)
}

// run is the session's goroutine: it accepts the client's channels until the
// connection ends, then waits for its readers and its worker.
func (s *Session) run() {
	ctx := context.Background()
	for {
		ch, err := s.conn.AcceptChannel(ctx)
		if err != nil {
			break
		}
		if !s.addChannel(ch) {
			ch.Reset(transport.CodeDuplicateChannel)
		}
	}
	s.readers.Wait()
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
}

// read is a channel's reader: it moves messages from the channel into the
// session's pending queue until the channel ends.
func (s *Session) read(ch *transport.Channel) {
	defer s.readers.Done()
	defer func() {
		s.mu.Lock()
		mine := s.channels[ch.Name()] == ch
		if mine {
			delete(s.channels, ch.Name())
		}
		s.mu.Unlock()
		if f := s.srv.cfg.OnChannelClose; mine && f != nil {
			f(s, ch.Name())
		}
	}()
	ctx := s.conn.Context()
	for {
		data, err := ch.Receive(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				// The client is done sending. Keep our side for the handler
				// until the client stops reading too (it closed the
				// channel) or the connection ends.
				select {
				case <-ch.Done():
				case <-ctx.Done():
				}
			}
			_ = ch.Close()
			return
		}
		s.received.Add(1)
		s.srv.received.Add(1)
		if !s.enqueue(ctx, Message{Channel: ch.Name(), Data: data}) {
			return
		}
	}
}

// enqueue adds m to the pending queue under the overflow policy. It returns
// false when the reader should stop.
func (s *Session) enqueue(ctx context.Context, m Message) bool {
	capN := s.srv.cfg.PendingCap
	s.mu.Lock()
	for s.pending >= capN {
		if !s.slowed {
			s.slowed = true
			s.backpressure.Store(true)
			s.events.Add(1)
			s.srv.backpressureEvents.Add(1)
			s.mu.Unlock()
			_ = s.conn.SlowDown()
			s.mu.Lock()
			continue
		}
		if s.srv.cfg.Overflow == OverflowDisconnect {
			if s.pending < 2*capN {
				break
			}
			s.mu.Unlock()
			s.srv.overloadDisconnects.Add(1)
			_ = s.conn.CloseWithError(transport.CodeOverloaded,
				fmt.Sprintf("more than %d messages pending (pending cap %d, overflow policy disconnect)", 2*capN, capN))
			return false
		}
		space := s.space
		s.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			// The connection ended with m already read: it is still
			// handled, past the cap (by one message per channel reader
			// at most), and the reader stops.
			s.mu.Lock()
			s.push(m)
			return false
		}
		s.mu.Lock()
	}
	s.push(m)
	return true
}

// push appends m to the pending queue and starts a worker if none runs.
// s.mu is held, and released.
func (s *Session) push(m Message) {
	if s.head > 0 && len(s.queue) == cap(s.queue) {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	s.queue = append(s.queue, m)
	s.pending++
	start := !s.working
	s.working = true
	s.mu.Unlock()
	if start {
		s.srv.workers.Add(1)
		go s.work()
	}
}

// work hands pending messages to the handler, in order, one at a time. It
// runs while the queue is not empty and exits when it drains, so that idle
// sessions hold no worker goroutine. Messages received before the connection
// ended are still handled.
func (s *Session) work() {
	defer s.srv.workers.Done()
	for {
		s.mu.Lock()
		if s.head == len(s.queue) {
			s.queue, s.head = s.queue[:0], 0
			if cap(s.queue) > 4*s.srv.cfg.PendingCap {
				s.queue = nil
			}
			s.working = false
			s.mu.Unlock()
			return
		}
		m := s.queue[s.head]
		s.queue[s.head] = Message{}
		s.head++
		s.mu.Unlock()

		s.srv.handler.HandleMessage(s.srv.baseCtx, s, m)
		s.handled.Add(1)
		s.srv.handled.Add(1)

		s.mu.Lock()
		s.pending--
		resume := s.slowed && s.pending < s.srv.cfg.PendingCap/2
		if resume {
			s.slowed = false
			s.backpressure.Store(false)
			close(s.space)
			s.space = make(chan struct{})
		}
		s.mu.Unlock()
		if resume {
			_ = s.conn.Resume()
		}
	}
}

package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/quicmsg/quicmsg/internal/unsent"
	"github.com/quicmsg/quicmsg/transport"
)

// Send sends msg on the session's open channel named channel, whichever side
// opened it. It waits as transport.Channel.Send does. It never opens a
// channel: when the session has none of that name (the client closed it, or
// nobody opened it) it fails with a [*ChannelClosedError], matching
// ErrChannelClosed; [Session.SendOpen] opens one instead.
//
// On a client channel of a resumable session, Send also accepts msg while
// the channel has no connection to write to (the session is detached, its
// client has not reopened the channel since it resumed, or the client is
// closing it as it leaves a connection the server sent GOAWAY on, see
// [Session.SendGoAway]): the message waits, in order, and is written when
// the client reopens the channel, after what the client had not
// acknowledged. Such messages are bounded
// by Config.MaxDetachedSendBytes per session: beyond it Send waits until
// ctx ends, the client reopens the channel on a resumed connection and the
// held messages are written, or the session ends. Once the session has ended it
// fails with an error matching ErrSessionEnded.
func (s *Session) Send(ctx context.Context, channel string, msg []byte) error {
	return s.send(ctx, channel, transport.UnsentMessage{Data: msg}, true)
}

// TrySend is Send without waiting: it fails with transport.ErrWouldBlock
// when the channel's send buffer is full, or its messages waiting for the
// client are at Config.MaxDetachedSendBytes, and with transport.ErrSlowDown
// while the client has asked the server to slow down.
func (s *Session) TrySend(channel string, msg []byte) error {
	return s.send(context.Background(), channel, transport.UnsentMessage{Data: msg}, false)
}

// send is Send (block) or TrySend of u, a message or gap notice that
// shares the caller's memory (a kept copy is made when it must wait).
func (s *Session) send(ctx context.Context, channel string, u transport.UnsentMessage, block bool) error {
	cs, ch := s.lookupSend(channel)
	switch {
	case cs != nil:
		return s.sendCarried(ctx, cs, u, block)
	case ch == nil:
		return &ChannelClosedError{Channel: channel}
	}
	return s.channelErr(ch, unsent.Send(ctx, ch, u, block))
}

// lookupSend returns the carried state of channel, or else its transport
// channel on the current connection; both nil if the session has no such
// channel. A carried one that was closed counts as none, unless the client
// closed it on a connection the server had told to go away: the client is
// leaving, to come back on another, and what Send accepts meanwhile waits
// for it.
func (s *Session) lookupSend(channel string) (*carried, *transport.Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs := s.carried[channel]; cs != nil && (cs.closedOn == nil || (cs.closedOn.GoAwaySent() && !cs.serverEnded)) {
		return cs, nil
	}
	return nil, s.channels[channel]
}

// SendOpen is Send that opens the channel, as [Session.Open] does, when the
// session has none of that name, including one the client closed before.
// The client must accept the new channel (transport.Conn.AcceptChannel);
// client.Client does not.
func (s *Session) SendOpen(ctx context.Context, channel string, msg []byte) error {
	cs, ch := s.lookupSend(channel)
	if cs == nil && ch == nil {
		opened, err := s.Open(ctx, channel)
		if errors.Is(err, transport.CodeDuplicateChannel) {
			cs, opened = s.lookupSend(channel) // the client opened it meanwhile
		}
		if cs == nil && opened == nil {
			return err
		}
		ch = opened
	}
	if cs != nil {
		return s.sendCarried(ctx, cs, transport.UnsentMessage{Data: msg}, true)
	}
	return s.channelErr(ch, ch.Send(ctx, msg))
}

// Open opens a new channel named name to the client. It fails with an error
// matching transport.CodeDuplicateChannel when the session has a channel of
// that name open, and with a [*ChannelLimitError] when it already has
// Config.MaxServerChannels channels open that the server opened; a channel
// gives its place back when either side closes it. Opening waits, until ctx
// ends, while the client's own channel limit is reached. The session reads
// the channel like the client's: what the client sends on it goes to the
// handler. Channels the server opens are not carried to the next
// connection of a resumable session: what the client did not acknowledge on
// them is reported when the session ends ([UnackedError]).
func (s *Session) Open(ctx context.Context, name string) (*transport.Channel, error) {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	dup := fmt.Errorf("session: channel %q: %w", name, transport.CodeDuplicateChannel)
	s.mu.Lock()
	_, open := s.channels[name]
	cs, carried := s.carried[name]
	if carried && cs.closedOn != nil && s.conn != nil {
		// The client closed it, or the server ended it, after GOAWAY: the
		// name is free (see carried.closedOn), and what its closed channel
		// had not delivered is counted as when the client reopens it.
		s.dropReopenedLocked(cs)
		carried = false
	}
	c := s.conn
	switch {
	case open || carried:
		s.mu.Unlock()
		return nil, dup
	case c == nil:
		s.mu.Unlock()
		return nil, fmt.Errorf("session: channel %q: the session is detached: %w", name, transport.ErrClosed)
	}
	if limit := s.srv.cfg.MaxServerChannels; s.serverOpen >= limit {
		s.mu.Unlock()
		return nil, &ChannelLimitError{Channel: name, Limit: limit}
	}
	s.serverOpen++
	s.mu.Unlock()
	release := func() {
		s.mu.Lock()
		s.serverOpen--
		s.mu.Unlock()
	}
	ch, err := c.OpenChannel(ctx, name)
	if err != nil {
		release()
		return nil, err
	}
	if !s.addChannel(ch, true) {
		release()
		ch.Reset(transport.CodeDuplicateChannel)
		if c.Context().Err() != nil || c != s.Conn() {
			return nil, fmt.Errorf("session: channel %q: %w", name, transport.ErrClosed)
		}
		return nil, dup
	}
	return ch, nil
}

// channelErr turns the error of a send on ch into a [*ChannelClosedError]
// when the channel, not the connection, has ended: the client closed or
// reset it, or the session closed its side after the client had left.
func (s *Session) channelErr(ch *transport.Channel, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, transport.CodeChannelClosed) ||
		(errors.Is(err, transport.ErrClosed) && ch.Conn().Context().Err() == nil) {
		return &ChannelClosedError{Channel: ch.Name(), Err: err}
	}
	return err
}

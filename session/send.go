package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/quicmsg/quicmsg/transport"
)

// Send sends msg on the session's open channel named channel, whichever side
// opened it. It waits as transport.Channel.Send does. It never opens a
// channel: when the session has none of that name (the client closed it, or
// nobody opened it) it fails with a [*ChannelClosedError], matching
// ErrChannelClosed; [Session.SendOpen] opens one instead.
func (s *Session) Send(ctx context.Context, channel string, msg []byte) error {
	ch := s.lookup(channel)
	if ch == nil {
		return &ChannelClosedError{Channel: channel}
	}
	return s.channelErr(ch, ch.Send(ctx, msg))
}

// TrySend is Send without waiting: it fails with transport.ErrWouldBlock
// when the channel's send buffer is full and with transport.ErrSlowDown
// while the client has asked the server to slow down.
func (s *Session) TrySend(channel string, msg []byte) error {
	ch := s.lookup(channel)
	if ch == nil {
		return &ChannelClosedError{Channel: channel}
	}
	return s.channelErr(ch, ch.TrySend(msg))
}

// SendOpen is Send that opens the channel, as [Session.Open] does, when the
// session has none of that name, including one the client closed before.
// The client must accept the new channel (transport.Conn.AcceptChannel);
// client.Client does not.
func (s *Session) SendOpen(ctx context.Context, channel string, msg []byte) error {
	ch := s.lookup(channel)
	if ch == nil {
		opened, err := s.Open(ctx, channel)
		if errors.Is(err, transport.CodeDuplicateChannel) {
			opened = s.lookup(channel) // the client opened it meanwhile
		}
		if opened == nil {
			return err
		}
		ch = opened
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
// handler.
func (s *Session) Open(ctx context.Context, name string) (*transport.Channel, error) {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	dup := fmt.Errorf("session: channel %q: %w", name, transport.CodeDuplicateChannel)
	s.mu.Lock()
	if _, ok := s.channels[name]; ok {
		s.mu.Unlock()
		return nil, dup
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
	ch, err := s.conn.OpenChannel(ctx, name)
	if err != nil {
		release()
		return nil, err
	}
	if !s.addChannel(ch, true) {
		release()
		ch.Reset(transport.CodeDuplicateChannel)
		if s.conn.Context().Err() != nil {
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
		(errors.Is(err, transport.ErrClosed) && s.conn.Context().Err() == nil) {
		return &ChannelClosedError{Channel: ch.Name(), Err: err}
	}
	return err
}

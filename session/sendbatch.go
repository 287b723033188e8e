package session

import (
	"context"

	"github.com/quicmsg/quicmsg/internal/unsent"
	"github.com/quicmsg/quicmsg/transport"
)

// SendMsgs sends msgs on channel, in order, as SendMsg sends each one, and
// returns how many it accepted: msgs[:n] were, and on an error msgs[n]
// failed with the error SendMsg would have returned for it (the rest were
// not tried). It looks the channel up and takes its locks once for as many
// messages as the channel takes without waiting (transport.Channel.SendMsgs),
// which is what a relay draining a subscriber's queue wants. It does not
// modify msgs nor keep them once it returns. Safe for concurrent use.
func (s *Session) SendMsgs(ctx context.Context, channel string, msgs []transport.Message) (int, error) {
	cs, ch := s.lookupSend(channel)
	switch {
	case cs != nil:
		return s.sendCarriedMsgs(ctx, cs, msgs)
	case ch == nil:
		return 0, &ChannelClosedError{Channel: channel}
	}
	n, err := ch.SendMsgs(ctx, msgs)
	return n, s.channelErr(ch, err)
}

// sendCarriedMsgs is SendMsgs on a carried channel: sendCarried for a
// batch, one turn for as many messages as the live channel takes.
func (s *Session) sendCarriedMsgs(ctx context.Context, cs *carried, msgs []transport.Message) (int, error) {
	done := 0
	for done < len(msgs) {
		if err := cs.acquire(ctx, true); err != nil {
			return done, err
		}
		n, wait, err := s.sendTurnMsgs(ctx, cs, msgs[done:])
		cs.release()
		done += n
		if err != nil {
			return done, err
		}
		if wait == nil {
			continue
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return done, ctx.Err()
		}
	}
	return done, nil
}

// sendTurnMsgs is one attempt of sendCarriedMsgs, holding cs.turn, as
// sendTurn: it writes what cs holds and then as many of msgs as it can to
// the live channel, or keeps msgs[0] while there is none. It returns how
// many it accepted; a non-nil wait says to try the rest again once it is
// closed.
func (s *Session) sendTurnMsgs(ctx context.Context, cs *carried, msgs []transport.Message) (n int, wait <-chan struct{}, err error) {
	s.mu.Lock()
	if err := s.sendableLocked(cs); err != nil {
		s.mu.Unlock()
		return 0, nil, err
	}
	tc := cs.live()
	s.mu.Unlock()
	if tc == nil {
		wait, err = s.keep(cs, unsent.Of(cs.name, &msgs[0]), true)
		if wait == nil && err == nil {
			n = 1
		}
		return n, wait, err
	}
	err = s.drain(ctx, cs, tc, true)
	if err == nil {
		n, err = tc.SendMsgs(ctx, msgs)
	}
	if err != nil && ctx.Err() == nil && s.movedOff(cs, tc, err) {
		return n, closedChan, nil // the next try keeps the rest
	}
	if err == nil || tc.Conn().Context().Err() == nil || ctx.Err() != nil {
		return n, nil, s.channelErr(tc, err)
	}
	// The connection ended: the rest go to the next one, as in sendTurn.
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs.tc != tc {
		return n, closedChan, nil
	}
	return n, s.changed, nil
}

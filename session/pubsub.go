package session

import (
	"context"
	"fmt"
	"slices"

	"github.com/quicmsg/quicmsg/internal/unsent"
	"github.com/quicmsg/quicmsg/transport"
)

// SendMsg is Send for a message with a subject and headers (see
// transport.Channel.SendMsg): m.Subject, when set and other than channel,
// is the subject the client sees the message published to. It does not
// modify m nor keep it once it returns. While the channel has no
// connection (see Send), the message waits with its subject and headers
// and is written again as it was sent; a message the client's last
// connection would refuse (headers without the HEADERS extension, a
// wildcard subject, over its size limit) is refused at once.
// Safe for concurrent use.
func (s *Session) SendMsg(ctx context.Context, channel string, m *transport.Message) error {
	return s.send(ctx, channel, unsent.Of(channel, m), true)
}

// TrySendMsg is SendMsg without waiting, as TrySend.
func (s *Session) TrySendMsg(channel string, m *transport.Message) error {
	return s.send(context.Background(), channel, unsent.Of(channel, m), false)
}

// SendGap sends a gap notice on channel (transport.Channel.SendGap): the
// client's Receive returns a *transport.GapError at this point of the
// channel. On a resumable session it is carried across a detach like a
// message, in order, and written again as a gap notice. It fails with an
// error matching transport.ErrHeadersUnsupported when the client did not
// offer the HEADERS extension. Safe for concurrent use.
func (s *Session) SendGap(ctx context.Context, channel string, g transport.Gap) error {
	return s.send(ctx, channel, transport.UnsentMessage{Gap: &g}, true)
}

// Reply sends resp to the reply-to subject of req (its
// transport.HeaderReplyTo header), on req's channel, with
// transport.HeaderInReplyTo set to req's msg-id when it has one. It fails
// with ErrNoReplyTo when req has no reply-to. It does not modify resp.
// It sends as SendMsg does; safe for concurrent use.
func (s *Session) Reply(ctx context.Context, req Message, resp *transport.Message) error {
	to := req.Header.Get(transport.HeaderReplyTo)
	if to == "" {
		return fmt.Errorf("session: channel %q, subject %q: %w", req.Channel, req.Subject, ErrNoReplyTo)
	}
	r := *resp
	r.Subject = to
	if id := req.Header.Get(transport.HeaderMsgID); id != "" {
		r.Header = slices.Clone(resp.Header)
		r.Header.Set(transport.HeaderInReplyTo, id)
	}
	return s.SendMsg(ctx, req.Channel, &r)
}

// DisconnectGracefully ends the session with code and reason after what
// was sent to the client has reached it (transport.Conn.ShutdownWithError):
// it writes what the session's channels hold and waits, until ctx ends,
// for the client to acknowledge it when acknowledgements are on, then
// closes the connection with code. As after Disconnect, the session is
// not kept for a resume; a detached session ends at once, with code as
// its cause. It returns the error of the shutdown, if any. Safe for
// concurrent use.
func (s *Session) DisconnectGracefully(ctx context.Context, code transport.ErrorCode, reason string) error {
	if c := s.disconnect(code, reason); c != nil {
		return c.ShutdownWithError(ctx, code, reason)
	}
	return nil
}

package session

// Contract for issue 11; the owner replaces it.

import (
	"context"

	"github.com/quicmsg/quicmsg/transport"
)

// SendMsg is Send for a message with a subject and headers (see
// transport.Channel.SendMsg). It does not modify m nor keep it.
func (s *Session) SendMsg(ctx context.Context, channel string, m *transport.Message) error {
	panic("contract")
}

// TrySendMsg is SendMsg without waiting, as TrySend.
func (s *Session) TrySendMsg(channel string, m *transport.Message) error { panic("contract") }

// SendGap sends a gap notice on channel (transport.Channel.SendGap); it is
// carried across a detach like a message.
func (s *Session) SendGap(ctx context.Context, channel string, g transport.Gap) error {
	panic("contract")
}

// Reply sends resp to the reply-to subject of req, on req's channel, with
// transport.HeaderInReplyTo set to req's msg-id.
func (s *Session) Reply(ctx context.Context, req Message, resp *transport.Message) error {
	panic("contract")
}

// DisconnectGracefully ends the session with code and reason after what
// was sent to the client has reached it: it waits, until ctx ends, for the
// client to acknowledge the messages its channels hold (when
// acknowledgements are on), then closes the connection with code. A
// detached session ends at once.
func (s *Session) DisconnectGracefully(ctx context.Context, code transport.ErrorCode, reason string) error {
	panic("contract")
}

package client

// Contract for issue 11; the owners replace it.

import (
	"context"

	"github.com/quicmsg/quicmsg/transport"
)

// ChannelWith is Channel with options (a queue group), carried in the
// channel header on every connection.
func (c *Client) ChannelWith(ctx context.Context, name string, opts transport.ChannelOptions) (*Channel, error) {
	panic("contract")
}

// SendMsg is Send for a message with a subject and headers.
func (ch *Channel) SendMsg(ctx context.Context, m *transport.Message) error { panic("contract") }

// TrySendMsg is SendMsg without waiting.
func (ch *Channel) TrySendMsg(m *transport.Message) error { panic("contract") }

// ReceiveMsg is Receive with the subject and headers; at a gap notice it
// returns a *transport.GapError.
func (ch *Channel) ReceiveMsg(ctx context.Context) (*transport.Message, error) { panic("contract") }

// Reply sends resp to req's reply-to subject on this channel.
func (ch *Channel) Reply(ctx context.Context, req, resp *transport.Message) error {
	panic("contract")
}

// Request sends m to subject and waits for the reply until ctx ends. It
// fails with transport.ErrNoResponders when the server reports that no one
// subscribes to subject.
func (c *Client) Request(ctx context.Context, subject string, m *transport.Message) (*transport.Message, error) {
	panic("contract")
}

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

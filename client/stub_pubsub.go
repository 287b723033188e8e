package client

// Contract for issue 11; the owners replace it.

import (
	"context"

	"github.com/quicmsg/quicmsg/transport"
)

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

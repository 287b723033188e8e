package transport

// Contract for issue 11 (request/reply). Bodies are placeholders; the
// owner replaces this file with the real implementation in request.go.

import (
	"context"
	"errors"
)

// ErrNoResponders is returned by Request when the server reports that no
// one subscribes to the subject.
var ErrNoResponders = errors.New("transport: no responders")

// Request sends m to subject with a reply-to and a msg-id, and waits until
// the reply arrives or ctx ends.
func (c *Conn) Request(ctx context.Context, subject string, m *Message) (*Message, error) {
	panic("contract")
}

// Reply sends resp to req's reply-to subject on ch, with HeaderInReplyTo
// set to req's msg-id.
func (ch *Channel) Reply(ctx context.Context, req *Message, resp *Message) error {
	panic("contract")
}

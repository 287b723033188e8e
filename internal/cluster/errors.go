package cluster

import (
	"errors"
	"fmt"
)

// DropReason says why a message did not cross the backplane. It is the
// "reason" label of quicsrv's quicmsg_cluster_dropped_total.
type DropReason string

// Reasons for a dropped message.
const (
	// DropNATSDown: NATS was unreachable and the reconnect buffer
	// (Config.ReconnectBufSize) was full, or NATS has not been reached
	// since start (ErrNotConnectedYet).
	DropNATSDown DropReason = "nats_down"
	// DropTooLarge: the message was larger than the NATS server's
	// max_payload (TooLargeError).
	DropTooLarge DropReason = "too_large"
	// DropInvalid: the subject or a header cannot travel over NATS as
	// it is (whitespace or an empty token in the subject, a line break
	// in a header value or a space or tab at either end, a request's
	// reply-to or msg-id too long for the NATS protocol line).
	DropInvalid DropReason = "invalid"
	// DropClosed: the backplane was closed.
	DropClosed DropReason = "closed"
	// DropError: any other error from nats.go.
	DropError DropReason = "error"
	// DropSlowConsumer: NATS dropped messages for a subscription of this
	// node whose pending limits (Config.PendingMsgs, PendingBytes) were
	// reached: the relay did not keep up.
	DropSlowConsumer DropReason = "slow_consumer"
	// DropRefused: a message from NATS that the relay refused (a
	// subject quicmsg does not take).
	DropRefused DropReason = "refused"
	// DropNoMember: a message NATS gave this node's queue subscription
	// after the node's last member of the group had left (in flight,
	// or waiting in the subscription): NATS picks one node per message
	// and does not pick again, so it reached no member anywhere.
	DropNoMember DropReason = "no_member"
)

// dropReasons lists every DropReason, in Stats order.
var dropReasons = [...]DropReason{DropNATSDown, DropTooLarge, DropInvalid, DropClosed, DropError, DropSlowConsumer, DropRefused, DropNoMember}

// ErrNotConnectedYet is the cause of Forward's DropNATSDown error before
// the first connection to NATS: messages are buffered only once the
// connection has been up (Config.ReconnectBufSize).
var ErrNotConnectedYet = errors.New("cluster: not connected to NATS since start: messages are buffered only once it has been reached")

// ErrClosed is the error of Forward after Close.
var ErrClosed = errors.New("cluster: backplane closed")

// ForwardError is Forward's error: the message did not leave this node.
// It matches the nats.go error underneath, if any.
type ForwardError struct {
	Subject string
	Reason  DropReason
	Err     error
}

// Error names the subject, the reason and the cause.
func (e *ForwardError) Error() string {
	return fmt.Sprintf("cluster: message to %q not forwarded (%s): %v", e.Subject, e.Reason, e.Err)
}

// Unwrap returns the cause.
func (e *ForwardError) Unwrap() error { return e.Err }

// TooLargeError is the cause of a ForwardError with DropTooLarge: NATS
// takes at most Limit bytes (the server's max_payload) of headers and
// payload in one message. Raise max_payload on the NATS servers (at most
// 64 MiB) to carry larger relay messages.
type TooLargeError struct {
	Size, Limit int64
}

// Error names the size and the limit.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("message of %d bytes (headers and payload) is larger than the NATS server's max_payload %d", e.Size, e.Limit)
}

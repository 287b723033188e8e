package transport

// CONTRACT STUB (acknowledgements). Replaced by the real implementation;
// this file is deleted when it lands. Doc comments are the contract.

import "fmt"

// DefaultAckWindow is Config.AckWindow's default: the bytes of encoded
// messages one channel holds that the peer has not acknowledged yet
// (written and unacknowledged, plus buffered) before Send waits.
const DefaultAckWindow = 1 << 20

// ErrAckWindowFull is returned by TrySend when the channel's
// acknowledgement window is full: the peer has not acknowledged enough of
// what was sent. It matches ErrWouldBlock.
var ErrAckWindowFull = fmt.Errorf("transport: acknowledgement window full: %w", ErrWouldBlock)

// AcksEnabled reports whether both sides announced acknowledgements in
// HELLO (Config.DisableAcks unset on both): the receiver then acknowledges
// each channel's messages cumulatively as Receive returns them, and the
// sender keeps what it wrote until acknowledged. Before Ready is closed,
// whether this side offered them.
func (c *Conn) AcksEnabled() bool { return false }

// Acked returns how many of the messages this channel sent (counted from
// the first message written on this channel's stream) the peer has
// acknowledged, that is, returned from its Receive.
func (ch *Channel) Acked() uint64 { return 0 }

// Unacked returns, after the channel failed (its connection ended), the
// messages that were written to the stream but not acknowledged, in the
// order sent: they may or may not have been delivered. Messages number
// Acked()+1 .. Acked()+len(Unacked()) in the channel's order, and
// Unsent() follows them. Before a failure, or with acknowledgements off, nil.
// With acknowledgements on, InDoubt() == len(Unacked()).
func (ch *Channel) Unacked() []UnsentMessage { return nil }

package transport

import (
	"errors"
	"fmt"
)

// GapReason says why messages were skipped.
type GapReason uint64

const (
	// GapSlowConsumer: the relay dropped messages because the
	// subscriber's queue was full (slow consumer policy "drop").
	GapSlowConsumer GapReason = 1
	// GapDisconnect: the relay discarded the subscriber's queue as it
	// disconnected it as a slow consumer.
	GapDisconnect GapReason = 2
	// GapBackplane: messages were lost between cluster nodes.
	GapBackplane GapReason = 3
)

// String returns "slow_consumer", "disconnect", "backplane" or
// "reason(N)".
func (r GapReason) String() string {
	switch r {
	case GapSlowConsumer:
		return "slow_consumer"
	case GapDisconnect:
		return "disconnect"
	case GapBackplane:
		return "backplane"
	}
	return fmt.Sprintf("reason(%d)", uint64(r))
}

// Gap is a notice, in order on a channel, that the sender skipped Missed
// messages at that point.
type Gap struct {
	Missed uint64
	Reason GapReason
}

// maxVarint is the largest value a QUIC variable-length integer holds.
const maxVarint = 1<<62 - 1

// check reports a gap that cannot be sent: Missed must be 1 to 2^62-1 and
// Reason below 2^62.
func (g Gap) check() error {
	if g.Missed == 0 || g.Missed > maxVarint || g.Reason > maxVarint {
		return fmt.Errorf("%w: Missed %d must be 1..2^62-1 and Reason %d below 2^62", ErrInvalidGap, g.Missed, uint64(g.Reason))
	}
	return nil
}

// ErrInvalidGap is returned by SendGap for a gap notice that cannot be
// encoded: no message missed, or a count or reason of 2^62 or more.
var ErrInvalidGap = errors.New("transport: invalid gap notice")

// ErrGap matches every *GapError.
var ErrGap = errors.New("transport: messages missed")

// GapError is what Receive and ReceiveMsg return at the point of a gap
// notice. The channel stays usable: the next call returns the message
// after the gap.
type GapError struct {
	Channel string
	Gap
}

// Error says how many messages the channel missed and why.
func (e *GapError) Error() string {
	return fmt.Sprintf("transport: channel %q: %d messages missed (%s)", e.Channel, e.Missed, e.Reason)
}

// Is reports whether target is ErrGap.
func (e *GapError) Is(target error) bool { return target == ErrGap }

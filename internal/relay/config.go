package relay

import (
	"cmp"
	"fmt"
	"log/slog"
	"time"
)

// Defaults for [Config]. A zero field in Config means the default.
const (
	// DefaultQueueSize is how many messages may wait for one subscriber.
	DefaultQueueSize = 65536
	// DefaultQueueBytes is how many payload bytes may wait for one subscriber.
	DefaultQueueBytes = 16 << 20
	// DefaultPublishTimeout is how long Publish waits for room in a full
	// subscriber queue under the [Block] policy.
	DefaultPublishTimeout = 5 * time.Second
)

// DisconnectTimeout bounds how long the relay spends telling a slow
// consumer what it missed (gap notices) and closing it gracefully.
const DisconnectTimeout = time.Second

// SlowConsumerPolicy says what the relay does with a subscriber whose queue
// is full.
type SlowConsumerPolicy int

const (
	// Drop discards the message for that subscriber alone and counts it in
	// Stats.Dropped; the subscriber gets a gap notice (transport.GapSlowConsumer)
	// in order at the place of the messages it missed, and later messages
	// once its queue has room again. Publishers and other subscribers are
	// never slowed. This is the default.
	Drop SlowConsumerPolicy = iota
	// Disconnect discards the subscriber's queue, sends a gap notice
	// (transport.GapDisconnect) on each channel that lost messages and closes
	// the subscriber with transport.CodeSlowConsumer.
	Disconnect
	// Block makes Publish wait, up to Config.PublishTimeout, for room in the
	// subscriber's queue; when the time passes the subscriber is
	// disconnected as under Disconnect and Publish goes on with the others.
	Block
)

// String returns "drop", "disconnect" or "block".
func (p SlowConsumerPolicy) String() string {
	switch p {
	case Drop:
		return "drop"
	case Disconnect:
		return "disconnect"
	case Block:
		return "block"
	}
	return fmt.Sprintf("SlowConsumerPolicy(%d)", int(p))
}

// ParseSlowConsumerPolicy parses "drop", "disconnect" or "block".
func ParseSlowConsumerPolicy(s string) (SlowConsumerPolicy, error) {
	for _, p := range []SlowConsumerPolicy{Drop, Disconnect, Block} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("relay: unknown slow consumer policy %q (want drop, disconnect or block)", s)
}

// Config configures a [Relay]. The zero value is ready to use.
type Config struct {
	// QueueSize caps the messages waiting for one subscriber. Gap notices
	// waiting in the queue are not counted: there is at most one open gap
	// per channel, so they never outnumber the queued messages plus the
	// subscriber's channels. The messages being sent (up to 64, taken
	// from the queue together) no longer count. Default DefaultQueueSize
	// (65536).
	QueueSize int
	// QueueBytes caps the payload bytes waiting for one subscriber; a
	// message larger than QueueBytes still goes through an empty queue.
	// Default DefaultQueueBytes (16 MiB).
	QueueBytes int
	// SlowConsumer is the policy for a subscriber whose queue is full.
	// Default Drop.
	SlowConsumer SlowConsumerPolicy
	// PublishTimeout is how long Publish waits for room in a full queue
	// under the Block policy before it disconnects that subscriber.
	// Default DefaultPublishTimeout (5 s).
	PublishTimeout time.Duration
	// Logger receives a line when a subscriber starts and stops falling
	// behind, and when one is disconnected. Default: discard.
	Logger *slog.Logger
	// Backplane links the relay to other nodes' relays (see [Backplane]).
	// Its owner closes it after the relay. Default nil: a single node.
	Backplane Backplane
	// OnQueueDelay, when set, receives the queueing delay of sampled
	// messages: from entering a subscriber's queue to the subscriber's
	// peer accepting it (Peer.SendMsgs returned). A subscriber samples its
	// first message and every QueueDelaySample-th after it, one at a time
	// (a sample taken while another is in its queue is skipped), so that
	// the clock is read for a small part of the messages only. It runs
	// on the subscriber's drain goroutine, after the send: it must not
	// block. Default nil: nothing is measured.
	OnQueueDelay func(time.Duration)
}

// QueueDelaySample is how often a subscriber samples the queueing delay
// for Config.OnQueueDelay: one message in QueueDelaySample.
const QueueDelaySample = 16

func (c *Config) withDefaults() (Config, error) {
	var r Config
	if c != nil {
		r = *c
	}
	r.QueueSize = cmp.Or(r.QueueSize, DefaultQueueSize)
	r.QueueBytes = cmp.Or(r.QueueBytes, DefaultQueueBytes)
	r.PublishTimeout = cmp.Or(r.PublishTimeout, DefaultPublishTimeout)
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case r.QueueSize < 0:
		return r, fmt.Errorf("relay: Config.QueueSize %d is negative", r.QueueSize)
	case r.QueueBytes < 0:
		return r, fmt.Errorf("relay: Config.QueueBytes %d is negative", r.QueueBytes)
	case r.PublishTimeout < 0:
		return r, fmt.Errorf("relay: Config.PublishTimeout %v is negative", r.PublishTimeout)
	case r.SlowConsumer < Drop || r.SlowConsumer > Block:
		return r, fmt.Errorf("relay: Config.SlowConsumer %v is not a known policy", r.SlowConsumer)
	}
	return r, nil
}

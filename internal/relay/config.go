package relay

import (
	"cmp"
	"fmt"
	"log/slog"
)

// Defaults for [Config]. A zero field in Config means the default.
const (
	// DefaultQueueSize is how many messages may wait for one subscriber.
	DefaultQueueSize = 65536
	// DefaultQueueBytes is how many payload bytes may wait for one subscriber.
	DefaultQueueBytes = 16 << 20
)

// SlowConsumerPolicy says what the relay does with a subscriber whose queue
// is full.
type SlowConsumerPolicy int

const (
	// Drop discards the message for that subscriber alone and counts it in
	// Stats.Dropped; the subscriber gets later messages once its queue has
	// room again.
	Drop SlowConsumerPolicy = iota
	// Disconnect discards the subscriber's queue and closes the subscriber
	// with transport.CodeSlowConsumer.
	Disconnect
)

// String returns "drop" or "disconnect".
func (p SlowConsumerPolicy) String() string {
	switch p {
	case Drop:
		return "drop"
	case Disconnect:
		return "disconnect"
	}
	return fmt.Sprintf("SlowConsumerPolicy(%d)", int(p))
}

// ParseSlowConsumerPolicy parses "drop" or "disconnect".
func ParseSlowConsumerPolicy(s string) (SlowConsumerPolicy, error) {
	switch s {
	case "drop":
		return Drop, nil
	case "disconnect":
		return Disconnect, nil
	}
	return 0, fmt.Errorf("relay: unknown slow consumer policy %q (want drop or disconnect)", s)
}

// Config configures a [Relay]. The zero value is ready to use.
type Config struct {
	// QueueSize caps the messages waiting for one subscriber.
	// Default DefaultQueueSize (65536).
	QueueSize int
	// QueueBytes caps the payload bytes waiting for one subscriber; a
	// message larger than QueueBytes still goes through an empty queue.
	// Default DefaultQueueBytes (16 MiB).
	QueueBytes int
	// SlowConsumer is the policy for a subscriber whose queue is full.
	// Default Drop.
	SlowConsumer SlowConsumerPolicy
	// Logger receives a line when a subscriber starts and stops falling
	// behind, and when one is disconnected. Default: discard.
	Logger *slog.Logger
}

func (c *Config) withDefaults() (Config, error) {
	var r Config
	if c != nil {
		r = *c
	}
	r.QueueSize = cmp.Or(r.QueueSize, DefaultQueueSize)
	r.QueueBytes = cmp.Or(r.QueueBytes, DefaultQueueBytes)
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case r.QueueSize < 0:
		return r, fmt.Errorf("relay: Config.QueueSize %d is negative", r.QueueSize)
	case r.QueueBytes < 0:
		return r, fmt.Errorf("relay: Config.QueueBytes %d is negative", r.QueueBytes)
	case r.SlowConsumer != Drop && r.SlowConsumer != Disconnect:
		return r, fmt.Errorf("relay: Config.SlowConsumer %v is not a known policy", r.SlowConsumer)
	}
	return r, nil
}

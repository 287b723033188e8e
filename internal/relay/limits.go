package relay

import "time"

// Limits are the relay's limits that may change while it runs: the
// Config fields of the same names, with the same defaults and units.
type Limits struct {
	QueueSize      int           // Config.QueueSize; 0: DefaultQueueSize
	QueueBytes     int           // Config.QueueBytes; 0: DefaultQueueBytes
	PublishTimeout time.Duration // Config.PublishTimeout; 0: DefaultPublishTimeout
}

// SetLimits changes the queue limits and the publish timeout of a running
// relay, as a configuration reload does; a negative field is refused by
// name and nothing changes. Queues are not trimmed: a queue above a
// lowered limit takes no more messages (its subscriber is a slow consumer
// under the relay's policy) until it has drained below it. A Publish
// already waiting under Block keeps the timeout it started with. It is
// safe for concurrent use.
func (r *Relay) SetLimits(l Limits) error {
	c := Config{QueueSize: l.QueueSize, QueueBytes: l.QueueBytes, PublishTimeout: l.PublishTimeout}
	c, err := c.withDefaults()
	if err != nil {
		return err
	}
	r.setLimits(c)
	return nil
}

// Limits returns the limits in force.
func (r *Relay) Limits() Limits {
	return Limits{QueueSize: r.limitSize(), QueueBytes: r.limitBytes(), PublishTimeout: r.limitTimeout()}
}

func (r *Relay) setLimits(c Config) {
	r.queueSize.Store(int64(c.QueueSize))
	r.queueBytes.Store(int64(c.QueueBytes))
	r.publishTimeout.Store(int64(c.PublishTimeout))
}

func (r *Relay) limitSize() int              { return int(r.queueSize.Load()) }
func (r *Relay) limitBytes() int             { return int(r.queueBytes.Load()) }
func (r *Relay) limitTimeout() time.Duration { return time.Duration(r.publishTimeout.Load()) }

package client

import (
	"cmp"
	"fmt"

	"github.com/quicmsg/quicmsg/transport"
)

// Defaults for [Config].
const (
	// DefaultReconnectBufferSize is how many bytes of messages a Client holds,
	// across all its channels, while it has no connection (as much as NATS).
	DefaultReconnectBufferSize = 8 << 20
	// DefaultEventQueueSize is how many events may wait for the OnEvent
	// callback; further events are dropped and counted.
	DefaultEventQueueSize = 256
	// DefaultRetryAttempts is how many attempts SendWithRetry makes.
	DefaultRetryAttempts = 5
	// DefaultSessionCacheSize is the size of the TLS session cache the client
	// creates for 0-RTT when the tls.Config has none.
	DefaultSessionCacheSize = 64
)

// Config configures a [Client]. The zero value is ready to use: every zero
// field takes its default. TLS is a parameter of [Dial].
type Config struct {
	// Fallback lists other addresses of the same service, tried in turn
	// after the one given to Dial when a connection fails or the server sends
	// GOAWAY.
	Fallback []string
	// Transport configures each connection. Its CloseTimeout also bounds
	// [Client.Close].
	Transport transport.Config
	// Backoff is the reconnection schedule; the zero value is exponential
	// backoff with full jitter from 100 ms to 30 s, retrying for ever.
	Backoff Backoff
	// ReconnectBufferSize bounds, in bytes, the messages held while
	// disconnected. Default DefaultReconnectBufferSize (8 MiB).
	ReconnectBufferSize int
	// RetryAttempts is how many attempts SendWithRetry makes. Default
	// DefaultRetryAttempts (5).
	RetryAttempts int
	// Disable0RTT turns 0-RTT resumption off: every connection waits for a
	// full handshake before sending.
	Disable0RTT bool
	// DisableResume turns session resumption off. By default, after losing
	// a connection to a server that acknowledges messages (and issued a
	// resume token), the client resumes its session on the next
	// connection: both sides say what they received, and each sends again
	// what the other did not, so that nothing is lost, duplicated or in
	// doubt. With DisableResume every reconnect begins a new session, and
	// messages written to a lost connection are in doubt.
	DisableResume bool
	// OnEvent, when set, receives connection events, one at a time on a
	// goroutine of the client's, never under a lock.
	OnEvent func(Event)
	// EventQueueSize bounds the events waiting for OnEvent; overflow is
	// dropped and counted in Stats.EventsDropped. EventClosed is never
	// dropped: the queue keeps a place for it. Default DefaultEventQueueSize.
	EventQueueSize int
}

func (c *Config) withDefaults() (Config, error) {
	var r Config
	if c != nil {
		r = *c
	}
	r.ReconnectBufferSize = cmp.Or(r.ReconnectBufferSize, DefaultReconnectBufferSize)
	r.RetryAttempts = cmp.Or(r.RetryAttempts, DefaultRetryAttempts)
	r.EventQueueSize = cmp.Or(r.EventQueueSize, DefaultEventQueueSize)
	var err error
	if r.Backoff, err = r.Backoff.withDefaults(); err != nil {
		return r, err
	}
	switch {
	case r.ReconnectBufferSize < 0:
		return r, fmt.Errorf("client: Config.ReconnectBufferSize %d is negative", r.ReconnectBufferSize)
	case r.RetryAttempts < 0:
		return r, fmt.Errorf("client: Config.RetryAttempts %d is negative", r.RetryAttempts)
	case r.EventQueueSize < 0:
		return r, fmt.Errorf("client: Config.EventQueueSize %d is negative", r.EventQueueSize)
	}
	return r, nil
}

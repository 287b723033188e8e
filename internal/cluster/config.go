package cluster

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Defaults for [Config]. A zero field in Config means the default.
const (
	// DefaultReconnectBufSize is how many bytes of published messages
	// are kept while the NATS connection is down (nats.go's default).
	DefaultReconnectBufSize = nats.DefaultReconnectBufSize
	// DefaultPendingMsgs is how many messages may wait in one NATS
	// subscription for the relay before NATS drops them as a slow
	// consumer (nats.go's default).
	DefaultPendingMsgs = nats.DefaultSubPendingMsgsLimit
	// DefaultPendingBytes is how many bytes may wait in one NATS
	// subscription (nats.go's default).
	DefaultPendingBytes = nats.DefaultSubPendingBytesLimit
	// DefaultRTTInterval is how often the round trip to NATS is
	// measured.
	DefaultRTTInterval = 5 * time.Second
	// DefaultCloseTimeout bounds how long Close waits for the messages
	// still buffered to reach NATS.
	DefaultCloseTimeout = 2 * time.Second
)

// Config configures a [Backplane].
type Config struct {
	// URLs are the NATS servers, comma-separated
	// ("nats://a:4222,nats://b:4222"). Required.
	URLs string
	// NodeID names this node in HeaderOrigin and in the NATS connection
	// name; one NATS token (no '.', '*', '>' or whitespace) of at most
	// MaxNodeIDLen bytes. Default: 16 random hex digits.
	NodeID string
	// ReconnectBufSize caps the bytes of messages buffered while NATS is
	// unreachable; past it, messages are dropped and counted
	// (DropNATSDown). Default DefaultReconnectBufSize (8 MiB).
	ReconnectBufSize int
	// PendingMsgs and PendingBytes cap what waits in one NATS
	// subscription for the relay; past them NATS drops and the backplane
	// counts (DropSlowConsumer). Defaults DefaultPendingMsgs (512 Ki)
	// and DefaultPendingBytes (64 MiB).
	PendingMsgs, PendingBytes int
	// RTTInterval is how often the round trip to NATS is measured
	// (Stats.RTT). Default DefaultRTTInterval (5 s).
	RTTInterval time.Duration
	// CloseTimeout bounds how long Close waits for buffered messages to
	// reach NATS. Default DefaultCloseTimeout (2 s).
	CloseTimeout time.Duration
	// Options are more nats.go options (credentials, TLS, reconnect
	// timing). They apply after the backplane's own, which they may
	// override, except the handlers the backplane counts with.
	Options []nats.Option
	// Logger receives connection changes and drops (at most one line per
	// reason per DropLogInterval). Default: discard.
	Logger *slog.Logger
}

func (c *Config) withDefaults() (Config, error) {
	var r Config
	if c != nil {
		r = *c
	}
	r.ReconnectBufSize = cmp.Or(r.ReconnectBufSize, DefaultReconnectBufSize)
	r.PendingMsgs = cmp.Or(r.PendingMsgs, DefaultPendingMsgs)
	r.PendingBytes = cmp.Or(r.PendingBytes, DefaultPendingBytes)
	r.CloseTimeout = cmp.Or(r.CloseTimeout, DefaultCloseTimeout)
	r.RTTInterval = cmp.Or(r.RTTInterval, DefaultRTTInterval)
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.NodeID == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		r.NodeID = hex.EncodeToString(b)
	}
	switch {
	case strings.TrimSpace(r.URLs) == "":
		return r, fmt.Errorf("cluster: Config.URLs is empty")
	case len(r.NodeID) > MaxNodeIDLen:
		return r, fmt.Errorf("cluster: Config.NodeID of %d bytes is longer than the limit of %d", len(r.NodeID), MaxNodeIDLen)
	case strings.ContainsAny(r.NodeID, ".*> \t\r\n"):
		return r, fmt.Errorf("cluster: Config.NodeID %q is not one NATS token (no '.', '*', '>' or whitespace)", r.NodeID)
	case r.ReconnectBufSize < 0:
		return r, fmt.Errorf("cluster: Config.ReconnectBufSize %d is negative", r.ReconnectBufSize)
	case r.PendingMsgs < 0 || r.PendingBytes < 0:
		return r, fmt.Errorf("cluster: Config.PendingMsgs %d or PendingBytes %d is negative", r.PendingMsgs, r.PendingBytes)
	case r.CloseTimeout < 0:
		return r, fmt.Errorf("cluster: Config.CloseTimeout %v is negative", r.CloseTimeout)
	case r.RTTInterval < 0:
		return r, fmt.Errorf("cluster: Config.RTTInterval %v is negative", r.RTTInterval)
	}
	return r, nil
}

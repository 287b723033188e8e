package client

import (
	"cmp"
	"fmt"
	"math"
	"time"
)

// Defaults for [Backoff].
const (
	// DefaultInitialDelay is the ceiling of the first reconnect delay.
	DefaultInitialDelay = 100 * time.Millisecond
	// DefaultMaxDelay caps every reconnect delay.
	DefaultMaxDelay = 30 * time.Second
	// DefaultFactor multiplies the ceiling after each failed attempt.
	DefaultFactor = 2.0
	// DefaultMaxAttempts is the attempt limit: -1 retries for ever.
	DefaultMaxAttempts = -1
)

// Backoff is the reconnection schedule: exponential backoff with full
// jitter. Before attempt n (0-based) the client waits a uniformly random
// duration in [0, min(MaxDelay, InitialDelay*Factor^n)], so that many clients
// that lost the same server come back spread out rather than in lock-step.
// The zero value uses the defaults.
type Backoff struct {
	// InitialDelay is the ceiling of the first delay. Default DefaultInitialDelay (100 ms).
	InitialDelay time.Duration
	// MaxDelay caps every delay. Default DefaultMaxDelay (30 s).
	MaxDelay time.Duration
	// Factor grows the ceiling per attempt; at least 1. Default DefaultFactor (2).
	Factor float64
	// MaxAttempts limits reconnect attempts in a row; -1 means no limit, 0
	// the default (DefaultMaxAttempts, no limit).
	MaxAttempts int
	// Delay, when set, replaces the schedule: it returns the delay before
	// attempt n (0-based). The result is capped at MaxDelay.
	Delay func(attempt int) time.Duration
	// AttemptTimeout, when positive, bounds the first reconnect attempt's
	// handshake; each further attempt in a row gets twice as long, up to
	// Transport.HandshakeTimeout. A server that went away is then found
	// out quickly on the first attempts, and a slow one still gets the
	// full time on later ones. Zero (the default): every attempt waits up
	// to Transport.HandshakeTimeout.
	AttemptTimeout time.Duration
}

// AttemptWait returns how long reconnect attempt n (0-based) waits for
// its handshake under AttemptTimeout, full being Transport.HandshakeTimeout.
func (b Backoff) AttemptWait(n int, full time.Duration) time.Duration {
	if b.AttemptTimeout <= 0 {
		return full
	}
	d := b.AttemptTimeout
	for i := 0; i < n && d < full; i++ {
		d *= 2
	}
	return min(d, full)
}

func (b Backoff) withDefaults() (Backoff, error) {
	b.InitialDelay = cmp.Or(b.InitialDelay, DefaultInitialDelay)
	b.MaxDelay = cmp.Or(b.MaxDelay, DefaultMaxDelay)
	b.Factor = cmp.Or(b.Factor, DefaultFactor)
	b.MaxAttempts = cmp.Or(b.MaxAttempts, DefaultMaxAttempts)
	switch {
	case b.InitialDelay < 0:
		return b, fmt.Errorf("client: Backoff.InitialDelay %s is negative", b.InitialDelay)
	case b.MaxDelay < b.InitialDelay:
		return b, fmt.Errorf("client: Backoff.MaxDelay %s is below InitialDelay %s", b.MaxDelay, b.InitialDelay)
	case b.Factor < 1 || math.IsNaN(b.Factor) || math.IsInf(b.Factor, 0):
		return b, fmt.Errorf("client: Backoff.Factor %v must be at least 1", b.Factor)
	case b.MaxAttempts < -1:
		return b, fmt.Errorf("client: Backoff.MaxAttempts %d must be -1 (no limit) or positive", b.MaxAttempts)
	}
	return b, nil
}

// Ceiling returns the largest delay the schedule allows before attempt n.
func (b Backoff) Ceiling(attempt int) time.Duration {
	if b.Delay != nil {
		return min(b.Delay(attempt), b.MaxDelay)
	}
	c := float64(b.InitialDelay) * math.Pow(b.Factor, float64(attempt))
	if c >= float64(b.MaxDelay) || math.IsInf(c, 0) {
		return b.MaxDelay
	}
	return time.Duration(c)
}

// next returns the delay before attempt n: uniform in [0, Ceiling(n)] for the
// built-in schedule, exactly the hook's value (capped) otherwise. intN
// returns a uniform number in [0, n): rand.Int64N, which is safe for
// concurrent use, or a seeded source's in tests.
func (b Backoff) next(attempt int, intN func(n int64) int64) time.Duration {
	c := b.Ceiling(attempt)
	if b.Delay != nil || c <= 0 {
		return max(c, 0)
	}
	return time.Duration(intN(int64(c) + 1))
}

// exhausted reports whether attempt n (0-based) is over the limit.
func (b Backoff) exhausted(attempt int) bool {
	return b.MaxAttempts >= 0 && attempt >= b.MaxAttempts
}

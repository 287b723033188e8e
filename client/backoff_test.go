package client

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffCeilingGrowsAndCaps(t *testing.T) {
	b, err := Backoff{InitialDelay: 100 * time.Millisecond, MaxDelay: time.Second, Factor: 2}.withDefaults()
	require.NoError(t, err)
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		require.Equal(t, w*time.Millisecond, b.Ceiling(i), "attempt %d", i)
	}
	require.Equal(t, time.Second, b.Ceiling(10_000), "no overflow")
}

func TestBackoffFullJitterStaysInBoundsAndSpreads(t *testing.T) {
	b, err := Backoff{}.withDefaults()
	require.NoError(t, err)
	rnd := rand.New(rand.NewPCG(1, 2))
	for attempt := range 20 {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := b.next(attempt, rnd.Int64N)
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.LessOrEqual(t, d, b.Ceiling(attempt))
			seen[d] = true
		}
		require.Greater(t, len(seen), 150, "delays are spread, not in lock-step")
	}
}

func TestBackoffHookAndLimits(t *testing.T) {
	b, err := Backoff{MaxDelay: time.Second, Delay: func(n int) time.Duration { return time.Duration(n) * time.Hour }, MaxAttempts: 3}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, time.Duration(0), b.next(0, nil))
	require.Equal(t, time.Second, b.next(2, nil), "the hook is capped by MaxDelay")
	require.False(t, b.exhausted(2))
	require.True(t, b.exhausted(3))

	_, err = Backoff{Factor: 0.5}.withDefaults()
	require.ErrorContains(t, err, "Backoff.Factor")
	_, err = Backoff{InitialDelay: time.Minute, MaxDelay: time.Second}.withDefaults()
	require.ErrorContains(t, err, "Backoff.MaxDelay")
	_, err = Backoff{MaxAttempts: -2}.withDefaults()
	require.ErrorContains(t, err, "Backoff.MaxAttempts")
}

func TestAttemptTimeoutDoublesUpToTheHandshakeTimeout(t *testing.T) {
	full := 5 * time.Second
	require.Equal(t, full, Backoff{}.AttemptWait(0, full), "off by default: every attempt gets the full time")
	b := Backoff{AttemptTimeout: 500 * time.Millisecond}
	var got []time.Duration
	for n := range 6 {
		got = append(got, b.AttemptWait(n, full))
	}
	require.Equal(t, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, full, full}, got)
	require.Equal(t, time.Second, Backoff{AttemptTimeout: 3 * time.Second}.AttemptWait(0, time.Second), "never above the handshake timeout")
}

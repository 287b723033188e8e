package client

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// TestReconnectScheduleStaysWithinBounds runs the reconnect loop against a
// server that never answers, on synctest's fake clock: each wait between
// attempts must lie within the backoff ceiling for that attempt, and the loop
// must stop at the attempt limit.
func TestReconnectScheduleStaysWithinBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conf, err := (&Config{Backoff: Backoff{
			InitialDelay: 100 * time.Millisecond, MaxDelay: 2 * time.Second, Factor: 2, MaxAttempts: 12,
		}}).withDefaults()
		require.NoError(t, err)
		c := newClient(conf, testClientTLSStub(), "127.0.0.1:1")
		defer c.cancel()
		var attempts []time.Time
		dialErr := errors.New("no answer")
		c.dial = func(context.Context, string) (*transport.Conn, error) {
			attempts = append(attempts, time.Now())
			return nil, dialErr
		}
		start := time.Now()
		_, err = c.reconnect(false, 0)
		require.ErrorIs(t, err, ErrGaveUp)
		require.ErrorIs(t, err, dialErr)
		require.Len(t, attempts, 12)
		prev := start
		for i, at := range attempts {
			wait := at.Sub(prev)
			require.GreaterOrEqual(t, wait, time.Duration(0))
			require.LessOrEqual(t, wait, conf.Backoff.Ceiling(i), "attempt %d waited %s", i, wait)
			prev = at
		}
		// The whole schedule is bounded by the sum of the ceilings.
		var bound time.Duration
		for i := range 12 {
			bound += conf.Backoff.Ceiling(i)
		}
		require.LessOrEqual(t, attempts[11].Sub(start), bound)
	})
}

// TestReconnectAfterGoAwayOrRejectionStartsAtOnce: the first attempt after a
// GOAWAY or a rejected 0-RTT is not delayed.
func TestReconnectImmediateFirstAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conf, err := (&Config{Backoff: Backoff{MaxAttempts: 1}}).withDefaults()
		require.NoError(t, err)
		c := newClient(conf, testClientTLSStub(), "127.0.0.1:1")
		defer c.cancel()
		var at time.Time
		c.dial = func(context.Context, string) (*transport.Conn, error) {
			at = time.Now()
			return nil, errors.New("down")
		}
		start := time.Now()
		_, err = c.reconnect(true, 0)
		require.ErrorIs(t, err, ErrGaveUp)
		require.Equal(t, start, at)
	})
}

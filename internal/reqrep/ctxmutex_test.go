package reqrep

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// A Lock waiting behind a holder gives up when its own ctx ends, and gets
// the lock once the holder lets go.
func TestCtxMutexLockEndsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var m CtxMutex
		require.NoError(t, m.Lock(context.Background()))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		require.ErrorIs(t, m.Lock(ctx), context.DeadlineExceeded)

		got := make(chan error, 1)
		go func() { got <- m.Lock(context.Background()) }()
		synctest.Wait()
		m.Unlock()
		require.NoError(t, <-got)
		m.Unlock()
	})
}

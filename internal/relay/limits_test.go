package relay

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSetLimitsChangesTheQueueOfARunningRelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, &Config{QueueSize: 4, SlowConsumer: Drop})
		require.Equal(t, Limits{QueueSize: 4, QueueBytes: DefaultQueueBytes, PublishTimeout: DefaultPublishTimeout}, r.Limits())
		pub, stuck := newPeer("pub"), newPeer("stuck")
		subscribe(t, r, pub, "chat")
		subscribe(t, r, stuck, "chat")
		release := stuck.block()

		publishPaced(r, pub, "chat", 0, 10)
		// One message is being sent, four wait: the other five dropped.
		require.Equal(t, uint64(5), r.Stats().Dropped)

		require.NoError(t, r.SetLimits(Limits{QueueSize: 8}))
		publishPaced(r, pub, "chat", 10, 10)
		require.Equal(t, 9, r.Stats().Queued, "the raised limit holds four more")
		require.Equal(t, uint64(5+6), r.Stats().Dropped)

		// Lowered below what waits: nothing queued is dropped, nothing new
		// is taken until the queue has drained below the limit.
		require.NoError(t, r.SetLimits(Limits{QueueSize: 2, PublishTimeout: time.Second}))
		publishPaced(r, pub, "chat", 20, 3)
		require.Equal(t, 9, r.Stats().Queued)
		require.Equal(t, uint64(5+6+3), r.Stats().Dropped)
		require.Equal(t, Limits{QueueSize: 2, QueueBytes: DefaultQueueBytes, PublishTimeout: time.Second}, r.Limits())

		release()
		synctest.Wait()
		require.Zero(t, r.Stats().Queued)
		requireBalanced(t, r.Stats())
	})
}

func TestSetLimitsRefusesNegativeValuesByName(t *testing.T) {
	r := newRelay(t, nil)
	for _, tc := range []struct {
		l    Limits
		want string
	}{
		{Limits{QueueSize: -1}, "QueueSize"},
		{Limits{QueueBytes: -1}, "QueueBytes"},
		{Limits{PublishTimeout: -time.Second}, "PublishTimeout"},
	} {
		require.ErrorContains(t, r.SetLimits(tc.l), tc.want)
	}
	require.Equal(t, Limits{QueueSize: DefaultQueueSize, QueueBytes: DefaultQueueBytes, PublishTimeout: DefaultPublishTimeout}, r.Limits())
}

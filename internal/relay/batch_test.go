package relay

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// The drain goroutine hands the messages of a channel that wait in the
// queue to the peer in one call, and stops a batch at a gap notice, which
// keeps its place and its count; every copy ends in one counter.
func TestDrainHandsWaitingMessagesOverTogetherAndKeepsGapsInPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newBatchRelay(t, &Config{QueueSize: 4})
		pub, sub := newPeer("pub"), newPeer("sub")
		subscribe(t, r, sub, "a", "b")
		release := sub.block()

		publish(r, pub, "a", "0") // in flight
		synctest.Wait()
		publishN(r, pub, "a", 1, 4) // the queue is full
		publish(r, pub, "a", "5")   // dropped: gap a opens
		publish(r, pub, "b", "0")   // dropped: gap b opens
		publish(r, pub, "a", "6")   // dropped: gap a grows
		release()
		synctest.Wait()
		publishN(r, pub, "a", 7, 3) // the peer takes everything again

		synctest.Wait()
		require.Equal(t, concat(want("a", 0, 5),
			[]string{gapRec("a", 2, transport.GapSlowConsumer), gapRec("b", 1, transport.GapSlowConsumer)},
			want("a", 7, 3)), sub.received())
		sub.mu.Lock()
		offered := sub.offered
		sub.mu.Unlock()
		// a:1 to a:4 were offered in one call; the gated peer took one
		// per call, as a peer takes what fits without waiting.
		require.Equal(t, []int{1, 4, 3, 2, 1}, offered[:5])
		st := r.Stats()
		require.Equal(t, uint64(8), st.Delivered)
		require.Equal(t, uint64(3), st.Dropped)
		require.Equal(t, GapStats{Notices: 2, Messages: 3}, st.SlowConsumerGaps)
		require.Equal(t, st.Routed, st.Delivered+st.Dropped+st.Failed+uint64(st.Queued))
	})
}

// Publish copies the message into the queues: the caller's Message does
// not escape, and routing a copy to a subscriber allocates nothing (the
// queue's ring grows by doubling, rarely). Before, each publish cost the
// *transport.Message the queue kept.
func TestPublishAllocatesNothingPerCopy(t *testing.T) {
	r := newBatchRelay(t, nil)
	pub := newPeer("pub")
	subs := []*fakePeer{newPeer("s1"), newPeer("s2"), newPeer("s3")}
	for _, sub := range subs {
		subscribe(t, r, sub, "c")
		defer sub.block()() // the drain goroutines wait: nothing is started per copy
	}
	data := []byte("payload")
	ctx := context.Background()
	require.Equal(t, 3, func() int { n, _ := r.Publish(ctx, pub, &transport.Message{Subject: "c", Data: data}); return n }())
	allocs := testing.AllocsPerRun(200, func() {
		m := transport.Message{Subject: "c", Data: data}
		if n, _ := r.Publish(ctx, pub, &m); n != 3 {
			t.Fatalf("queued %d copies, want 3", n)
		}
	})
	require.Zero(t, allocs)
}

// A subscriber's drain goroutine comes and goes with every burst (it exits
// when the queue is empty): taking a burst's batch allocates nothing. Before,
// an emptied queue let its batch buffer go, and the next burst grew a new
// one from nothing, seven allocations for 64 messages.
func TestBurstAfterBurstTakesBatchesWithoutAllocating(t *testing.T) {
	r := newBatchRelay(t, nil)
	s := newSubscriber(r, newPeer("sub"))
	t.Cleanup(s.endLife)
	m := transport.Message{Subject: "c", Data: []byte("payload")}
	burst := func() {
		s.mu.Lock()
		s.running = true // as if the drain goroutine ran: the test is it
		s.mu.Unlock()
		for range maxBatch {
			s.mu.Lock()
			s.pushLocked("c", &m)
		}
		b, ok := s.next()
		if !ok || len(b.msgs) != maxBatch {
			t.Fatalf("took %d messages, want %d", len(b.msgs), maxBatch)
		}
		clear(b.msgs) // as drain does once they are sent
		r.queued.Add(-maxBatch)
		if _, ok := s.next(); ok {
			t.Fatal("the queue should be empty")
		}
	}
	burst()
	require.Zero(t, testing.AllocsPerRun(100, burst))
}

// Publish counts a message's copies in Queued before queueing them, with
// one addition for all of them, and takes back those it did not queue
// (dropped here: the queues are small): a drain goroutine that sends a
// copy at once never takes Queued below zero, and at the end every copy
// is in exactly one counter.
func TestQueuedIsNeverNegativeWhileDrainsSend(t *testing.T) {
	for _, policy := range []SlowConsumerPolicy{Drop, Block} {
		t.Run(policy.String(), func(t *testing.T) {
			r := newBatchRelay(t, &Config{QueueSize: 4, SlowConsumer: policy, PublishTimeout: time.Minute})
			pub := newPeer("pub")
			subscribe(t, r, pub, "c")
			subs := make([]*fakePeer, 10)
			for i := range subs {
				subs[i] = newPeer(strconv.Itoa(i))
				subscribe(t, r, subs[i], "c")
			}
			stop := make(chan struct{})
			var poller sync.WaitGroup
			var lowest atomic.Int64
			poller.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if q := int64(r.Stats().Queued); q < lowest.Load() {
						lowest.Store(q)
					}
				}
			})
			publishN(r, pub, "c", 0, 2000)
			close(stop)
			poller.Wait()
			require.Zero(t, lowest.Load(), "Queued went below zero")
			require.Eventually(t, func() bool { return r.Stats().Queued == 0 }, 10*time.Second, time.Millisecond)
			st := r.Stats()
			require.Equal(t, uint64(2000*len(subs)), st.Routed)
			requireBalanced(t, st)
		})
	}
}

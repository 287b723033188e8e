package relay

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// fakePeer records what the relay sends it. While gate is open (nil or
// closed) SendMsg returns at once; otherwise it waits for the gate, or for
// one of tokens, or ctx. SendGap never waits.
type fakePeer struct {
	name string

	mu           sync.Mutex
	got          []string // "channel:payload", "channel[subject]:payload", "channel:gap N/R"
	msgs         []*transport.Message
	gate         chan struct{}
	tokens       chan struct{}
	sendErr      error
	refuse       func(*transport.Message) error // set before use: SendMsg's error for one message
	gapErr       error                          // set before use: SendGap's error
	disconnected []transport.ErrorCode
	deadlines    []time.Duration // of the DisconnectGracefully contexts
	offered      []int           // the number of messages of each SendMsgs call
}

func newPeer(name string) *fakePeer { return &fakePeer{name: name} }

func (p *fakePeer) ID() transport.SessionID {
	var id transport.SessionID
	copy(id[:], p.name)
	return id
}

// SendMsgs sends each message as SendMsg, one at a time. While the peer
// has a gate it takes one message per call, as a peer takes only what
// fits without waiting: the relay checks the subscription again before
// the rest.
func (p *fakePeer) SendMsgs(ctx context.Context, channel string, msgs []transport.Message) (int, error) {
	p.mu.Lock()
	gated := p.gate != nil
	p.offered = append(p.offered, len(msgs))
	p.mu.Unlock()
	if gated {
		if err := p.SendMsg(ctx, channel, &msgs[0]); err != nil {
			return 0, err
		}
		return 1, nil
	}
	for i := range msgs {
		if err := p.SendMsg(ctx, channel, &msgs[i]); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

func (p *fakePeer) SendMsg(ctx context.Context, channel string, m *transport.Message) error {
	p.mu.Lock()
	gate, tokens, err := p.gate, p.tokens, p.sendErr
	p.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-tokens:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err == nil && p.refuse != nil {
		err = p.refuse(m)
	}
	if err != nil {
		return err
	}
	rec := channel + ":" + string(m.Data)
	if m.Subject != channel {
		rec = channel + "[" + m.Subject + "]:" + string(m.Data)
	}
	p.mu.Lock()
	p.got = append(p.got, rec)
	kept := *m // the relay reuses its batch
	p.msgs = append(p.msgs, &kept)
	p.mu.Unlock()
	return nil
}

func (p *fakePeer) SendGap(_ context.Context, channel string, g transport.Gap) error {
	if p.gapErr != nil {
		return p.gapErr
	}
	p.mu.Lock()
	p.got = append(p.got, gapRec(channel, g.Missed, g.Reason))
	p.mu.Unlock()
	return nil
}

func gapRec(channel string, missed uint64, reason transport.GapReason) string {
	return fmt.Sprintf("%s:gap %d/%d", channel, missed, reason)
}

func (p *fakePeer) DisconnectGracefully(ctx context.Context, code transport.ErrorCode, _ string) error {
	d, _ := ctx.Deadline()
	p.mu.Lock()
	p.disconnected = append(p.disconnected, code)
	p.deadlines = append(p.deadlines, time.Until(d))
	p.mu.Unlock()
	return nil
}

// block makes SendMsg wait until the returned function is called.
func (p *fakePeer) block() (release func()) {
	gate := make(chan struct{})
	p.mu.Lock()
	p.gate = gate
	p.tokens = make(chan struct{})
	p.mu.Unlock()
	return func() { close(gate) }
}

// step lets one waiting SendMsg of a blocked peer through.
func (p *fakePeer) step() {
	p.mu.Lock()
	tokens := p.tokens
	p.mu.Unlock()
	tokens <- struct{}{}
}

func (p *fakePeer) received() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

func (p *fakePeer) disconnects() []transport.ErrorCode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]transport.ErrorCode(nil), p.disconnected...)
}

// newRelay returns a relay that hands the peer one message at a time, so
// that the tests of the policies count what waits in a queue exactly as a
// peer that blocks on each message sees it; newBatchRelay keeps the
// default batches.
func newRelay(t *testing.T, cfg *Config) *Relay {
	t.Helper()
	r := newBatchRelay(t, cfg)
	r.batch = 1
	return r
}

func newBatchRelay(t *testing.T, cfg *Config) *Relay {
	t.Helper()
	r, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r
}

func subscribe(t *testing.T, r *Relay, p Peer, channels ...string) {
	t.Helper()
	for _, ch := range channels {
		require.NoError(t, r.Subscribe(p, ch, ""))
	}
}

// publish publishes data to subject and returns how many copies were queued.
func publish(r *Relay, from Peer, subject, data string) int {
	n, err := r.Publish(context.Background(), from, &transport.Message{Subject: subject, Data: []byte(data)})
	if err != nil {
		panic(err)
	}
	return n
}

func publishN(r *Relay, from Peer, channel string, first, n int) {
	for i := first; i < first+n; i++ {
		publish(r, from, channel, strconv.Itoa(i))
	}
}

// publishPaced publishes like publishN but lets every goroutine of the
// synctest bubble run between messages, so that subscribers that are not
// blocked keep up however small their queue is.
func publishPaced(r *Relay, from Peer, channel string, first, n int) {
	for i := first; i < first+n; i++ {
		publish(r, from, channel, strconv.Itoa(i))
		synctest.Wait()
	}
}

func want(channel string, first, n int) []string {
	out := make([]string, 0, n)
	for i := first; i < first+n; i++ {
		out = append(out, fmt.Sprintf("%s:%d", channel, i))
	}
	return out
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// requireBalanced checks that every routed copy is in exactly one counter.
func requireBalanced(t *testing.T, st Stats) {
	t.Helper()
	require.Equal(t, st.Routed, st.Delivered+st.Dropped+st.Failed+uint64(st.Queued), "%+v", st)
}

func TestPublishReachesEveryOtherSubscriberInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		a, b, c, d := newPeer("a"), newPeer("b"), newPeer("c"), newPeer("d")
		for _, p := range []*fakePeer{a, b, c} {
			subscribe(t, r, p, "chat")
		}
		subscribe(t, r, d, "news")

		for i := range 50 {
			require.Equal(t, 2, publish(r, a, "chat", strconv.Itoa(i)))
		}
		synctest.Wait()

		require.Empty(t, a.received(), "the publisher does not get its own messages")
		require.Equal(t, want("chat", 0, 50), b.received())
		require.Equal(t, want("chat", 0, 50), c.received())
		require.Empty(t, d.received(), "other channels are not affected")
		st := r.Stats()
		require.Equal(t, Stats{Subscribers: 4, Subscriptions: 4, Channels: 2, Published: 50, Routed: 100, Delivered: 100}, st)
	})
}

func TestPublishWithoutSubscribersGoesNowhere(t *testing.T) {
	r := newRelay(t, nil)
	a := newPeer("a")
	subscribe(t, r, a, "chat")
	require.Zero(t, publish(r, a, "chat", "alone"))
	require.Zero(t, publish(r, a, "empty", "nobody"))
	st := r.Stats()
	require.Equal(t, uint64(2), st.Published)
	require.Zero(t, st.Routed)
	require.Zero(t, st.NoResponders, "no reply-to, no reply")
}

func TestSlowSubscriberGetsAGapNoticeWithoutSlowingOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, &Config{QueueSize: 4, SlowConsumer: Drop})
		pub, stuck, fast := newPeer("pub"), newPeer("stuck"), newPeer("fast")
		for _, p := range []*fakePeer{pub, stuck, fast} {
			subscribe(t, r, p, "chat")
		}
		release := stuck.block()

		// Publish never waits for the stuck subscriber: were it to, this
		// bubble would deadlock and synctest would fail the test.
		publishPaced(r, pub, "chat", 0, 100)

		require.Equal(t, want("chat", 0, 100), fast.received())
		st := r.Stats()
		// One message is being sent to the stuck subscriber, four wait;
		// the gap item waiting behind them is not a copy.
		require.Equal(t, 5, st.Queued)
		require.Equal(t, uint64(95), st.Dropped)
		require.Equal(t, uint64(1), st.SlowConsumerEvents)
		require.Zero(t, st.SlowConsumerDisconnects)
		requireBalanced(t, st)

		release()
		synctest.Wait()
		gap := gapRec("chat", 95, transport.GapSlowConsumer)
		require.Equal(t, concat(want("chat", 0, 5), []string{gap}), stuck.received(),
			"the oldest messages were kept, then the subscriber is told what it missed")

		// Once caught up, the subscriber gets new messages again.
		publishPaced(r, pub, "chat", 100, 10)
		require.Equal(t, concat(want("chat", 0, 5), []string{gap}, want("chat", 100, 10)), stuck.received())
		require.Equal(t, want("chat", 0, 110), fast.received())
		require.Empty(t, stuck.disconnects())

		st = r.Stats()
		require.Zero(t, st.Queued)
		require.Equal(t, uint64(125), st.Delivered)
		require.Equal(t, GapStats{Notices: 1, Messages: 95}, st.SlowConsumerGaps)
		requireBalanced(t, st)
		require.Equal(t, SubscriberStats{Delivered: 15, Dropped: 95}, r.Remove(stuck))
	})
}

// Gap items sit in the queue at the place of the drop: a message queued
// for the channel closes the open gap, the next drop opens another.
func TestGapNoticesKeepTheirPlaceAndCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, &Config{QueueSize: 2})
		pub, sub := newPeer("pub"), newPeer("sub")
		subscribe(t, r, sub, "a", "b")
		release := sub.block()

		publish(r, pub, "a", "0") // in flight
		synctest.Wait()
		publish(r, pub, "a", "1")
		publish(r, pub, "a", "2") // the queue is full
		publish(r, pub, "a", "3") // dropped: gap a opens
		publish(r, pub, "b", "0") // dropped: gap b opens
		publish(r, pub, "a", "4") // dropped: gap a grows

		sub.step() // a:0 sent; a:1 in flight; a:2 and the gaps wait
		synctest.Wait()
		publish(r, pub, "a", "5") // queued after gap a, which it closes
		publish(r, pub, "a", "6") // dropped: a new gap a
		publish(r, pub, "b", "1") // dropped: gap b, still open, grows

		release()
		synctest.Wait()
		require.Equal(t, []string{
			"a:0", "a:1", "a:2",
			gapRec("a", 2, transport.GapSlowConsumer),
			gapRec("b", 2, transport.GapSlowConsumer),
			"a:5",
			gapRec("a", 1, transport.GapSlowConsumer),
		}, sub.received())
		st := r.Stats()
		require.Equal(t, GapStats{Notices: 3, Messages: 5}, st.SlowConsumerGaps)
		require.Equal(t, uint64(5), st.Dropped)
		requireBalanced(t, st)
	})
}

// However long a subscriber stays stuck, its queue holds at most
// QueueSize messages and one gap item per channel.
func TestGapItemsAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const queueSize, channels = 3, 4
		r := newRelay(t, &Config{QueueSize: queueSize})
		pub, sub := newPeer("pub"), newPeer("sub")
		release := sub.block()
		for c := range channels {
			subscribe(t, r, sub, "c"+strconv.Itoa(c))
		}
		publish(r, pub, "c0", "in flight")
		synctest.Wait()
		for i := range 1000 {
			publish(r, pub, "c"+strconv.Itoa(i%channels), strconv.Itoa(i))
		}
		synctest.Wait()
		s := r.peers[sub]
		s.mu.Lock()
		items, msgs := s.queue.Len(), s.msgs
		s.mu.Unlock()
		require.Equal(t, queueSize, msgs)
		require.Equal(t, queueSize+channels, items, "the messages and one open gap per channel")
		release()
		synctest.Wait()
		st := r.Stats()
		require.Equal(t, st.Dropped, st.SlowConsumerGaps.Messages, "every dropped copy was reported")
		require.Equal(t, uint64(channels), st.SlowConsumerGaps.Notices)
		requireBalanced(t, st)
	})
}

func TestSlowSubscriberIsToldAndDisconnectedWithoutSlowingOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, &Config{QueueSize: 4, SlowConsumer: Disconnect})
		pub, stuck, fast := newPeer("pub"), newPeer("stuck"), newPeer("fast")
		for _, p := range []*fakePeer{pub, stuck, fast} {
			subscribe(t, r, p, "chat")
		}
		subscribe(t, r, stuck, "quiet")
		stuck.block()

		publishPaced(r, pub, "chat", 0, 100)

		require.Equal(t, want("chat", 0, 100), fast.received())
		require.Equal(t, []transport.ErrorCode{transport.CodeSlowConsumer}, stuck.disconnects())
		require.Equal(t, []time.Duration{DisconnectTimeout}, stuck.deadlines, "the graceful close is bounded")
		// The one in flight, the four queued and the one that overflowed:
		// one notice on the channel that lost them, none on the other.
		require.Equal(t, []string{gapRec("chat", 6, transport.GapDisconnect)}, stuck.received())
		st := r.Stats()
		require.Equal(t, uint64(1), st.SlowConsumerEvents)
		require.Equal(t, uint64(1), st.SlowConsumerDisconnects)
		require.Equal(t, GapStats{Notices: 1, Messages: 6}, st.DisconnectGaps)
		// The message in flight failed when its Send was cancelled; the
		// four queued and the one that overflowed were dropped; the 94
		// after it were not routed to the disconnected subscriber at all.
		require.Equal(t, uint64(1), st.Failed)
		require.Equal(t, uint64(5), st.Dropped)
		require.Equal(t, uint64(106), st.Routed)
		require.Zero(t, st.Queued)
		require.Equal(t, 2, st.Subscriptions)
		requireBalanced(t, st)
		require.Equal(t, SubscriberStats{Dropped: 5, Failed: 1}, r.Remove(stuck))
	})
}

func TestBlockPolicyWaitsForRoomAndLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, &Config{QueueSize: 2, SlowConsumer: Block})
		pub, slowSub, fast := newPeer("pub"), newPeer("slow"), newPeer("fast")
		subscribe(t, r, slowSub, "c")
		subscribe(t, r, fast, "c")
		release := slowSub.block()

		done := make(chan struct{})
		go func() {
			defer close(done)
			publishN(r, pub, "c", 0, 20)
		}()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Publish did not wait for the full queue")
		default:
		}
		st := r.Stats()
		// In flight is the batch the drain took before the queue filled:
		// one message, or two when it ran only after the second publish.
		require.Contains(t, []int{4, 5}, st.Queued, "one or two in flight, two queued, one held by the waiting Publish")
		require.NotZero(t, st.SlowConsumerEvents)
		requireBalanced(t, st)

		release()
		<-done
		synctest.Wait()
		require.Equal(t, want("c", 0, 20), slowSub.received())
		require.Equal(t, want("c", 0, 20), fast.received())
		st = r.Stats()
		require.Zero(t, st.Dropped)
		require.Zero(t, st.PublishTimeouts)
		require.Equal(t, uint64(40), st.Delivered)
		requireBalanced(t, st)
	})
}

func TestBlockPolicyDisconnectsOnlyTheStuckSubscriberAfterTheTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, &Config{QueueSize: 2, SlowConsumer: Block, PublishTimeout: 3 * time.Second})
		pub, stuck, fast := newPeer("pub"), newPeer("stuck"), newPeer("fast")
		subscribe(t, r, stuck, "c")
		subscribe(t, r, fast, "c")
		stuck.block()

		start := time.Now()
		publishN(r, pub, "c", 0, 4)
		synctest.Wait()
		// The fourth message waited for the whole timeout, then the stuck
		// subscriber was disconnected.
		require.Equal(t, 3*time.Second, time.Since(start))
		start = time.Now()
		publishN(r, pub, "c", 4, 6)
		require.Zero(t, time.Since(start), "the others go on at once")
		synctest.Wait()
		require.Equal(t, want("c", 0, 10), fast.received())
		require.Equal(t, []transport.ErrorCode{transport.CodeSlowConsumer}, stuck.disconnects())
		require.Empty(t, fast.disconnects())
		// In flight, two queued, the one that waited.
		require.Equal(t, []string{gapRec("c", 4, transport.GapDisconnect)}, stuck.received())
		st := r.Stats()
		require.Equal(t, uint64(1), st.PublishTimeouts)
		require.Equal(t, uint64(1), st.SlowConsumerDisconnects)
		require.Equal(t, 1, st.Subscriptions)
		requireBalanced(t, st)
	})
}

func TestBlockedPublishEndsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, &Config{QueueSize: 1, SlowConsumer: Block})
		pub, stuck := newPeer("pub"), newPeer("stuck")
		subscribe(t, r, stuck, "c")
		stuck.block()
		publishN(r, pub, "c", 0, 2) // one in flight, one queued
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := r.Publish(ctx, pub, &transport.Message{Subject: "c", Data: []byte("2")})
		require.NoError(t, err)
		require.Zero(t, n)
		st := r.Stats()
		require.Equal(t, uint64(1), st.Failed, "the copy the publisher gave up on")
		require.Zero(t, st.PublishTimeouts)
		require.Empty(t, stuck.disconnects())
		requireBalanced(t, st)
	})
}

func TestQueueBytesBoundsASubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, &Config{QueueSize: 1000, QueueBytes: 10})
		pub, stuck := newPeer("pub"), newPeer("stuck")
		subscribe(t, r, stuck, "c")
		release := stuck.block()

		big := string(make([]byte, 100))
		publish(r, pub, "c", big) // in flight
		synctest.Wait()
		publish(r, pub, "c", big) // larger than QueueBytes, but the queue is empty
		publish(r, pub, "c", "x")
		st := r.Stats()
		require.Equal(t, 2, st.Queued)
		require.Equal(t, uint64(1), st.Dropped)
		release()
		synctest.Wait()
		require.Len(t, stuck.received(), 3, "two messages and a gap notice")
	})
}

func TestChannelResetByPeerEndsItsSubscription(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		pub, gone := newPeer("pub"), newPeer("gone")
		subscribe(t, r, gone, "c")
		gone.mu.Lock()
		gone.sendErr = &transport.ChannelError{Channel: "c", Code: transport.CodeChannelClosed, Remote: true}
		gone.mu.Unlock()

		require.Equal(t, 1, publish(r, pub, "c", "1"))
		synctest.Wait()
		require.Zero(t, publish(r, pub, "c", "2"), "no longer subscribed")
		st := r.Stats()
		require.Equal(t, uint64(1), st.Failed)
		require.Zero(t, st.Subscriptions)
	})
}

func TestUnsubscribedMessagesAreNotSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		pub, sub := newPeer("pub"), newPeer("sub")
		subscribe(t, r, pub, "c")
		subscribe(t, r, sub, "c", "d")
		release := sub.block()
		publishN(r, pub, "c", 0, 3)
		synctest.Wait()
		r.Unsubscribe(sub, "c")
		release()
		synctest.Wait()
		// The first was already being sent; the other two waited and were
		// discarded instead of reopening the channel on the peer.
		require.Equal(t, want("c", 0, 1), sub.received())
		st := r.Stats()
		require.Equal(t, Stats{Subscribers: 2, Subscriptions: 2, Channels: 2, Published: 3, Routed: 3, Delivered: 1, Failed: 2}, st)
	})
}

func TestRemoveStopsABlockedSubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		pub, sub := newPeer("pub"), newPeer("sub")
		subscribe(t, r, pub, "c")
		subscribe(t, r, sub, "c")
		sub.block()
		publishN(r, pub, "c", 0, 10)
		synctest.Wait()

		require.Equal(t, SubscriberStats{Failed: 10}, r.Remove(sub))
		require.Zero(t, publish(r, pub, "c", "after"))
		st := r.Stats()
		require.Zero(t, st.Queued)
		require.Equal(t, 1, st.Subscribers)
		requireBalanced(t, st)
		require.Equal(t, SubscriberStats{}, r.Remove(sub), "removing twice is harmless")
	})
}

func TestCloseStopsEverySubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := New(nil)
		require.NoError(t, err)
		pub := newPeer("pub")
		for i := range 5 {
			p := newPeer(strconv.Itoa(i))
			p.block()
			subscribe(t, r, p, "c")
		}
		publishN(r, pub, "c", 0, 3)
		synctest.Wait()
		require.NoError(t, r.Close())
		require.NoError(t, r.Close())
		require.Zero(t, publish(r, pub, "c", "late"))
		require.ErrorIs(t, r.Subscribe(pub, "c", ""), ErrClosed)
		st := r.Stats()
		require.Zero(t, st.Subscribers)
		require.Equal(t, uint64(15), st.Failed)
		requireBalanced(t, st)
	})
}

// Every routed copy is in exactly one counter, under each policy, with
// publishers, subscribers and unsubscriptions racing.
func TestEveryCopyIsCountedOnceUnderEachPolicy(t *testing.T) {
	for _, policy := range []SlowConsumerPolicy{Drop, Disconnect, Block} {
		t.Run(policy.String(), func(t *testing.T) {
			r := newRelay(t, &Config{QueueSize: 8, SlowConsumer: policy, PublishTimeout: time.Second})
			const peers, msgs = 8, 200
			ps := make([]*fakePeer, peers)
			for i := range ps {
				ps[i] = newPeer(strconv.Itoa(i))
				subscribe(t, r, ps[i], "c", "c.*", "c.>")
			}
			var wg sync.WaitGroup
			for i, p := range ps {
				wg.Go(func() {
					publishN(r, p, "c", i*msgs, msgs/2)
					publishN(r, p, "c.x", i*msgs, msgs/2)
					if i%2 == 0 {
						r.Unsubscribe(p, "c.*")
						require.NoError(t, r.Subscribe(p, "c.*", "g"))
					}
				})
			}
			wg.Wait()
			for _, p := range ps {
				r.Remove(p)
			}
			st := r.Stats()
			require.Equal(t, uint64(peers*msgs), st.Published)
			require.Zero(t, st.Queued)
			requireBalanced(t, st)
		})
	}
}

func TestConfigIsValidated(t *testing.T) {
	for _, cfg := range []Config{{QueueSize: -1}, {QueueBytes: -1}, {SlowConsumer: 7}, {PublishTimeout: -1}} {
		_, err := New(&cfg)
		require.Error(t, err)
	}
	_, err := New(&Config{QueueSize: -1})
	require.ErrorContains(t, err, "QueueSize")
	_, err = New(&Config{PublishTimeout: -time.Second})
	require.ErrorContains(t, err, "PublishTimeout")
}

func TestParseSlowConsumerPolicy(t *testing.T) {
	for _, p := range []SlowConsumerPolicy{Drop, Disconnect, Block} {
		got, err := ParseSlowConsumerPolicy(p.String())
		require.NoError(t, err)
		require.Equal(t, p, got)
	}
	_, err := ParseSlowConsumerPolicy("ignore")
	require.Error(t, err)
}

// A copy the subscriber's connection refuses (larger than its limit) is
// reported to it in order with a gap notice (GapRefused), and the next
// copies go on.
func TestRefusedCopyIsReportedWithAGapNotice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		a, b := newPeer("a"), newPeer("b")
		b.refuse = func(m *transport.Message) error {
			if len(m.Data) > 3 {
				return &transport.MessageTooLargeError{Channel: "chat", Size: len(m.Data), Limit: 3}
			}
			return nil
		}
		subscribe(t, r, b, "chat")
		for _, msg := range []string{"1", "2222", "3"} {
			publish(r, a, "chat", msg)
		}
		synctest.Wait()
		require.Equal(t, []string{"chat:1", gapRec("chat", 1, transport.GapRefused), "chat:3"}, b.received())
		st := r.Stats()
		require.Equal(t, GapStats{Notices: 1, Messages: 1}, st.RefusedGaps)
		require.Empty(t, b.disconnects())
		requireBalanced(t, st)
	})
}

// A subscriber that must be told of a gap but takes no gap notices (a peer
// without the HEADERS extension) is disconnected as a slow consumer: no
// copy is dropped for it silently.
func TestSubscriberThatCannotBeToldOfAGapIsDisconnected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRelay(t, nil)
		a, b := newPeer("a"), newPeer("b")
		b.gapErr = transport.ErrHeadersUnsupported
		b.refuse = func(m *transport.Message) error {
			if len(m.Data) > 3 {
				return &transport.MessageTooLargeError{Channel: "chat", Size: len(m.Data), Limit: 3}
			}
			return nil
		}
		subscribe(t, r, b, "chat")
		publish(r, a, "chat", "1")
		publish(r, a, "chat", "2222")
		synctest.Wait()
		require.Equal(t, []string{"chat:1"}, b.received())
		require.Equal(t, []transport.ErrorCode{transport.CodeSlowConsumer}, b.disconnects())
		st := r.Stats()
		require.Equal(t, uint64(1), st.SlowConsumerDisconnects)
		requireBalanced(t, st)
	})
}

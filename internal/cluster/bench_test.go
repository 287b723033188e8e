package cluster

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quicmsg/quicmsg/internal/relay"
	"github.com/quicmsg/quicmsg/transport"
)

// countingPeer counts what it receives and closes done at want.
type countingPeer struct {
	got  atomic.Int64
	want int64
	done chan struct{}
}

func (p *countingPeer) ID() transport.SessionID { return transport.SessionID{} }

func (p *countingPeer) SendMsgs(_ context.Context, _ string, msgs []transport.Message) (int, error) {
	if p.got.Add(int64(len(msgs))) == p.want {
		close(p.done)
	}
	return len(msgs), nil
}

func (p *countingPeer) SendGap(context.Context, string, transport.Gap) error { return nil }

func (p *countingPeer) DisconnectGracefully(context.Context, transport.ErrorCode, string) error {
	return nil
}

// BenchmarkFanOut publishes 64-byte messages on one relay to 10
// subscribers: all on the same relay (single), or 5 on each of two other
// relays linked through an in-process NATS server (cluster). It reports
// the copies delivered per second; compare the two in one run. The relays
// apply the Block policy, so that a publisher faster than the subscribers'
// relays waits (single) or its messages wait in the NATS subscriptions'
// pending queues (cluster) instead of being dropped: every copy is
// delivered, and the figure is the path's throughput.
func BenchmarkFanOut(b *testing.B) {
	for _, clustered := range []bool{false, true} {
		name := "single"
		if clustered {
			name = "cluster"
		}
		b.Run(name, func(b *testing.B) { benchFanOut(b, clustered) })
	}
}

func benchFanOut(b *testing.B, clustered bool) {
	var pub *relay.Relay
	var subs []*relay.Relay
	var nodes []*node
	if clustered {
		s := startNATS(b, 0, nil)
		for _, name := range []string{"a", "b", "c"} {
			nodes = append(nodes, newNodeWith(b, s, name, Config{}, relay.Config{SlowConsumer: relay.Block}))
		}
		pub, subs = nodes[0].r, []*relay.Relay{nodes[1].r, nodes[2].r}
	} else {
		r, err := relay.New(&relay.Config{SlowConsumer: relay.Block})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = r.Close() })
		pub, subs = r, []*relay.Relay{r}
	}
	peers := make([]*countingPeer, 10)
	for i := range peers {
		peers[i] = &countingPeer{want: int64(b.N), done: make(chan struct{})}
		if err := subs[i%len(subs)].Subscribe(peers[i], "fan", ""); err != nil {
			b.Fatal(err)
		}
	}
	syncNodes(b, nodes...)
	data := make([]byte, 64)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := pub.Publish(ctx, nil, &transport.Message{Subject: "fan", Data: data}); err != nil {
			b.Fatal(err)
		}
	}
	timeout := time.After(time.Minute)
	for i, p := range peers {
		select {
		case <-p.done:
		case <-timeout:
			b.Fatalf("subscriber %d got %d of %d messages (its relay dropped %d)", i, p.got.Load(), b.N,
				subs[i%len(subs)].Stats().Dropped)
		}
	}
	b.ReportMetric(float64(10*b.N)/time.Since(start).Seconds(), "delivered/s")
}

package relay

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/quicmsg/quicmsg/transport"
)

// benchPeer accepts every message at once.
type benchPeer struct{ id int }

func (p *benchPeer) ID() transport.SessionID { return transport.SessionID{} }
func (p *benchPeer) SendMsgs(_ context.Context, _ string, msgs []transport.Message) (int, error) {
	return len(msgs), nil
}
func (p *benchPeer) SendGap(context.Context, string, transport.Gap) error { return nil }
func (p *benchPeer) DisconnectGracefully(context.Context, transport.ErrorCode, string) error {
	return nil
}

const benchSubscriptions = 10000

// benchCase subscribes benchSubscriptions peers, one subscription each, and
// returns the subjects to publish to: each matches exactly one
// subscription, in both cases.
type benchCase struct {
	name     string
	pattern  func(i int) string
	subjects func(i int) string
}

var benchCases = []benchCase{
	{
		name:     "exact",
		pattern:  func(i int) string { return "orders." + strconv.Itoa(i) + ".new" },
		subjects: func(i int) string { return "orders." + strconv.Itoa(i) + ".new" },
	},
	{
		// A mix of the three shapes: orders.<i>.*, orders.*.<i>, orders.<i>.>
		name: "wildcard",
		pattern: func(i int) string {
			switch n := strconv.Itoa(i); i % 3 {
			case 0:
				return "orders." + n + ".*"
			case 1:
				return "orders.*." + n
			default:
				return "orders." + n + ".>"
			}
		},
		subjects: func(i int) string {
			if n := strconv.Itoa(i); i%3 == 1 {
				return "orders.new." + n
			}
			return "orders." + strconv.Itoa(i) + ".new"
		},
	},
}

func (bc benchCase) setup(b *testing.B, cfg *Config) (*Relay, []*transport.Message) {
	r, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	msgs := make([]*transport.Message, benchSubscriptions)
	for i := range benchSubscriptions {
		if err := r.Subscribe(&benchPeer{id: i}, bc.pattern(i), ""); err != nil {
			b.Fatal(err)
		}
		msgs[i] = &transport.Message{Subject: bc.subjects(i), Data: make([]byte, 64)}
	}
	return r, msgs
}

// BenchmarkPublish measures Publish with 10,000 subscriptions, exact names
// against wildcard patterns, to peers that accept at once: matching,
// queueing and handing each copy to its subscriber's goroutine.
func BenchmarkPublish(b *testing.B) {
	benchmarkPublish(b, nil)
}

// BenchmarkPublishQueueDelay is BenchmarkPublish with the queueing delay
// sampled (Config.OnQueueDelay), into a no-op: the cost of the sampling.
func BenchmarkPublishQueueDelay(b *testing.B) {
	benchmarkPublish(b, &Config{OnQueueDelay: func(time.Duration) {}})
}

func benchmarkPublish(b *testing.B, cfg *Config) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			r, msgs := bc.setup(b, cfg)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if n, _ := r.Publish(ctx, nil, msgs[i%len(msgs)]); n != 1 {
					b.Fatalf("queued %d copies, want 1", n)
				}
			}
		})
	}
}

// BenchmarkMatch measures the matching alone (what Publish does under the
// relay's read lock before queueing), exact names against wildcard
// patterns, 10,000 subscriptions.
func BenchmarkMatch(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			r, msgs := bc.setup(b, nil)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				r.mu.RLock()
				n := len(r.subs.match(msgs[i%len(msgs)].Subject))
				r.mu.RUnlock()
				if n != 1 {
					b.Fatalf("matched %d, want 1", n)
				}
			}
		})
	}
}

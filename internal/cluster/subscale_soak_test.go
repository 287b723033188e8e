//go:build soak

package cluster

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/relay"
	"github.com/quicmsg/quicmsg/internal/testenv"
)

// TestSoakSubscriptionCost measures what a NATS subscription of local
// interest costs a node: a session subscribes n distinct subjects, and the
// node holds one NATS subscription per subject. The figures are what the
// test process grew by, per subject, next to the same n subscriptions on a
// relay without a backplane: goroutines, goroutine stacks, and heap (which
// includes the in-process NATS server's share). A message from another
// node to the last subject checks that the subscriptions work.
//
// The last figure of each size is for the other model nats.go offers: the
// same subjects as ChanSubscribe subscriptions of a bare connection that
// share one channel (and so one goroutine of their owner's), measured the
// same way.
func TestSoakSubscriptionCost(t *testing.T) {
	for _, n := range []int{1000, 10000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			s := startNATS(t, 0, nil)
			pub := newNode(t, s, "pub", Config{})
			base := measure(t, n, func() *relay.Relay {
				r, err := relay.New(nil)
				require.NoError(t, err)
				t.Cleanup(func() { _ = r.Close() })
				return r
			}, nil)
			var sub *node
			clustered := measure(t, n, func() *relay.Relay {
				sub = newNode(t, s, "sub", Config{})
				return sub.r
			}, func() { syncNodes(t, sub) })
			require.Equal(t, n, sub.bp.Stats().Subscriptions)
			syncNodes(t, pub)
			pub.publish(t, newPeer("pub"), "s."+strconv.Itoa(n-1), "hello")
			clustered.p.waitForMsg(t, ":hello")

			shared := measureShared(t, s.ClientURL(), n)

			per := func(d int64) float64 { return float64(d) / float64(n) }
			testenv.Figure(t, "goroutines per subscription", "%.2f (relay alone %.2f)",
				per(clustered.goroutines), per(base.goroutines))
			testenv.Figure(t, "stack bytes per subscription", "%.0f (relay alone %.0f)",
				per(clustered.stack), per(base.stack))
			testenv.Figure(t, "heap bytes per subscription", "%.0f (relay alone %.0f; includes the in-process NATS server's share)",
				per(clustered.heap), per(base.heap))
			testenv.Figure(t, "one shared channel instead", "%.2f goroutines, %.0f stack bytes, %.0f heap bytes per subscription",
				per(shared.goroutines), per(shared.stack), per(shared.heap))
		})
	}
}

// growth is what n subscriptions added to the process.
type growth struct {
	p                       *peer
	goroutines, stack, heap int64
}

// measure makes a relay with newRelay, subscribes a peer to the n subjects
// s.0 ... s.<n-1> on it, calls settle (if any) to wait for the backplane,
// and returns what the process grew by.
func measure(t *testing.T, n int, newRelay func() *relay.Relay, settle func()) growth {
	t.Helper()
	before := snapshot()
	p := newPeer("sub" + strconv.Itoa(n))
	r := newRelay()
	for i := range n {
		require.NoError(t, r.Subscribe(p, "s."+strconv.Itoa(i), ""))
	}
	if settle != nil {
		settle()
	}
	after := snapshot()
	return growth{p: p, goroutines: after.goroutines - before.goroutines,
		stack: after.stack - before.stack, heap: after.heap - before.heap}
}

// measureShared subscribes a bare NATS connection to the n subjects
// with ChanSubscribe on one channel and returns what the process grew by
// (without the channel's buffer, which does not grow with n).
func measureShared(t *testing.T, url string, n int) growth {
	t.Helper()
	ch := make(chan *nats.Msg, 1)
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.NoError(t, nc.Flush())
	before := snapshot()
	for i := range n {
		_, err := nc.ChanSubscribe("s."+strconv.Itoa(i), ch)
		require.NoError(t, err)
	}
	require.NoError(t, nc.Flush())
	after := snapshot()
	return growth{goroutines: after.goroutines - before.goroutines,
		stack: after.stack - before.stack, heap: after.heap - before.heap}
}

type snap struct{ goroutines, stack, heap int64 }

func snapshot() snap {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return snap{int64(runtime.NumGoroutine()), int64(ms.StackInuse), int64(ms.HeapAlloc)}
}

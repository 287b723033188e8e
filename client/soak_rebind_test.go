//go:build soak

package client

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

const (
	// natRebindings is how many times the soak rebinds the client's NAT
	// mapping; natRebindGap is the least time between two.
	natRebindings = 30
	natRebindGap  = 200 * time.Millisecond
	// natMessages bounds each direction's traffic: at one message per
	// millisecond it outlasts the rebindings.
	natMessages = 10_000
)

// arrivedAt returns when message i arrived.
func (f *seqFlow) arrivedAt(i int) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.arrived[i]
}

// TestSoakNATRebinding rebinds a Client's NAT mapping natRebindings times
// while messages flow both ways, one per millisecond each way, and measures,
// per rebinding and direction, the time from the rebinding to the arrival
// of the first message sent after it (which travels on the new path; the
// wait for the sender's next message, up to about a millisecond, is
// included). Every message must arrive once and in order, and the client
// must never reconnect.
func TestSoakNATRebinding(t *testing.T) {
	r := newNATRig(t, natMessages)
	ctx := testCtx(t)
	conn := r.c.Conn()
	r.start(ctx, time.Millisecond)
	r.up.waitArrived(t, 100)
	r.down.waitArrived(t, 100)

	var upTook, downTook []time.Duration
	start := time.Now()
	for range natRebindings {
		time.Sleep(natRebindGap)
		_, err := r.proxy.Rebind()
		require.NoError(t, err)
		at := time.Now()
		upNext, downNext := int(r.up.sent.Load())+1, int(r.down.sent.Load())+1
		require.Less(t, max(upNext, downNext), natMessages, "traffic outlasts the rebindings")
		r.up.waitArrived(t, upNext+1)
		r.down.waitArrived(t, downNext+1)
		upTook = append(upTook, r.up.arrivedAt(upNext).Sub(at))
		downTook = append(downTook, r.down.arrivedAt(downNext).Sub(at))
	}
	elapsed := time.Since(start)
	require.NoError(t, r.wait())
	r.up.waitArrived(t, natMessages)
	r.down.waitArrived(t, natMessages)

	require.Same(t, conn, r.c.Conn(), "the same connection")
	require.Equal(t, r.proxy.UpstreamAddrs()[0].String(), r.sess.RemoteAddr().String(), "the server follows the last rebinding")
	r.requireNoReconnect(t)
	st := r.c.Stats()
	testenv.Figure(t, "rebindings / in", "%d / %s", natRebindings, elapsed.Round(time.Millisecond))
	testenv.Figure(t, "messages each way, delivered once and in order", "%d", natMessages)
	testenv.Figure(t, "reconnects / EventReconnected / in doubt", "%d / 0 / %d", st.Reconnects, st.MessagesInDoubt)
	for _, d := range []struct {
		name string
		took []time.Duration
	}{{"client to server", upTook}, {"server to client", downTook}} {
		slices.Sort(d.took)
		pct := func(p float64) time.Duration { return d.took[min(len(d.took)-1, int(p*float64(len(d.took))))] }
		ms := func(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
		testenv.Figure(t, "rebinding to first delivery on the new path, "+d.name+", p50 / p90 / max", "%s / %s / %s",
			ms(pct(0.50)), ms(pct(0.90)), ms(d.took[len(d.took)-1]))
	}
}

//go:build soak

package session

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

// The run: 50 peers each flood 1 MiB messages at a stalled handler,
// ignoring SLOW_DOWN, with the default configuration; the heap of this
// process (server and clients) grows by no more than the documented
// formula, and a healthy session beside them keeps its round trips.
func TestSoakFiftyFloodersStayWithinMemoryFormula(t *testing.T) {
	soakFlood(t, Config{})
}

// The same run with a server budget (64 MiB) smaller than the sessions'
// budgets together (50 × 8 MiB): the server stops the biggest holders.
func TestSoakFiftyFloodersWithinServerBudget(t *testing.T) {
	soakFlood(t, Config{ServerPendingBytes: 64 << 20})
}

func soakFlood(t *testing.T, cfg Config) {
	f := runFlood(t, floodSetup{clients: 50, perClient: 32, roundTrips: 200, cfg: cfg})
	slices.Sort(f.rtts)
	testenv.Figure(t, "heap growth (server+clients)", "%d MiB", f.heapGrowth>>20)
	testenv.Figure(t, "formula bound", "%d MiB", f.formula>>20)
	testenv.Figure(t, "growth / formula", "%.2f", float64(f.heapGrowth)/float64(f.formula))
	testenv.Figure(t, "server pending bytes", "%d MiB", f.pending>>20)
	testenv.Figure(t, "messages received", "%d of %d sent at most", f.received, 50*32)
	testenv.Figure(t, "healthy round trips", "%d of 200", f.roundTrips)
	testenv.Figure(t, "healthy round trip p50", "%v", f.rtts[len(f.rtts)/2].Round(time.Microsecond))
	testenv.Figure(t, "healthy round trip max", "%v", f.maxRoundTrip.Round(time.Microsecond))
	require.LessOrEqual(t, f.heapGrowth, f.formula)
	require.Equal(t, 200, f.roundTrips)
}

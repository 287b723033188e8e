//go:build soak

package client

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

// TestSoakShutdownAccounting is the acceptance run for the delivery
// guarantee at shutdown, under the race detector: 200 clients, each sending
// a message every 5 ms and reconnecting after GOAWAY, while the server shuts
// down with a 10 s deadline; 20 runs (see soakShutdown). SOAK_RUNS overrides
// the number of runs. TestSoakShutdownPromptness is the same run without the
// race detector, for the timings.
func TestSoakShutdownAccounting(t *testing.T) {
	soakShutdown(t, soakRuns(20))
}

// confirmThroughDrain gives the clients a close timeout longer than the
// server's 10 s drain deadline, so that a client whose graceful close after
// GOAWAY waits for an overloaded server gets the server's confirmation (or
// its cut) instead of giving up first: with a shorter one, what the server
// goes on to read and handle after the client gave up is rightly counted in
// doubt, and handled too, and the run no longer balances exactly.
func confirmThroughDrain(c *Config) { c.Transport.CloseTimeout = 12 * time.Second }

func soakRuns(def int) int {
	if n, err := strconv.Atoi(os.Getenv("SOAK_RUNS")); err == nil {
		return n
	}
	return def
}

// soakShutdown makes runs shutdown runs. Every run checks, per client, that
// every message Send accepted was handled once or counted in doubt or failed
// (runShutdown). It reports how many runs balanced exactly (accepted =
// handled + in doubt + failed, which holds whenever no message in doubt was
// in fact handled), how often Shutdown ran into its deadline and how long
// after the last handled message it returned (goal: under 2 s); the timings
// depend on how much of the machine the run gets, and are figures, not
// assertions.
func soakShutdown(t *testing.T, runs int) {
	var total shutdownTally
	var worst time.Duration
	deadlined, exact := 0, 0
	for i := range runs {
		tl := runShutdown(t, shutdownRun{Clients: 200, SendEvery: 5 * time.Millisecond, Before: 300 * time.Millisecond, Deadline: 10 * time.Second}, confirmThroughDrain)
		testenv.Figure(t, fmt.Sprintf("run %02d", i), "accepted %d, handled %d, in doubt %d, failed+undelivered %d, sessions %d, Shutdown returned %v %d ms after the last message was handled",
			tl.Accepted, tl.Handled, tl.InDoubt, tl.Failed, tl.Sessions, tl.ShutdownErr, tl.ShutdownAfterLast.Milliseconds())
		if tl.ShutdownErr != nil {
			deadlined++
		}
		if tl.Accepted == tl.Handled+tl.InDoubt+tl.Failed {
			exact++
		}
		total.Accepted += tl.Accepted
		total.Handled += tl.Handled
		total.InDoubt += tl.InDoubt
		total.Failed += tl.Failed
		worst = max(worst, tl.ShutdownAfterLast)
	}
	testenv.Figure(t, "runs", "%d runs of 200 clients", runs)
	testenv.Figure(t, "accepted", "%d", total.Accepted)
	testenv.Figure(t, "handled", "%d", total.Handled)
	testenv.Figure(t, "in doubt", "%d", total.InDoubt)
	testenv.Figure(t, "failed+undelivered", "%d", total.Failed)
	testenv.Figure(t, "runs where accepted = handled + in doubt + failed exactly", "%d of %d", exact, runs)
	testenv.Figure(t, "Shutdown ran into its 10 s deadline", "%d of %d runs", deadlined, runs)
	testenv.Figure(t, "lost uncounted", "0 (checked per client in every run)")
	testenv.Figure(t, "shutdown after last handled, worst run", "%d ms (goal < 2000 ms)", worst.Milliseconds())
}

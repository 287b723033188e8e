//go:build soak && !race

package client

import "testing"

// TestSoakShutdownPromptness is TestSoakShutdownAccounting without the race
// detector, which slows the 200 clients and the server several times over:
// its figures say how soon Shutdown returns after the last message was
// handled (goal: under 2 s) on this machine as it is.
func TestSoakShutdownPromptness(t *testing.T) {
	soakShutdown(t, soakRuns(20))
}

package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// What clients are told in HELLO is what the server enforces: -pending-cap
// and -pending-bytes are set once and reach both (before, -pending-bytes
// was enforced while the listener advertised the default 8 MiB).
func TestPendingFlagsAreAdvertisedAsEnforced(t *testing.T) {
	ts := startServer(t, "-pending-cap", "70", "-pending-bytes", "123456")
	c := dial(t, ts.addr, ts.clientTLS(t))
	got := c.PeerLimits()
	require.Equal(t, 70, got.PendingCap)
	require.Equal(t, 123456, got.PendingBytes)
}

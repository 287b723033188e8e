package transport

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// What a listener reports as its advertisement is what its connections'
// HELLO carries, so that the layer enforcing the pending limits can check
// the listener it is given.
func TestListenerLimitsAreWhatItsHelloAdvertises(t *testing.T) {
	client, server, ln := pair(t, &Config{PendingCap: 50, PendingBytes: 3 << 20}, nil)
	require.Equal(t, Limits{MaxMessageSize: DefaultMaxMessageSize, PendingCap: 50, PendingBytes: 3 << 20, SendBufferSize: DefaultSendBufferSize}, ln.Limits())
	require.Equal(t, ln.Limits(), client.PeerLimits())
	require.Equal(t, ln.Limits(), server.Limits())

	def := listen(t, nil)
	require.Equal(t, Limits{MaxMessageSize: DefaultMaxMessageSize, PendingCap: DefaultPendingCap, PendingBytes: DefaultPendingBytes, SendBufferSize: DefaultSendBufferSize}, def.Limits())
}

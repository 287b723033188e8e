package transport

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHandshakeStartedIsSetOnTheServersConnectionOnly(t *testing.T) {
	before := time.Now()
	client, server, _ := pair(t, nil, nil)
	after := time.Now()
	started := server.HandshakeStarted()
	require.False(t, started.Before(before), "started %v before the dial at %v", started, before)
	require.False(t, started.After(after), "started %v after the session at %v", started, after)
	require.True(t, client.HandshakeStarted().IsZero(), "a client's connection has no handshake start")
}

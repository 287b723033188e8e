package client

import (
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// stuckCache hands out the first ticket it was given for ever, as a session
// cache shared by clients that dial one after another may hand out a ticket
// another client has used already.
type stuckCache struct {
	mu sync.Mutex
	cs *tls.ClientSessionState
}

func (c *stuckCache) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cs, c.cs != nil
}

func (c *stuckCache) Put(_ string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cs == nil && cs != nil {
		c.cs = cs
	}
}

func (c *stuckCache) has() bool {
	_, ok := c.Get("")
	return ok
}

// Dial succeeds with a ticket that was used already: the server refuses
// its 0-RTT data (tickets are single-use), and Dial connects again with a
// full handshake instead of failing.
func TestDialWithAUsedTicketFallsBackToAFullHandshake(t *testing.T) {
	_, addr := startTestServer(t, &session.Config{Transport: transport.Config{Allow0RTT: true}}, echoHandler)
	ctx := testCtx(t)
	cache := &stuckCache{}
	tc := testClientTLS(t).Clone()
	tc.ClientSessionCache = cache

	c, err := Dial(ctx, addr, tc, nil)
	require.NoError(t, err)
	// Real sockets, so the wall clock: the ticket arrives after the handshake.
	require.Eventually(t, cache.has, 10*time.Second, time.Millisecond)
	require.NoError(t, c.Close())

	for i := range 2 { // the first use of the ticket is accepted, the second refused
		c, err := Dial(ctx, addr, tc, nil)
		require.NoError(t, err, "dial %d with the same ticket", i+1)
		ch, err := c.Channel(ctx, "echo")
		require.NoError(t, err)
		require.NoError(t, ch.Send(ctx, []byte("ping")))
		got, err := ch.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, "ping", string(got))
		require.NoError(t, c.Close())
	}
}

package main

import (
	"context"
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// firstTicketCache keeps the first session ticket it is given and offers it
// for ever, as a captured first flight would present it again.
type firstTicketCache struct {
	mu sync.Mutex
	cs *tls.ClientSessionState
}

func (c *firstTicketCache) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cs, c.cs != nil
}

func (c *firstTicketCache) Put(_ string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cs == nil && cs != nil {
		c.cs = cs
	}
}

func (c *firstTicketCache) has() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cs != nil
}

// quicsrv lets a session ticket carry 0-RTT data once: presented again, its
// early data is refused and the connection falls back to a full handshake.
func TestTicketCarriesZeroRTTOnce(t *testing.T) {
	ts := startServer(t, "-mode", "echo")
	conf := ts.clientTLS(t)
	cache := &firstTicketCache{}
	conf.ClientSessionCache = cache
	first := dial(t, ts.addr, conf)
	ch := openChannel(t, first, "r")
	send(t, ch, "x")
	require.Equal(t, "x", receive(t, ch))
	require.Eventually(t, cache.has, waitTimeout, time.Millisecond, "no session ticket")
	require.NoError(t, first.Close())

	early := func() *transport.Conn {
		c, err := transport.DialEarly(testCtx(t), ts.addr, conf, nil, "r")
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.CloseWithError(transport.CodeNoError, "") })
		require.NoError(t, c.EarlyChannels()[0].SendReplaySafe(testCtx(t), []byte("early")))
		return c
	}
	c := early()
	require.Equal(t, "early", receive(t, c.EarlyChannels()[0]))
	<-c.HandshakeComplete()
	require.True(t, c.Used0RTT(), "the ticket's first use carries 0-RTT")

	again := early()
	select {
	case <-again.HandshakeComplete():
		require.False(t, again.Used0RTT(), "the ticket's second use carried 0-RTT")
	case <-again.Context().Done():
	}
	select {
	case <-again.Context().Done():
	case <-time.After(waitTimeout):
		t.Fatal("the connection whose early data was refused did not end")
	}
	require.ErrorIs(t, context.Cause(again.Context()), transport.ErrEarlyDataRejected, "the ticket's second use")
}

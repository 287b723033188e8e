package session

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// dialRefusal dials addr and returns the error the session ends with, or
// nil if it is still up once the HELLO exchange is over.
func dialRefusal(t *testing.T, addr string) error {
	t.Helper()
	c, err := transport.Dial(testCtx(t), addr, testTLS(t).client, nil)
	if err != nil {
		return err
	}
	t.Cleanup(func() { _ = c.CloseWithError(transport.CodeNoError, "") })
	// A refusal comes right after the HELLO exchange; an admitted session
	// can open a channel and have it echoed.
	ch, err := c.OpenChannel(testCtx(t), "probe")
	if err == nil {
		err = ch.Send(testCtx(t), []byte("x"))
	}
	if err == nil {
		_, err = ch.Receive(testCtx(t))
	}
	if err != nil {
		<-c.Context().Done()
		return context.Cause(c.Context())
	}
	return nil
}

func TestSetMaxSessionsChangesTheCapOfARunningServer(t *testing.T) {
	srv, addr := startServer(t, &Config{MaxSessions: 1}, echo)
	require.NoError(t, dialRefusal(t, addr))
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 1 }, 10*time.Second, 5*time.Millisecond)
	require.ErrorIs(t, dialRefusal(t, addr), transport.CodeTooManySessions)

	require.NoError(t, srv.SetMaxSessions(2))
	require.Equal(t, 2, srv.MaxSessions())
	require.NoError(t, dialRefusal(t, addr), "raised cap admits a second session")
	require.Eventually(t, func() bool { return srv.ActiveSessions() == 2 }, 10*time.Second, 5*time.Millisecond)

	// Lowering the cap ends no session; it refuses new ones.
	require.NoError(t, srv.SetMaxSessions(1))
	err := dialRefusal(t, addr)
	require.ErrorIs(t, err, transport.CodeTooManySessions)
	require.Contains(t, err.Error(), "limit of 1 sessions")
	require.Equal(t, 2, srv.ActiveSessions())

	require.NoError(t, srv.SetMaxSessions(0))
	require.Equal(t, DefaultMaxSessions, srv.MaxSessions(), "0 means the default")
	require.Error(t, srv.SetMaxSessions(-1))
	require.Equal(t, DefaultMaxSessions, srv.MaxSessions())
}

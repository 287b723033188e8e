package client

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

// A reconnect whose dial completes while Close runs does not bring the
// client back: the new connection is closed, the client stays closed, and
// its channels refuse new messages instead of taking messages nobody would
// send or count.
func TestCloseDuringReconnectKeepsTheClientClosed(t *testing.T) {
	_, addr := startEchoServer(t, nil)
	_, ctc := testTLS(t)
	conf, err := (&Config{}).withDefaults()
	require.NoError(t, err)
	c := newClient(conf, clientTLS(ctc, conf.Disable0RTT), addr)
	ch, err := c.Channel(testCtx(t), "work")
	require.NoError(t, err)

	entered := make(chan struct{})
	dialed := make(chan *transport.Conn, 1)
	c.dial = func(context.Context, string) (*transport.Conn, error) {
		close(entered)
		// Wall clock: real sockets (a server over UDP), which a synctest bubble cannot hold.
		require.Eventually(t, func() bool { return c.Status() == StatusClosed }, 10*time.Second, time.Millisecond)
		conn, err := transport.Dial(testCtx(t), addr, ctc, nil)
		dialed <- conn
		return conn, err
	}
	type result struct {
		conn *transport.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := c.reconnect(true, 0)
		done <- result{conn, err}
	}()
	<-entered
	require.NoError(t, c.Close())

	r := <-done
	require.ErrorIs(t, r.err, ErrClosed)
	require.Nil(t, r.conn)
	conn := <-dialed
	require.NotNil(t, conn)
	<-conn.Context().Done() // the late connection was closed
	require.Equal(t, StatusClosed, c.Status())
	require.ErrorIs(t, ch.Send(testCtx(t), []byte("after close")), ErrClosed)
	require.Nil(t, c.Conn())
}

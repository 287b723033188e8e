package transport

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The end hook (the connection's context, the listener's untrack, a
// client's sockets) runs on the control reader of each side, which lives
// as long as the connection, rather than on a goroutine that
// context.AfterFunc starts per connection end: two goroutines fewer per
// session set-up.
func TestConnectionEndHookRunsOnTheControlReader(t *testing.T) {
	var mu sync.Mutex
	var stacks []string
	testHookConnEnded = func(*Conn) {
		buf := make([]byte, 16<<10)
		mu.Lock()
		stacks = append(stacks, string(buf[:runtime.Stack(buf, false)]))
		mu.Unlock()
	}
	t.Cleanup(func() { testHookConnEnded = nil })
	client, server, _ := pair(t, nil, nil)
	require.NoError(t, client.CloseWithError(CodeNoError, ""))
	select {
	case <-server.Context().Done():
	case <-testCtx(t).Done():
		t.Fatal("the server's connection did not end")
	}
	require.NoError(t, server.CloseWithError(CodeNoError, ""))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, stacks, 2)
	for _, st := range stacks {
		require.Contains(t, st, "transport.(*Conn).readControl", "the end hook ran on:\n%s", st)
	}
}

// Connections the listener answered but Accept does not take are refused
// (one over the queue and its waiters at once, one after
// HandshakeTimeout), without their control readers ever running, and the
// one Accept takes has a working reader.
func TestListenerRefusesWhatAcceptDoesNotTake(t *testing.T) {
	ln := listen(t, &Config{AcceptBacklog: 1, HandshakeTimeout: 500 * time.Millisecond})
	var clients []*Conn
	dialRefused := 0
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := Dial(ctx, ln.Addr().String(), testTLS(t).client, nil)
		cancel()
		if err != nil {
			// The refusal can reach the client before Dial returns.
			var ce *ConnError
			require.True(t, errors.As(err, &ce), "dial: %v", err)
			require.Equal(t, CodeGoingAway, ce.Code)
			dialRefused++
			continue
		}
		t.Cleanup(func() { _ = c.CloseWithError(CodeNoError, "") })
		clients = append(clients, c)
	}
	require.Eventually(t, func() bool { return ln.Stats().Refused == 2 }, 10*time.Second, 5*time.Millisecond)
	closed := func() (n int) {
		for _, c := range clients {
			if c.Context().Err() != nil {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return dialRefused+closed() == 2 }, 10*time.Second, 5*time.Millisecond)
	for _, c := range clients {
		if c.Context().Err() != nil {
			var ce *ConnError
			require.True(t, errors.As(context.Cause(c.Context()), &ce), "cause: %v", context.Cause(c.Context()))
			require.Equal(t, CodeGoingAway, ce.Code)
		}
	}

	server, err := ln.Accept(testCtx(t))
	require.NoError(t, err)
	defer server.CloseWithError(CodeNoError, "")
	var kept *Conn
	for _, c := range clients {
		if c.Context().Err() == nil {
			kept = c
		}
	}
	require.NotNil(t, kept)
	require.Equal(t, kept.SessionID(), server.SessionID())
	require.NoError(t, kept.SendGoAway(CodeGoingAway, "bye"))
	select {
	case <-server.GoAwayReceived():
	case <-testCtx(t).Done():
		t.Fatal("the accepted connection's control reader did not take the client's GOAWAY")
	}
}

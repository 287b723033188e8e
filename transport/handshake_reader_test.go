package transport

import (
	"context"
	"errors"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// readerCreators returns, for every goroutine now running a connection's
// control reader, the function that started it.
func readerCreators() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var creators []string
	for _, g := range regexp.MustCompile(`\n\n`).Split(string(buf), -1) {
		if !regexp.MustCompile(`transport\.\(\*Conn\)\.readControl\(`).MatchString(g) {
			continue
		}
		if m := regexp.MustCompile(`created by (\S+)`).FindStringSubmatch(g); m != nil {
			creators = append(creators, m[1])
		}
	}
	return creators
}

// A server connection's control reader runs on the listener's handshake
// goroutine, which read the HELLO, rather than on a goroutine of its own
// started for it: one goroutine, and one stack grown by the frame parser,
// fewer per session set-up.
func TestServerControlReaderRunsOnTheHandshakeGoroutine(t *testing.T) {
	client, server, _ := pair(t, nil, nil)
	require.Eventually(t, func() bool {
		creators := readerCreators()
		return len(creators) >= 2 && !slicesContainFunc(creators, "transport.newConn")
	}, 10*time.Second, 5*time.Millisecond, "control readers started by: %v", readerCreators())
	creators := readerCreators()
	require.True(t, slicesContainFunc(creators, "transport.(*Listener).acceptLoop"),
		"control readers started by: %v", creators)

	// The reader reads: the client's GOAWAY reaches the server.
	require.NoError(t, client.SendGoAway(CodeGoingAway, "moving"))
	select {
	case <-server.GoAwayReceived():
	case <-testCtx(t).Done():
		t.Fatal("the server's control reader did not take the client's GOAWAY")
	}
	g, ok := server.PeerGoAway()
	require.True(t, ok)
	require.Equal(t, "moving", g.Reason)
}

func slicesContainFunc(creators []string, fn string) bool {
	for _, c := range creators {
		if regexp.MustCompile(regexp.QuoteMeta(fn) + `$`).MatchString(c) {
			return true
		}
	}
	return false
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

package session

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests run the logic that needs no connection (the server budget's
// wake-ups, the server's waits for its sessions) in a synctest bubble, on
// its fake clock. Everything that needs a session runs over real QUIC on
// 127.0.0.1 elsewhere: quic-go's UDP reads are not durably blocking, so a
// bubble cannot hold them.

// A reader stopped by the server budget sleeps until a handler frees bytes,
// and not before.
func TestBudgetWaiterWakesOnlyWhenBytesAreFreed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newServerBudget(100)
		b.take(100, true)
		require.True(t, b.stop(10), "at the budget every holder stops")
		woke := make(chan struct{})
		go func() {
			freed, done := b.wait()
			defer done()
			<-freed
			close(woke)
		}()
		synctest.Wait()
		select {
		case <-woke:
			t.Fatal("woke before anything was freed")
		default:
		}
		b.release(60, false)
		synctest.Wait()
		<-woke
		require.False(t, b.stop(10), "below half the budget everyone reads")
		require.Zero(t, b.waiters.Load())
	})
}

// fakeSession is a session the server holds as running, without a
// connection: its goroutine is simulated by the test.
func fakeSession(srv *Server) *Session {
	sess := &Session{left: make(chan struct{}), finished: make(chan struct{})}
	close(sess.left)
	srv.mu.Lock()
	srv.running[sess] = struct{}{}
	srv.mu.Unlock()
	return sess
}

// Close is Shutdown bounded by Config.CloseTimeout: a session whose handler
// is still busy is waited for that long, then the handlers' context ends,
// and Close returns once the session's goroutine has, saying that it had to
// cut the drain.
func TestCloseWaitsCloseTimeoutThenCancelsHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, err := NewServer(&Config{CloseTimeout: 2 * time.Second}, echo)
		require.NoError(t, err)
		sess := fakeSession(srv)
		go func() { // a handler that returns when its context ends
			<-srv.baseCtx.Done()
			close(sess.finished)
		}()
		start := time.Now()
		err = srv.Close()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "Config.CloseTimeout (2s)")
		require.Equal(t, 2*time.Second, time.Since(start), "on the bubble's clock")
		require.NoError(t, srv.Close(), "a second Close has nothing left to wait for")
	})
}

// Shutdown waits for a session's handler to finish what it read, with the
// handlers' context alive, and returns without error when it does in time.
func TestShutdownWaitsForHandlersWithTheirContextAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, err := NewServer(nil, echo)
		require.NoError(t, err)
		sess := fakeSession(srv)
		go func() { // a handler busy for a second
			time.Sleep(time.Second)
			require.NoError(t, srv.baseCtx.Err(), "the drain did not cancel the handler")
			close(sess.finished)
		}()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		require.NoError(t, srv.Shutdown(ctx))
		require.Equal(t, time.Second, time.Since(start), "on the bubble's clock")
		<-srv.Ready() // a stopped server is ready, with no address
		require.Nil(t, srv.Addr())
	})
}

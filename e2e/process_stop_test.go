package e2e

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStopReturnsOnceEveryThreadHasStopped checks the harness: SIGSTOP is
// only queued when kill returns, and a busy machine may run the process's
// other threads for milliseconds after; stop must not return before every
// thread has stopped, or a test that stops a listener sees it answer what
// the server sends next.
func TestStopReturnsOnceEveryThreadHasStopped(t *testing.T) {
	s := startServer(t)
	l := s.quiccli(t, "listen", "chat")
	s.waitSubscriptions(t, 1)
	l.stop(t)
	require.True(t, stopped(t, l.cmd.Process.Pid), "every thread of %s is stopped once stop returns", l.name)
	l.signal(t, syscall.SIGCONT)
	waitFor(t, l.name+" to run again", func() bool { return !stopped(t, l.cmd.Process.Pid) })
}

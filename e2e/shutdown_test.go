package e2e

import (
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSIGTERMSendsGoAwayDrainsAndExitsZero(t *testing.T) {
	s := startServer(t, "-shutdown-timeout", "10s")
	listener := s.quiccli(t, "-timeout", "2s", "-retries", "1", "listen", "chat")
	s.waitSubscriptions(t, 1)
	requireQuiccli(t, s.client("send", "chat", "before the shutdown")...)
	listener.waitLines(t, 1)

	s.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, s.wait(t), "a drained shutdown exits 0")
	log := s.stderr.String()
	require.Contains(t, log, "shutting down: GOAWAY sent to every session")
	require.NotContains(t, log, "drain timed out", "the listener left within -shutdown-timeout")
	require.Contains(t, log, "msg=stopped")

	listener.waitOutput(t, "the listener to report the GOAWAY", func(_, stderr string) bool {
		return strings.Contains(stderr, "server sent GOAWAY") && strings.Contains(stderr, "server shutting down")
	})
	// With no server left to reconnect to, the listener gives up after
	// -retries and says it cannot connect.
	require.Equal(t, 3, listener.wait(t), "stderr: %s", listener.stderr.String())
	require.Equal(t, "before the shutdown\n", listener.stdout.String())
}

func TestSIGTERMClosesASessionThatStaysAfterTheShutdownTimeout(t *testing.T) {
	s := startServer(t, "-shutdown-timeout", "3s")
	listener := s.quiccli(t, "listen", "chat")
	s.waitSubscriptions(t, 1)
	// A stopped listener cannot act on the GOAWAY: its session stays.
	listener.stop(t)

	s.signal(t, syscall.SIGTERM)
	waitFor(t, "/healthz to answer 503 during the drain", func() bool {
		status, body := s.get(t, "/healthz")
		return status == http.StatusServiceUnavailable && strings.Contains(body, "shutting down")
	})
	require.Equal(t, 0, s.wait(t), "a shutdown whose drain timed out still exits 0")
	require.Contains(t, s.stderr.String(), "drain timed out; remaining sessions closed")
}

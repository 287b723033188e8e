package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

// buildTimeout bounds the go build of the quicsrv binary.
const buildTimeout = 3 * time.Minute

// buildQuicsrv builds this package's binary into a temporary directory
// with the go command of the toolchain running the test (go test puts it
// first on PATH), without -race: the processes it runs are under test,
// not the race detector's subjects.
func buildQuicsrv(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the go command is needed to build quicsrv")
	bin := filepath.Join(t.TempDir(), "quicsrv")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build ./cmd/quicsrv:\n%s", out)
	return bin
}

// node is a quicsrv process started by a test. Its testServer has the
// addresses from its banner and its output; its cleanup kills it by PID
// (SIGKILL, if it is still running), waits for it, and prints its output
// if the test failed.
type node struct {
	*testServer
	name   string
	natsID string // its NATS connection's node ID, from "cluster mode: ..."
	cmd    *exec.Cmd
	done   chan struct{} // closed once Wait has returned
}

var reNodeID = regexp.MustCompile(`msg="cluster mode: [^"]*" node=(\S+)`)

// launchNode starts quicsrv bin on 127.0.0.1:0 with development
// certificates in devDir, metrics on 127.0.0.1:0 and -cluster natsURL;
// args come after and override. Call waitReady before using it.
func launchNode(t *testing.T, bin, name, devDir, natsURL string, args ...string) *node {
	t.Helper()
	full := append([]string{"-addr", "127.0.0.1:0", "-dev-certs", devDir, "-metrics", "127.0.0.1:0",
		"-cluster", natsURL, "-log-level", "debug"}, args...)
	n := &node{
		testServer: &testServer{devDir: devDir, stdout: &testenv.Buffer{}, stderr: &testenv.Buffer{}},
		name:       name,
		cmd:        exec.Command(bin, full...),
		done:       make(chan struct{}),
	}
	n.cmd.Dir = t.TempDir()
	n.cmd.Stdout, n.cmd.Stderr = n.stdout, n.stderr
	n.cmd.WaitDelay = waitTimeout // bounds the copy of its output after it exits
	require.NoError(t, n.cmd.Start(), "starting quicsrv %s", name)
	go func() {
		_ = n.cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		if !n.exited() {
			_ = n.cmd.Process.Kill()
		}
		select {
		case <-n.done:
		case <-time.After(waitTimeout):
			t.Errorf("quicsrv %s (pid %d) did not end after SIGKILL", n.name, n.cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("quicsrv %s %s\n--- stdout:\n%s--- stderr:\n%s", n.name, strings.Join(full, " "), n.stdout, n.stderr)
		}
	})
	return n
}

// waitReady waits for the node's banner and its cluster log line, and
// takes its QUIC address, CA file, metrics URL and NATS node ID from them.
func (n *node) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		out, errOut := n.stdout.String(), n.stderr.String()
		if reMetrics.MatchString(out) && reNodeID.MatchString(errOut) {
			n.addr = reListening.FindStringSubmatch(out)[1]
			n.pin = rePin.FindStringSubmatch(out)[1]
			n.caFile = reCA.FindStringSubmatch(out)[1]
			n.metricsURL = reMetrics.FindStringSubmatch(out)[1]
			n.natsID = reNodeID.FindStringSubmatch(errOut)[1]
			return
		}
		switch {
		case n.exited():
			t.Fatalf("quicsrv %s exited (%v) before it was ready", n.name, n.cmd.ProcessState)
		case time.Now().After(deadline):
			t.Fatalf("quicsrv %s did not print its addresses within %v", n.name, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (n *node) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// kill ends the process with SIGKILL, which gives it no chance to send
// GOAWAY or close anything, and waits until it is gone.
func (n *node) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, n.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-n.done:
	case <-time.After(waitTimeout):
		t.Fatalf("quicsrv %s did not end after SIGKILL", n.name)
	}
}

// waitNATSSubsOf waits until the NATS connection of the quicsrv node
// nodeID holds want subscriptions on subject.
func waitNATSSubsOf(t *testing.T, s *server.Server, nodeID, subject string, want int) {
	t.Helper()
	require.Eventually(t, func() bool {
		return natsSubs(t, s, "quicsrv "+nodeID, func(sub string) bool { return sub == subject }) == want
	}, waitTimeout, 5*time.Millisecond, "node %s: NATS subscriptions on %q", nodeID, subject)
}

// natsSubs counts the subscriptions whose subject satisfies match on the
// NATS connections named connName ("" for every connection).
func natsSubs(t *testing.T, s *server.Server, connName string, match func(string) bool) int {
	t.Helper()
	n, err := countNATSSubs(s, connName, match)
	require.NoError(t, err)
	return n
}

// countNATSSubs is natsSubs for a goroutine other than the test's.
func countNATSSubs(s *server.Server, connName string, match func(string) bool) (int, error) {
	cz, err := s.Connz(&server.ConnzOptions{SubscriptionsDetail: true})
	if err != nil {
		return 0, err
	}
	got := 0
	for _, c := range cz.Conns {
		if connName != "" && c.Name != connName {
			continue
		}
		for _, sd := range c.SubsDetail {
			if match(sd.Subject) {
				got++
			}
		}
	}
	return got, nil
}

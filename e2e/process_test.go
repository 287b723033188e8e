package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

// waitTimeout bounds every wait: for a process to print, to exit, or for a
// metric to reach a value. Nothing should come close to it.
const waitTimeout = 20 * time.Second

// pollInterval is how often a condition is checked while waiting for it.
const pollInterval = 10 * time.Millisecond

// output collects what a process writes to stdout or stderr. It is safe for
// the concurrent writes of os/exec and the reads of the test.
type output struct{ testenv.Buffer }

// lines returns the complete lines written so far, without line endings.
func (o *output) lines() []string {
	s := o.String()
	end := strings.LastIndexByte(s, '\n')
	if end < 0 {
		return nil
	}
	return strings.Split(s[:end], "\n")
}

// process is a command started by a test. It is killed, if still running,
// and waited for when the test ends.
type process struct {
	name   string
	cmd    *exec.Cmd
	stdout *output
	stderr *output
	done   chan struct{} // closed once Wait has returned
}

// start runs bin with args in a fresh working directory, so that nothing
// depends on, or is left in, the directory the tests run in.
func start(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p, _ := launch(t, bin, false, args)
	return p
}

// startWithStdin is start with a pipe to the process's stdin, which the
// caller writes to and closes.
func startWithStdin(t *testing.T, bin string, args ...string) (*process, io.WriteCloser) {
	t.Helper()
	return launch(t, bin, true, args)
}

func launch(t *testing.T, bin string, withStdin bool, args []string) (*process, io.WriteCloser) {
	t.Helper()
	p := &process{
		name:   filepath.Base(bin) + " " + strings.Join(args, " "),
		cmd:    exec.Command(bin, args...),
		stdout: &output{},
		stderr: &output{},
		done:   make(chan struct{}),
	}
	p.cmd.Dir = t.TempDir()
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	// Bounds the wait for the output copying goroutines after the exit.
	p.cmd.WaitDelay = 5 * time.Second
	var stdin io.WriteCloser
	if withStdin {
		r, w, err := os.Pipe()
		require.NoError(t, err)
		p.cmd.Stdin = r
		stdin = &stdinPipe{w: w}
		t.Cleanup(func() { _ = stdin.Close() })
		defer r.Close() // the child has its own copy once started
	}
	require.NoError(t, p.cmd.Start(), "starting %s", p.name)
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			// SIGKILL also ends a stopped process.
			_ = p.cmd.Process.Kill()
		}
		select {
		case <-p.done:
		case <-time.After(waitTimeout):
			t.Errorf("%s did not end after SIGKILL", p.name)
		}
		if t.Failed() {
			t.Logf("%s\n--- stdout:\n%s--- stderr:\n%s", p.name, p.stdout, p.stderr)
		}
	})
	return p, stdin
}

// stdinPipe is the writing end of a process's stdin. Each write gives up
// after waitTimeout, so that a process that stopped reading cannot hang
// the test.
type stdinPipe struct {
	w         *os.File
	closeOnce sync.Once
	closeErr  error
}

func (s *stdinPipe) Write(p []byte) (int, error) {
	if err := s.w.SetWriteDeadline(time.Now().Add(waitTimeout)); err != nil {
		return 0, err
	}
	return s.w.Write(p)
}

func (s *stdinPipe) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.w.Close() })
	return s.closeErr
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process.
func (p *process) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig), "signal %v to %s", sig, p.name)
}

// stop sends SIGSTOP to the process and waits until every one of its
// threads has stopped. The kernel only queues the signal: one thread takes
// it and then stops the others, and until that thread gets a CPU, which on
// a busy machine can be many milliseconds later, the others run on. A test
// that counts on the process doing nothing more (answering a GOAWAY,
// reading a message) calls stop, not signal.
func (p *process) stop(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGSTOP)
	waitFor(t, p.name+" to stop", func() bool {
		if p.exited() {
			t.Fatalf("%s exited instead of stopping", p.name)
		}
		return stopped(t, p.cmd.Process.Pid)
	})
}

// stopped reports whether every thread of process pid is in the stopped
// state ("T" in /proc/PID/task/TID/stat).
func stopped(t *testing.T, pid int) bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, task := range tasks {
		stat, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if err != nil {
			return false // the thread ended as we read: look again
		}
		// The state follows the command name, which is in parentheses
		// and may itself hold spaces or parentheses.
		rest := stat[bytes.LastIndexByte(stat, ')')+1:]
		if f := bytes.Fields(rest); len(f) == 0 || string(f[0]) != "T" {
			return false
		}
	}
	return len(tasks) > 0
}

// wait waits for the process to exit and returns its exit status (-1 when
// a signal ended it).
func (p *process) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not exit within %v\n--- stdout:\n%s--- stderr:\n%s", p.name, waitTimeout, p.stdout, p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

// waitOutput waits until cond holds for what the process has printed on
// stdout and stderr; it fails at once if the process exits first.
func (p *process) waitOutput(t *testing.T, what string, cond func(stdout, stderr string) bool) {
	t.Helper()
	check := func() bool { return cond(p.stdout.String(), p.stderr.String()) }
	waitFor(t, what, func() bool {
		if p.exited() && !check() {
			t.Fatalf("%s exited (status %d) before %s\n--- stdout:\n%s--- stderr:\n%s",
				p.name, p.cmd.ProcessState.ExitCode(), what, p.stdout, p.stderr)
		}
		return check()
	})
}

// waitLines waits until the process has printed at least n lines on stdout.
func (p *process) waitLines(t *testing.T, n int) {
	t.Helper()
	p.waitOutput(t, fmt.Sprintf("%d lines on stdout", n), func(stdout, _ string) bool {
		return strings.Count(stdout, "\n") >= n
	})
}

// waitFor polls cond, on the test's goroutine, until it holds or waitTimeout
// has passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(pollInterval)
	}
}

// result is what a finished quiccli run printed, and its exit status.
type result struct {
	stdout string
	stderr string
	code   int
}

// runQuiccli runs quiccli with args to its end.
func runQuiccli(t *testing.T, args ...string) result {
	t.Helper()
	p := start(t, quiccliBin, args...)
	code := p.wait(t)
	return result{stdout: p.stdout.String(), stderr: p.stderr.String(), code: code}
}

// requireQuiccli runs quiccli with args and requires exit status 0.
func requireQuiccli(t *testing.T, args ...string) string {
	t.Helper()
	r := runQuiccli(t, args...)
	require.Equal(t, 0, r.code, "quiccli %s\n--- stdout:\n%s--- stderr:\n%s", strings.Join(args, " "), r.stdout, r.stderr)
	return r.stdout
}

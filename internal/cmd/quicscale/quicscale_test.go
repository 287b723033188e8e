package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/internal/wire"
)

// server is a quicsrv child process in echo mode.
type server struct {
	pid     int
	addr    string
	metrics string
	ca      string
}

// startQuicsrv runs quicsrv in echo mode on an ephemeral port with extra
// flags; it is stopped by its PID when the test ends.
func startQuicsrv(t *testing.T, extra ...string) *server {
	t.Helper()
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "stdout"))
	require.NoError(t, err)
	defer out.Close()
	args := append([]string{"-addr", "127.0.0.1:0", "-mode", "echo", "-metrics", "127.0.0.1:0",
		"-dev-certs", filepath.Join(dir, "certs"), "-log-level", "warn"}, extra...)
	cmd := exec.Command(quicsrvBin, args...)
	cmd.Stdout = out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	reAddr := regexp.MustCompile(`(?m)^quicsrv listening on (\S+) `)
	reMetrics := regexp.MustCompile(`(?m)^metrics: (\S+)$`)
	var text string
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(out.Name())
		text = string(b)
		return reMetrics.MatchString(text)
	}, 20*time.Second, 20*time.Millisecond, "quicsrv's first lines")
	return &server{
		pid:     cmd.Process.Pid,
		addr:    reAddr.FindStringSubmatch(text)[1],
		metrics: reMetrics.FindStringSubmatch(text)[1],
		ca:      filepath.Join(dir, "certs", "ca.pem"),
	}
}

// runScale runs quicscale with args and returns its output and error.
func runScale(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, args, &stdout, &stderr)
	t.Logf("quicscale %s:\n%s%s", strings.Join(args, " "), stdout.String(), stderr.String())
	return stdout.String(), err
}

func TestHoldReportsEveryFigureAndEverySessionAnswers(t *testing.T) {
	s := startQuicsrv(t)
	out, err := runScale(t, "-addr", s.addr, "-ca", s.ca, "-server-pid", strconv.Itoa(s.pid),
		"-metrics", s.metrics, "-n", "20", "-concurrency", "4", "-per-socket", "8", "-hold", "100ms")
	require.NoError(t, err)
	require.Contains(t, out, "sessions: 20 held (2 warm-up + 18 measured)")
	require.Contains(t, out, "3 sockets, up to 8 connections each")
	require.Regexp(t, `(?m)^set-up: 18 sessions in [0-9.]+ s: [0-9]+ sessions/s$`, out)
	for _, figure := range []string{"server RSS", "server heap in use", "server stacks", "server goroutines", "client"} {
		require.Regexp(t, `(?m)^`+figure+`.*: -?[0-9.]+ (KiB )?(RSS, [0-9.-]+ KiB heap, [0-9.-]+ goroutines )?per session$`, out)
	}
	require.NotContains(t, out, "unknown", "every reading of the server was made")
	// A session of quicsrv has goroutines of its own: the count comes from
	// the server, not this process.
	m := regexp.MustCompile(`(?m)^server goroutines: (\d+) \((\d+) before\)`).FindStringSubmatch(out)
	require.NotNil(t, m)
	after, _ := strconv.Atoi(m[1])
	before, _ := strconv.Atoi(m[2])
	require.Greater(t, after, before+18)
	require.Contains(t, out, "echo after the hold: 20 of 20 sessions answered")
}

func TestHoldStopsAtTheServersSessionLimitAndSaysSo(t *testing.T) {
	s := startQuicsrv(t, "-max-sessions", "12")
	out, err := runScale(t, "-addr", s.addr, "-ca", s.ca, "-server-pid", strconv.Itoa(s.pid),
		"-n", "20", "-concurrency", "1", "-hold", "100ms")
	require.Error(t, err)
	require.Contains(t, err.Error(), "session 12:", "the first session beyond the limit is named")
	require.Contains(t, err.Error(), "limit of 12 sessions")
	require.Contains(t, out, "set-up failed after 12 of 20 sessions")
	require.Contains(t, out, "retries: 0 (", "a refusal for the session limit is not retried")
	require.Contains(t, out, "echo once the set-up stopped: 12 of 12 sessions answered")
}

// startRaw runs quicscale -mode serve-raw with the certificate of s and
// extra flags in this process and returns its address and a function that
// stops it and returns its error, or fails the test if it does not return
// in 10 s; the test's cleanup calls it too.
func startRaw(t *testing.T, s *server, extra ...string) (string, func() error) {
	addr, _, stop := startRawOut(t, s, extra...)
	return addr, stop
}

// startRawOut is startRaw also returning the server's output.
func startRawOut(t *testing.T, s *server, extra ...string) (string, *testenv.Buffer, func() error) {
	t.Helper()
	certs := filepath.Dir(s.ca)
	ctx, cancel := context.WithCancel(context.Background())
	rawOut := &testenv.Buffer{}
	rawDone := make(chan error, 1)
	args := append([]string{"-mode", "serve-raw", "-addr", "127.0.0.1:0",
		"-cert", filepath.Join(certs, "server.pem"), "-key", filepath.Join(certs, "server-key.pem")}, extra...)
	go func() { rawDone <- run(ctx, args, rawOut, rawOut) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-rawDone:
			case <-time.After(10 * time.Second):
				t.Fatal("serve-raw did not return within 10 s of its context's end")
			}
		})
		return err
	}
	t.Cleanup(func() { require.NoError(t, stop()) })
	re := regexp.MustCompile(`raw quic-go listening on (\S+)`)
	require.Eventually(t, func() bool { return re.MatchString(rawOut.String()) }, 10*time.Second, 10*time.Millisecond)
	return re.FindStringSubmatch(rawOut.String())[1], rawOut, stop
}

func TestHoldRawConnectionsAgainstServeRawReportsEveryFigure(t *testing.T) {
	s := startQuicsrv(t) // for its certificates
	raw, out, _ := startRawOut(t, s, "-metrics", "127.0.0.1:0")
	re := regexp.MustCompile(`(?m)^metrics: (\S+)$`)
	require.Eventually(t, func() bool { return re.MatchString(out.String()) }, 10*time.Second, 10*time.Millisecond)
	metrics := re.FindStringSubmatch(out.String())[1]
	got, err := runScale(t, "-raw", "-addr", raw, "-ca", s.ca, "-server-pid", strconv.Itoa(os.Getpid()),
		"-metrics", metrics, "-n", "20", "-concurrency", "4", "-per-socket", "8", "-hold", "100ms")
	require.NoError(t, err)
	require.Contains(t, got, "sessions: 20 held (2 warm-up + 18 measured), raw quic-go connections, each one stream with one 64 B echo")
	require.Contains(t, got, "dial (TLS handshake)")
	require.NotContains(t, got, "unknown", "every reading of the raw server was made")
	require.Contains(t, got, "echo after the hold: 20 of 20 sessions answered")
}

func TestHandshakeRateAgainstQuicsrvAndRawQUIC(t *testing.T) {
	s := startQuicsrv(t)
	raw, _ := startRaw(t, s)
	out, err := runScale(t, "-mode", "handshake", "-addr", s.addr, "-raw-addr", raw, "-ca", s.ca,
		"-count", "10", "-rounds", "2", "-concurrency", "4", "-per-socket", "3",
		"-server-pid", strconv.Itoa(s.pid), "-raw-pid", strconv.Itoa(os.Getpid()))
	require.NoError(t, err)
	require.Regexp(t, `(?m)^round 2: raw quic-go [0-9]+ sessions/s; CPU per connection: server [0-9]+ µs, client [0-9]+ µs$`, out)
	require.Regexp(t, `(?m)^median CPU per connection, quicsrv: server [0-9]+ µs, client [0-9]+ µs$`, out)
	require.Regexp(t, `(?m)^median: quicsrv [0-9]+ sessions/s, raw quic-go [0-9]+ sessions/s: ratio [0-9.]+ \[[0-9.]+-[0-9.]+\]$`, out)
	require.Regexp(t, `(?m)^round 2: raw quic-go \+ request [0-9]+ sessions/s; CPU per connection: server [0-9]+ µs, client [0-9]+ µs$`, out)
	require.Regexp(t, `(?m)^median: quicsrv [0-9]+ sessions/s, raw quic-go \+ request [0-9]+ sessions/s: ratio [0-9.]+ \[[0-9.]+-[0-9.]+\]$`, out)
	require.Regexp(t, `(?m)^median: raw quic-go \+ request [0-9]+ sessions/s, raw quic-go [0-9]+ sessions/s: ratio [0-9.]+ \[[0-9.]+-[0-9.]+\]$`, out)
}

func TestServeRawStopsWhileAConnectionIsHeld(t *testing.T) {
	s := startQuicsrv(t)
	raw, stop := startRaw(t, s)
	tlsConf, err := clientTLS(s.ca)
	require.NoError(t, err)
	tlsConf.NextProtos = []string{wire.ALPN}
	held, err := quic.DialAddr(context.Background(), raw, tlsConf, nil)
	require.NoError(t, err)
	defer held.CloseWithError(0, "")
	require.NoError(t, stop(), "serve-raw returns with the connection still open on the client")
}

func TestFlagsAreChecked(t *testing.T) {
	for _, args := range [][]string{
		{"-mode", "nope", "-ca", "x"},
		{"-n", "0", "-ca", "x"},
		{"-concurrency", "0", "-ca", "x"},
		{"-mode", "handshake", "-ca", "x"},
		{"-mode", "serve-raw"},
		{},
	} {
		_, err := runScale(t, args...)
		require.Error(t, err, "%q", args)
	}
}

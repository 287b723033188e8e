package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lineWriter hands the server's first output line to the test.
type lineWriter struct {
	once sync.Once
	line chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { w.line <- strings.TrimSpace(string(p)) })
	return len(p), nil
}

// startServer runs the forwarder until the test ends and returns its address.
func startServer(t *testing.T, certs string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lineWriter{line: make(chan string, 1)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-mode", "server", "-certs", certs}, out) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	select {
	case line := <-out.line:
		addr, ok := strings.CutPrefix(line, "rawrelay listening on ")
		require.True(t, ok, line)
		return addr
	case err := <-done:
		t.Fatalf("server ended: %v", err)
	}
	return ""
}

func TestBenchDeliversEveryMessageToEverySubscriber(t *testing.T) {
	certs := t.TempDir()
	for _, subs := range []string{"1", "3"} {
		addr := startServer(t, certs) // a fresh forwarder per measurement, as bench-cli.sh runs it
		var out bytes.Buffer
		err := run(context.Background(), []string{"-mode", "bench", "-addr", addr, "-certs", certs,
			"-size", "100", "-subscribers", subs, "-duration", "200ms", "-timeout", "10s"}, &out)
		require.NoError(t, err)
		var r result
		require.NoError(t, json.Unmarshal(out.Bytes(), &r), out.String())
		require.Positive(t, r.Sent)
		require.Equal(t, r.Expected, r.Delivered, "subscribers %s: %s", subs, out.String())
		require.Zero(t, r.Undelivered)
		require.Positive(t, r.MsgsPerSec)
	}
}

func TestBadFlagsAreRefusedByName(t *testing.T) {
	for args, want := range map[string]string{
		"-mode bench":                          "-certs is required",
		"-mode nope -certs x":                  `-mode "nope"`,
		"-mode bench -certs x -size 0":         "-size 0",
		"-mode bench -certs x -subscribers 65": "-subscribers 65",
	} {
		err := run(context.Background(), strings.Fields(args), io.Discard)
		require.ErrorContains(t, err, want, args)
	}
}

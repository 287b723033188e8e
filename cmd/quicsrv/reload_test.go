package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"os"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/relay"
	"github.com/quicmsg/quicmsg/internal/testenv"
	"github.com/quicmsg/quicmsg/transport"
)

// echoOrRefusal dials an echo server and returns nil once a message came
// back, or the error that ended the session (a refusal comes right after
// the HELLO exchange). The connection is closed at cleanup.
func echoOrRefusal(t *testing.T, addr string, conf *tls.Config) error {
	t.Helper()
	c, err := transport.Dial(testCtx(t), addr, conf, nil)
	if err != nil {
		return err
	}
	t.Cleanup(func() { _ = c.CloseWithError(transport.CodeNoError, "") })
	ch, err := c.OpenChannel(testCtx(t), "probe")
	if err == nil {
		err = ch.Send(testCtx(t), []byte("ping"))
	}
	if err == nil {
		_, err = ch.Receive(testCtx(t))
	}
	if err != nil {
		<-c.Context().Done()
		return context.Cause(c.Context())
	}
	return nil
}

// hup sends SIGHUP to this process, which the test's server catches, and
// waits for the reload's last line.
func (ts *testServer) hup(t *testing.T, n int) {
	t.Helper()
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	ts.waitLines(t, n, `certificate reloaded.*reason=SIGHUP`)
}

// waitLines waits until stderr holds n lines matching re.
func (ts *testServer) waitLines(t *testing.T, n int, re string) {
	t.Helper()
	r := regexp.MustCompile(re)
	require.Eventually(t, func() bool { return len(r.FindAllString(ts.stderr.String(), -1)) >= n }, waitTimeout, 5*time.Millisecond,
		"want %d log lines matching %q", n, re)
}

func TestConfigReloadOnSIGHUPAppliesLiveSettingsAndReportsTheRest(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, "mode = \"echo\"\nmax-sessions = 1\nlog-level = \"info\"\nshutdown-timeout = \"3s\"\n")
	ts := startServerArgs(t, dir, []string{"-addr", "127.0.0.1:0", "-dev-certs", dir, "-config", path, "-shutdown-timeout", "10s"})
	conf := ts.clientTLS(t)
	require.NoError(t, echoOrRefusal(t, ts.addr, conf))
	require.ErrorIs(t, echoOrRefusal(t, ts.addr, conf), transport.CodeTooManySessions, "max-sessions 1 from the file")
	require.NotContains(t, ts.stderr.String(), "channel opened", "info level: no debug lines")

	require.NoError(t, os.WriteFile(path, []byte("mode = \"relay\"\nmax-sessions = 2\nlog-level = \"debug\"\nshutdown-timeout = \"4s\"\n"), 0o600))
	ts.hup(t, 1)
	ts.waitLog(t, `config file reloaded.*changed=2 needs_restart=1`)
	log := ts.stderr.String()
	require.Regexp(t, `level=INFO msg="setting changed" key=max-sessions old=1 new=2`, log)
	require.Regexp(t, `level=INFO msg="setting changed" key=log-level old=info new=debug`, log)
	require.Regexp(t, `level=WARN msg="config file setting needs a restart; not applied" key=mode old=echo new=relay`, log)
	require.Regexp(t, `msg="config file setting ignored: the command line sets it" key=shutdown-timeout file_value=4s`, log)

	require.NoError(t, echoOrRefusal(t, ts.addr, conf), "max-sessions 2 now, and still echo mode")
	ts.waitLog(t, `level=DEBUG msg="channel opened"`)

	// An invalid file is refused whole; the running settings stay.
	require.NoError(t, os.WriteFile(path, []byte("mode = \"echo\"\nmax-sessions = 9\nlog-level = \"loud\"\n"), 0o600))
	ts.hup(t, 2)
	ts.waitLog(t, `level=ERROR msg="config file refused; the running configuration is kept".*`+regexp.QuoteMeta(path)+`:3: log-level: invalid value`)
	require.ErrorIs(t, echoOrRefusal(t, ts.addr, conf), transport.CodeTooManySessions, "max-sessions stays 2")

	// The restart-needing change is reported again while it stands.
	require.NoError(t, os.WriteFile(path, []byte("mode = \"relay\"\nmax-sessions = 2\nlog-level = \"debug\"\n"), 0o600))
	ts.hup(t, 3)
	ts.waitLines(t, 2, `config file setting needs a restart; not applied" key=mode`)
	ts.waitLog(t, `config file reloaded.*changed=0 needs_restart=1`)
}

func TestReloadAppliesTheRelayLimitsAndTheLogLevel(t *testing.T) {
	path := writeConfig(t, "subscriber-queue = 8\nlog-level = \"warn\"\n")
	o, err := parseFlags([]string{"-config", path, "-dev-certs", t.TempDir()}, io.Discard)
	require.NoError(t, err)
	r, err := relay.New(&relay.Config{QueueSize: o.subscriberQueue, QueueBytes: o.subscriberBytes, PublishTimeout: o.publishTimeout})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	level := new(slog.LevelVar)
	level.Set(o.logLevel)
	var logs testenv.Buffer
	l := newLiveConfig(o, level, nil, r, slog.New(slog.NewTextHandler(&logs, nil)))

	require.NoError(t, os.WriteFile(path, []byte("subscriber-queue = 16\nsubscriber-queue-bytes = 4096\npublish-timeout = \"2s\"\nlog-level = \"debug\"\n"), 0o600))
	l.reload()
	require.Equal(t, relay.Limits{QueueSize: 16, QueueBytes: 4096, PublishTimeout: 2 * time.Second}, r.Limits())
	require.Equal(t, slog.LevelDebug, level.Level())
	require.Contains(t, logs.String(), `msg="setting changed" key=subscriber-queue old=8 new=16`)
	require.Contains(t, logs.String(), `msg="setting changed" key=publish-timeout old=(default) new=2s`)
	require.Contains(t, logs.String(), `msg="config file reloaded"`)
	require.Contains(t, logs.String(), `changed=4 needs_restart=0`)

	// A value the relay refuses is caught when the file is read: nothing changes.
	require.NoError(t, os.WriteFile(path, []byte("subscriber-queue = -1\n"), 0o600))
	l.reload()
	require.Contains(t, logs.String(), `level=ERROR msg="config file refused; the running configuration is kept"`)
	require.Equal(t, 16, r.Limits().QueueSize)
}

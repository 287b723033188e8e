package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSendArgumentsReachAListenerThroughTheRelay(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	_, wait := startCLI(t, nil, ts.args("listen", "chat", "-count", "3")...)
	ts.waitSubscribers(t, "chat", 1)

	sent := runCLI(t, nil, ts.args("send", "chat", "hello", "wide world", "")...)
	require.NoError(t, sent.err, sent.stderr)
	require.Equal(t, `sent 3 messages (15 bytes) on "chat" to `+ts.addr+"\n", sent.stdout)

	got := wait()
	require.NoError(t, got.err, got.stderr)
	require.Equal(t, "hello\nwide world\n\n", got.stdout)
}

func TestSendReadsLinesFromStdinAndListenPrintsJSON(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	_, wait := startCLI(t, nil, ts.args("-json", "listen", "-count", "3", "logs", "other")...)
	ts.waitSubscribers(t, "logs", 1)

	stdin := strings.NewReader("first line\r\n\xff\xfe binary\nlast, without newline")
	sent := runCLI(t, stdin, ts.args("-json", "send", "logs")...)
	require.NoError(t, sent.err, sent.stderr)
	var summary sendResult
	require.NoError(t, json.Unmarshal([]byte(sent.stdout), &summary))
	require.Equal(t, sendResult{Channel: "logs", Messages: 3, Bytes: 10 + 9 + 21}, summary)

	got := wait()
	require.NoError(t, got.err, got.stderr)
	var msgs []jsonMessage
	for _, line := range got.lines() {
		var m jsonMessage
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		msgs = append(msgs, m)
	}
	require.Equal(t, []jsonMessage{
		{Channel: "logs", Size: 10, Encoding: "utf-8", Payload: "first line"},
		{Channel: "logs", Size: 9, Encoding: "base64", Payload: base64.StdEncoding.EncodeToString([]byte("\xff\xfe binary"))},
		{Channel: "logs", Size: 21, Encoding: "utf-8", Payload: "last, without newline"},
	}, msgs)
}

func TestListenOnSeveralChannelsNamesTheChannelAndQuotesBinary(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	_, wait := startCLI(t, nil, ts.args("listen", "-count", "2", "a", "b")...)
	ts.waitSubscribers(t, "a", 1)
	ts.waitSubscribers(t, "b", 1)

	require.NoError(t, runCLI(t, nil, ts.args("send", "a", "plain text")...).err)
	require.NoError(t, runCLI(t, nil, ts.args("send", "b", "two\nlines\x00")...).err)

	got := wait()
	require.NoError(t, got.err, got.stderr)
	require.Equal(t, "a: plain text\nb: \"two\\nlines\\x00\"\n", got.stdout)
}

func TestListenEndsCleanlyWhenInterrupted(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	ctx, cancel := contextWithCancel()
	done := make(chan outcome, 1)
	go func() { done <- runCLIContext(ctx, nil, ts.args("listen", "quiet")...) }()
	ts.waitSubscribers(t, "quiet", 1)
	cancel()
	select {
	case got := <-done:
		require.NoError(t, got.err)
		require.Equal(t, 0, got.code)
	case <-time.After(10 * time.Second):
		t.Fatal("listen did not end after the interrupt")
	}
}

func TestListenCarriesOnAcrossAServerRestart(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	out, wait := startCLI(t, nil, ts.args("-timeout", "1s", "listen", "-count", "2", "chat")...)
	ts.waitSubscribers(t, "chat", 1)
	require.NoError(t, runCLI(t, nil, ts.args("send", "chat", "before")...).err)
	require.Eventually(t, func() bool { return out.String() == "before\n" }, 5*time.Second, 5*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = ts.srv.Shutdown(ctx) // GOAWAY: the listener leaves and reconnects
	cancel()
	restarted := startServer(t, serverOptions{relay: true, addr: ts.addr})
	restarted.waitSubscribers(t, "chat", 1)
	require.NoError(t, runCLI(t, nil, restarted.args("send", "chat", "after")...).err)

	got := wait()
	require.NoError(t, got.err, got.stderr)
	require.Equal(t, "before\nafter\n", got.stdout)
	require.Contains(t, got.stderr, "quiccli: lost the connection to "+ts.addr)
	require.Contains(t, got.stderr, "quiccli: reconnected to "+ts.addr)
}

func TestChatSendsTypedLinesAndPrintsWhatOthersSend(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	_, listenWait := startCLI(t, nil, ts.args("listen", "-count", "1", "lobby")...)
	ts.waitSubscribers(t, "lobby", 1)

	typed, keyboard := io.Pipe()
	chatOut, chatWait := startCLI(t, typed, ts.args("chat", "-name", "ann", "lobby")...)
	ts.waitSubscribers(t, "lobby", 2)

	_, err := io.WriteString(keyboard, "hi all\n")
	require.NoError(t, err)
	got := listenWait()
	require.NoError(t, got.err, got.stderr)
	require.Equal(t, "ann: hi all\n", got.stdout)

	require.NoError(t, runCLI(t, nil, ts.args("send", "lobby", "bob: hello ann")...).err)
	require.Eventually(t, func() bool { return chatOut.String() == "bob: hello ann\n" }, 5*time.Second, 5*time.Millisecond)

	require.NoError(t, keyboard.Close()) // Ctrl-D
	chat := chatWait()
	require.NoError(t, chat.err, chat.stderr)
}

func TestChatRefusesAnOverlongLineAndCarriesOn(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true, maxMessageSize: 100})
	_, listenWait := startCLI(t, nil, ts.args("listen", "-count", "1", "lobby")...)
	ts.waitSubscribers(t, "lobby", 1)

	stdin := strings.NewReader(strings.Repeat("x", 101) + "\nshort\n")
	chat := runCLI(t, stdin, ts.args("chat", "lobby")...)
	require.NoError(t, chat.err, chat.stderr)
	require.Contains(t, chat.stderr, "not sent: the message is 101 bytes, larger than the server's limit of 100 bytes")

	got := listenWait()
	require.Equal(t, "short\n", got.stdout)
}

// listen shows each reconnect attempt and why the one before failed, and
// ends, once -retries are spent, with one readable line.
func TestListenShowsEachReconnectAttemptAndEndsWithOneLine(t *testing.T) {
	ts := startServer(t, serverOptions{relay: true})
	// 3 attempts of the full -timeout would take 24 s, beyond startCLI's
	// 20 s bound: the first ones wait 0.5 s, then 1 s, then 2 s.
	_, wait := startCLI(t, nil, ts.args("-timeout", "8s", "-retries", "3", "listen", "chat")...)
	ts.waitSubscribers(t, "chat", 1)
	require.NoError(t, ts.srv.Close()) // for good: nothing answers at the address any more

	got := wait()
	require.Error(t, got.err)
	require.Equal(t, exitConnect, got.code)
	msg := got.err.Error()
	require.NotContains(t, msg, "\n")
	require.Contains(t, msg, "lost the connection to "+ts.addr+" and gave up after 3 reconnect attempts (-retries); the last one failed: ")
	require.Equal(t, 1, strings.Count(msg, "client:")+strings.Count(msg, "transport:")+1, "no nested Go errors in the line: %s", msg)
	require.Contains(t, got.stderr, "quiccli: reconnect attempt 1 of 3 to "+ts.addr+" in ")
	require.Contains(t, got.stderr, "quiccli: reconnect attempt 1 failed: ")
	require.Contains(t, got.stderr, "quiccli: reconnect attempt 3 of 3 to "+ts.addr+" in ")
}

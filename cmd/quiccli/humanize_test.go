package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

func TestConnectionFlagFaultsAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-addr", "127.0.0.1", "ping"}, `-addr "127.0.0.1" is not HOST:PORT (e.g. 127.0.0.1:4433)`},
		{[]string{"-addr", "localhost:", "send", "x", "y"}, `-addr "localhost:" is not HOST:PORT`},
		{[]string{"-pin", "sha256/nope", "listen", "x"}, `-pin "sha256/nope": `},
		{[]string{"-ca", "/no/such/ca.pem", "req", "x"}, "-ca /no/such/ca.pem: no such file or directory"},
		{[]string{"-cert", "/no/c.pem", "-key", "/no/k.pem", "bench"}, "-cert /no/c.pem: no such file or directory"},
	} {
		got := runCLI(t, nil, tc.args...)
		require.Equal(t, exitUsage, got.code, "%q: %v", tc.args, got.err)
		require.Contains(t, got.err.Error(), tc.want, tc.args)
	}
}

func TestMessagesNameFlagsNotGoFields(t *testing.T) {
	g := newGlobals(nil, &strings.Builder{}, &strings.Builder{})
	for _, tc := range []struct {
		err        error
		want, gone string
	}{
		{fmt.Errorf("resume: %w", session.ErrResumeWindowExpired), "within quicsrv -resume-window", "Config."},
		{&transport.ConnError{Remote: true, Code: transport.CodeOverloaded, Reason: "closed to make room: 9 connections were waiting for HELLO (Config.MaxPendingHellos)"},
			"(the max pending hellos setting)", "Config."},
		{fmt.Errorf("transport: Config.MaxMessageSize 0 is outside 1..16"), "transport: quicsrv -max-message-size 0 is outside", "Config."},
	} {
		got := g.describe(tc.err).Error()
		require.Contains(t, got, tc.want)
		require.NotContains(t, got, tc.gone)
		require.ErrorIs(t, g.describe(tc.err), tc.err, "still matches the library's error")
	}
}

func TestLongChannelNamesAreShortenedWithTheirLength(t *testing.T) {
	long := strings.Repeat("n", 300)
	got := runCLI(t, nil, "send", long, "m")
	require.Equal(t, exitUsage, got.code)
	require.Equal(t, `channel name "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn…" (300 bytes): want 1 to 255 bytes of UTF-8`, got.err.Error())

	g := newGlobals(nil, &strings.Builder{}, &strings.Builder{})
	name := strings.Repeat("é", 100) // 200 bytes, cut on a character boundary
	err := g.describe(&transport.ChannelError{Channel: name, Remote: true, Code: transport.CodeOverloaded})
	require.Contains(t, err.Error(), `the server reset channel "`+strings.Repeat("é", 16)+`…" (200 bytes): transport: overloaded`)

	require.Equal(t, `"short.name"`, shortName("short.name"))
}

func TestChannelNameOfTheLimitIsAccepted(t *testing.T) {
	ts := startServer(t, serverOptions{})
	got := runCLIContext(context.Background(), nil, ts.args("send", strings.Repeat("n", 255), "m")...)
	require.NoError(t, got.err, got.stderr)
	require.Contains(t, got.stdout, "(255 bytes)", "the sent line shortens the name too")
}

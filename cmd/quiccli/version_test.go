package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVersionExitsZeroEitherWay(t *testing.T) {
	for _, args := range [][]string{{"-version"}, {"version"}} {
		got := runCLI(t, nil, args...)
		require.NoError(t, got.err, args)
		require.True(t, strings.HasPrefix(got.stdout, "quiccli "), got.stdout)
		require.Equal(t, 1, strings.Count(got.stdout, "\n"), got.stdout)
		require.Empty(t, got.stderr)
	}
}

func TestFlagErrorsAreOneLineThatSaysWhereToLook(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-nope"}, "flag provided but not defined: -nope; see 'quiccli -h'"},
		{[]string{"send", "-nope", "x"}, "flag provided but not defined: -nope; see 'quiccli help send'"},
		{[]string{"ping", "-count"}, "flag needs an argument: -count; see 'quiccli help ping'"},
		{[]string{"-addr"}, "flag needs an argument: -addr; see 'quiccli -h'"},
		{[]string{"fly"}, `unknown command "fly" (want send, listen, chat, ping, req, reply, bench, context, version`},
	} {
		got := runCLI(t, nil, tc.args...)
		require.Equal(t, exitUsage, got.code, tc.args)
		require.Contains(t, got.err.Error(), tc.want)
		require.Empty(t, got.stderr, "main prints the one line; no usage follows")
	}
}

func TestHelpCommandPrintsTheUsageOfACommand(t *testing.T) {
	got := runCLI(t, nil, "help", "send")
	require.NoError(t, got.err)
	require.Contains(t, got.stderr, "Usage: quiccli [global flags] send")
	got = runCLI(t, nil, "help", "context")
	require.NoError(t, got.err)
	require.Contains(t, got.stderr, "context add NAME")
}

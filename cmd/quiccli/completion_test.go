package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// flagWord matches the flag name as bash (-name) or fish (-o name) has it.
func flagWord(name string) *regexp.Regexp {
	return regexp.MustCompile(`(^|[\s|"])(-|-o )` + regexp.QuoteMeta(name) + `([\s|"]|$)`)
}

func TestCompletionScriptsOfferEveryCommandAndFlag(t *testing.T) {
	globalFlags, cmds := completionModel()
	require.Len(t, cmds, len(commands)+1, "every command and help")
	for _, shell := range []string{"bash", "zsh", "fish"} {
		got := runCLI(t, nil, "completion", shell)
		require.NoError(t, got.err, shell)
		for _, c := range cmds {
			require.Contains(t, got.stdout, c.name, shell)
			for _, f := range c.flags {
				require.Regexp(t, flagWord(f.name), got.stdout, "%s: %s -%s", shell, c.name, f.name)
			}
		}
		for _, f := range globalFlags {
			require.Regexp(t, flagWord(f.name), got.stdout, "%s: -%s", shell, f.name)
		}
	}
	// A flag a command defines reaches the script without being listed
	// anywhere else: the bench flags come from cmdBench itself.
	got := runCLI(t, nil, "completion", "bash")
	require.Contains(t, got.stdout, "-subscriber-addrs")
	require.Equal(t, exitUsage, runCLI(t, nil, "completion", "tcsh").code)
}

func TestBashCompletionCompletesCommandsAndFlags(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := runCLI(t, nil, "completion", "bash").stdout
	complete := func(words ...string) string {
		t.Helper()
		line := "quiccli " + strings.Join(words, " ")
		prog := script + "\nCOMP_WORDS=(" + line + ")\nCOMP_CWORD=" + string(rune('0'+len(words))) + "\n_quiccli\necho \"${COMPREPLY[*]}\"\n"
		out, err := exec.Command(bash, "--norc", "-c", prog).CombinedOutput()
		require.NoError(t, err, string(out))
		return strings.TrimSpace(string(out))
	}
	require.Equal(t, "send", complete("se"))
	require.Equal(t, "-conns", complete("bench", "-con"))
	require.Equal(t, "-conns", complete("-addr", "h:1", "bench", "-con"), "the value of -addr is not the command")
	require.Equal(t, "select show", complete("context", "s"))
}

//go:build release

package main

// Run by `make docker-check`, after `make release` built the binary the way
// the Dockerfile does; QUICSRV_RELEASE names it, QUICSRV_VERSION and
// QUICSRV_COMMIT are the values stamped into it.

import (
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func releaseBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("QUICSRV_RELEASE")
	require.NotEmpty(t, bin, "QUICSRV_RELEASE names the binary of make release (run make docker-check)")
	return bin
}

func TestReleaseBinaryIsStatic(t *testing.T) {
	f, err := elf.Open(releaseBinary(t))
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "a static binary has no program interpreter")
		require.NotEqual(t, elf.PT_DYNAMIC, p.Type, "a static binary has no dynamic segment")
	}
	require.Nil(t, f.Section(".dynamic"), "a static binary has no .dynamic section")
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	require.Empty(t, libs)
}

func TestReleaseBinaryIsBuiltTheDockerfilesWay(t *testing.T) {
	bi, err := buildinfo.ReadFile(releaseBinary(t))
	require.NoError(t, err)
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	require.Equal(t, "0", settings["CGO_ENABLED"])
	require.Equal(t, "true", settings["-trimpath"])
	// With -trimpath, Go records no -ldflags: the stamped values are
	// checked in TestReleaseBinaryPrintsTheStampedVersion.

	// The Dockerfile builds with the same target.
	dockerfile, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^RUN make release VERSION="\$VERSION" COMMIT="\$COMMIT"`, string(dockerfile))
	require.Regexp(t, `(?m)^FROM golang:1\.26 AS build$`, string(dockerfile))
}

func TestReleaseBinaryPrintsTheStampedVersion(t *testing.T) {
	want, commit := os.Getenv("QUICSRV_VERSION"), os.Getenv("QUICSRV_COMMIT")
	require.NotEmpty(t, want)
	out, err := exec.Command(releaseBinary(t), "-version").Output()
	require.NoError(t, err)
	line := strings.TrimSpace(string(out))
	require.Regexp(t, "^quicsrv "+regexp.QuoteMeta(want)+" ", line)
	if commit != "" {
		require.Contains(t, line, "(commit "+commit+")")
	}
}

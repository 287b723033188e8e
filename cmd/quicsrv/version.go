package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version returns the module version quicsrv was built from: a release tag
// for `go install ...@vX`, a pseudo-version with the commit for builds in a
// clone, "(devel)" otherwise.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" {
		return "(devel)"
	}
	return bi.Main.Version
}

// versionLine is what -version prints.
func versionLine() string {
	line := fmt.Sprintf("quicsrv %s", version())
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = "+dirty"
				}
			}
		}
		if rev != "" {
			line += fmt.Sprintf(" (commit %.12s%s)", rev, modified)
		}
	}
	return line + fmt.Sprintf(" %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

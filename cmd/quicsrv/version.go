package main

import (
	"cmp"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time by release builds (make build, the Dockerfile):
//
//	go build -ldflags "-X main.stampedVersion=v1.2.3 -X main.stampedCommit=0123abcd" ./cmd/quicsrv
//
// Empty otherwise: the module's build information is used instead.
var (
	stampedVersion string
	stampedCommit  string
)

// version returns the version quicsrv was built as: the one stamped at
// link time; else the module version, a release tag for `go install ...@vX`
// or a pseudo-version for builds in a clone; "(devel)" otherwise.
func version() string {
	if stampedVersion != "" {
		return stampedVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" {
		return "(devel)"
	}
	return bi.Main.Version
}

// commit returns the commit quicsrv was built from: the one stamped at
// link time, else the VCS revision Go recorded (with "+dirty" for a
// modified tree), else "".
func commit() string {
	if stampedCommit != "" {
		return stampedCommit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
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
	if rev == "" {
		return ""
	}
	return fmt.Sprintf("%.12s%s", rev, modified)
}

// versionLine is what -version prints.
func versionLine() string {
	line := fmt.Sprintf("quicsrv %s", version())
	if c := commit(); c != "" {
		line += fmt.Sprintf(" (commit %s)", c)
	}
	return line + fmt.Sprintf(" %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// commitLabel is commit for a metric label or status field: "unknown"
// rather than empty.
func commitLabel() string { return cmp.Or(commit(), "unknown") }

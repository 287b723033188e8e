package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version, when set at link time (go build -ldflags "-X main.version=v1.2.3"),
// overrides the module version from the build information.
var version string

// versionString describes this build: "quiccli VERSION (commit C[, modified]) GOVERSION".
func versionString() string {
	v, commit, modified := "(devel)", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		v = version
	}
	s := "quiccli " + v
	if commit != "" {
		if modified {
			commit += ", modified"
		}
		s += " (commit " + commit + ")"
	}
	return fmt.Sprintf("%s %s %s/%s", s, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

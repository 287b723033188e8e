package main

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// userHome is HOME before TestMain replaced it, for the go command's caches.
var userHome = os.Getenv("HOME")

func TestMain(m *testing.M) {
	// The tests must not see the user's contexts or QUICMSG_* variables.
	dir, err := os.MkdirTemp("", "quiccli-config")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = os.Setenv("XDG_CONFIG_HOME", dir)
	_ = os.Setenv("HOME", dir)
	for _, f := range connFlags {
		_ = os.Unsetenv(f.env)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

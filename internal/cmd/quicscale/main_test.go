package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// quicsrvBin is the quicsrv the tests run, built by TestMain.
var quicsrvBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

// runTests builds quicsrv, runs the tests and checks for leaked goroutines.
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "quicscale-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "quicscale:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	quicsrvBin = filepath.Join(dir, "quicsrv")
	// The package directory is internal/cmd/quicscale: the module root is
	// three levels up.
	cmd := exec.CommandContext(ctx, "go", "build", "-o", quicsrvBin, "./cmd/quicsrv")
	cmd.Dir = filepath.Join("..", "..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "quicscale: go build ./cmd/quicsrv: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "quicscale: goroutines leaked:", err)
			return 1
		}
	}
	return code
}

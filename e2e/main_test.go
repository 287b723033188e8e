package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// buildTimeout bounds the build of both commands in TestMain.
const buildTimeout = 5 * time.Minute

// Paths of the commands under test, set by TestMain.
var (
	quicsrvBin string
	quiccliBin string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests builds the commands, runs the tests, checks for leaked goroutines
// and removes the build directory; it returns the exit status.
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "quicmsg-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildCommands(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: goroutines leaked:", err)
			return 1
		}
	}
	return code
}

// buildCommands builds quicsrv and quiccli into dir with the go command of
// the toolchain running the tests (go test puts it first on PATH).
func buildCommands(dir string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed to build quicsrv and quiccli: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", dir+string(filepath.Separator), "./cmd/quicsrv", "./cmd/quiccli")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/quicsrv ./cmd/quiccli: %w\n%s", err, out)
	}
	quicsrvBin = filepath.Join(dir, "quicsrv")
	quiccliBin = filepath.Join(dir, "quiccli")
	return nil
}

// moduleRoot returns the nearest directory at or above the working
// directory that holds a go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// Package testservice gives Go tests a live walrusds service: the one named by
// WALRUSDS_TEST_ADDR (pytest's tests/test_shim_go.py starts it), or else one this package
// starts with `walrusds up` in a temporary directory and stops when the tests end.
package testservice

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvAddr names the service address to test against.
const EnvAddr = "WALRUSDS_TEST_ADDR"

var (
	once    sync.Once
	addr    string
	startup error
	proc    *os.Process
	exited  chan error // receives the exit status of proc
	dataDir string
)

// Addr returns the address of a live service, starting one on first use when EnvAddr is not
// set. The service is shared by the package's tests: each test uses its own key prefix or
// cleans up after itself.
func Addr(t testing.TB) string {
	t.Helper()
	once.Do(func() { addr, startup = start() })
	if startup != nil {
		t.Fatalf("no walrusds service to test against: %v", startup)
	}
	return addr
}

// Stop ends a service this package started (call it from TestMain after m.Run).
func Stop() {
	if proc == nil {
		return
	}
	_ = proc.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		_ = proc.Kill()
		<-exited
	}
	_ = os.RemoveAll(dataDir)
	proc = nil
}

func start() (string, error) {
	if a := os.Getenv(EnvAddr); a != "" {
		return a, nil
	}
	bin, err := walrusdsBinary()
	if err != nil {
		return "", err
	}
	dataDir, err = os.MkdirTemp("", "walrusds-gotest-")
	if err != nil {
		return "", err
	}
	// the private PostgreSQL runs as an unprivileged user when the tests run as root
	if err := os.Chmod(dataDir, 0o711); err != nil {
		return "", err
	}
	logFile, err := os.Create(filepath.Join(dataDir, "up.log"))
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "up", "--data-dir", dataDir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting %s up: %w", bin, err)
	}
	proc, exited = cmd.Process, make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	upFile := filepath.Join(dataDir, "up.json")
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			proc = nil
			log, _ := os.ReadFile(logFile.Name())
			return "", fmt.Errorf("walrusds up exited (%v):\n%s", err, log)
		case <-time.After(100 * time.Millisecond):
		}
		b, err := os.ReadFile(upFile)
		if err != nil {
			continue
		}
		var up struct {
			GRPC string `json:"grpc"`
		}
		if json.Unmarshal(b, &up) == nil && up.GRPC != "" {
			return up.GRPC, nil
		}
	}
	Stop()
	return "", errors.New("walrusds up did not write up.json within 120 s")
}

// walrusdsBinary finds the walrusds command: $WALRUSDS_BIN, the repository's virtualenv, or
// PATH.
func walrusdsBinary() (string, error) {
	if b := os.Getenv("WALRUSDS_BIN"); b != "" {
		return b, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		candidate := filepath.Join(dir, ".venv", "bin", "walrusds")
		if _, err := os.Stat(candidate); err == nil {
			return candidate, nil
		}
	}
	if b, err := exec.LookPath("walrusds"); err == nil {
		return b, nil
	}
	return "", fmt.Errorf("set %s to a running service, or WALRUSDS_BIN to the walrusds "+
		"command (none in .venv/bin or on PATH)", EnvAddr)
}

//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// With logging.file the log goes to the file, not stderr, and SIGHUP
// reopens it: after logrotate renames the file, the broker writes to a new
// one at the configured path (relative to the config file).
func TestLogFileReopenedOnSIGHUP(t *testing.T) {
	bin := mqttdBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mqttd.yaml")
	conf := fmt.Sprintf("listeners:\n  default: {bind: %q}\nadmin:\n  bind: \"\"\nlogging:\n  file: mqttd.log\n", "127.0.0.1:0")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath, rotated := filepath.Join(dir, "mqttd.log"), filepath.Join(dir, "mqttd.log.1")
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Dir, cmd.Env = dir, cleanEnv() // its store (storage.dir data) goes there too
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	})

	waitForLine(t, logPath, "listener ready", exited)
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitForLine(t, logPath, "reloaded", exited)
	if old := readString(t, rotated); !strings.Contains(old, "starting") || strings.Contains(old, "reloaded") {
		t.Errorf("the rotated file should hold the start and not the reload:\n%s", old)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Errorf("exit: %v", err)
	}
	exited <- nil // for the cleanup
	if !strings.Contains(readString(t, logPath), "stopped") || stderr.String() != "" {
		t.Errorf("after SIGTERM: file:\n%s\nstderr (want nothing):\n%s", readString(t, logPath), stderr.String())
	}
}

// A log file mqttd cannot create stops the start with a message that says
// what to do.
func TestLogFileUnwritable(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "mqttd.yaml")
	os.WriteFile(cfg, []byte("admin:\n  bind: \"\"\nlogging:\n  file: no-such-dir/mqttd.log\n"), 0o644)
	code, _, errs := runCmd(t, "--config", cfg)
	if code != exitUsage || !strings.Contains(errs, "config: logging.file: open ") || !strings.Contains(errs, "must be writable by that user") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func waitForLine(t *testing.T, path, want string, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("mqttd exited (%v) before %s held %q", err, path, want)
		default:
		}
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%s did not hold %q within 15s:\n%s", path, want, b)
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

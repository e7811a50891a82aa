package pebblestore

import (
	"strings"
	"syscall"
	"testing"
)

func TestSecondOpenInProcessRefused(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	_, err := Open(dir, Options{Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
	must(t, s.Close())
	s = mustOpen(t, dir, Options{}) // released by Close
	must(t, s.Close())
}

// Another process holding the store: refused with the directory named;
// once that process is killed (no clean close) the store opens.
func TestSecondProcessRefused(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, "hold", dir)
	if l := c.line(t); l != "ready" {
		t.Fatalf("child: %s", l)
	}
	_, err := Open(dir, Options{Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "in use by another mqttd") {
		t.Fatalf("open while another process holds it: %v", err)
	}
	// And the reverse: a child cannot open what this process holds.
	must(t, c.cmd.Process.Signal(syscall.SIGKILL))
	c.cmd.Wait()
	s := mustOpen(t, dir, Options{})
	defer s.Close()
	c2 := startChild(t, "hold", dir)
	if l := c2.line(t); !strings.Contains(l, "in use by another mqttd") || !strings.Contains(l, dir) {
		t.Fatalf("child opening a held store said %q", l)
	}
}

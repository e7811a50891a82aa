package pebblestore

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"

	"github.com/mqttd/mqttd/internal/store"
)

// damage opens dir with plain Pebble (as a stray tool or a bad disk
// might) and applies fn.
func damage(t *testing.T, dir string, fn func(db *pebble.DB)) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{l: quiet()}})
	must(t, err)
	fn(db)
	must(t, db.Close())
}

func filledStore(t *testing.T) string {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	fill(t, s)
	must(t, s.Close())
	return dir
}

func wantCorrupt(t *testing.T, dir string) {
	t.Helper()
	_, err := Open(dir, Options{Logger: quiet()})
	if !errors.Is(err, ErrCorruptStore) {
		t.Fatalf("open: %v, want ErrCorruptStore", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, dir) || !strings.Contains(msg, "storage.on-corrupt: quarantine") {
		t.Fatalf("message does not name the directory and the fix: %s", msg)
	}
	// Refused, not replaced: the data is still there for the operator.
	if !hasManifest(dir) {
		t.Fatal("store files gone after a refused open")
	}
}

func TestCorruptSessionRecordRefused(t *testing.T) {
	dir := filledStore(t)
	damage(t, dir, func(db *pebble.DB) { must(t, db.Set(flatKey(pSession, "x"), []byte{1, 0xff}, pebble.Sync)) })
	wantCorrupt(t, dir)
}

func TestCorruptRetainedRecordRefused(t *testing.T) {
	dir := filledStore(t)
	damage(t, dir, func(db *pebble.DB) { must(t, db.Set(flatKey(pRetained, "a/r"), []byte{7}, pebble.Sync)) })
	wantCorrupt(t, dir)
}

func TestMissingFormatMarkerRefused(t *testing.T) {
	dir := filledStore(t)
	damage(t, dir, func(db *pebble.DB) { must(t, db.Delete(formatKey, pebble.Sync)) })
	wantCorrupt(t, dir)
}

func TestUnknownFormatRefused(t *testing.T) {
	dir := filledStore(t)
	damage(t, dir, func(db *pebble.DB) { must(t, db.Set(formatKey, []byte{99}, pebble.Sync)) })
	wantCorrupt(t, dir)
}

// A garbled manifest (Pebble's own metadata) is refused, not replaced by
// an empty store.
func TestGarbledManifestRefused(t *testing.T) {
	dir := filledStore(t)
	ms, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	if len(ms) == 0 {
		t.Fatal("no manifest")
	}
	for _, m := range ms {
		b, err := os.ReadFile(m)
		must(t, err)
		for i := range b {
			b[i] ^= 0x5a
		}
		must(t, os.WriteFile(m, b, 0o600))
	}
	_, err := Open(dir, Options{Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("open of a garbled manifest: %v", err)
	}
	t.Logf("refused with: %v", err)
}

// A queue entry pointing at a missing message fails the scan with
// ErrCorrupt rather than skipping it.
func TestDanglingQueueEntryReported(t *testing.T) {
	dir := filledStore(t)
	damage(t, dir, func(db *pebble.DB) { must(t, db.Delete(idKey(pMessage, 1), pebble.Sync)) })
	s := mustOpen(t, dir, Options{})
	defer s.Close()
	if _, err := s.Scan("sub", 0, 10); !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("scan: %v", err)
	}
}

func TestQuarantineMovesAsideLoudly(t *testing.T) {
	dir := filledStore(t)
	damage(t, dir, func(db *pebble.DB) { must(t, db.Set(flatKey(pSession, "x"), []byte("garbage"), pebble.Sync)) })
	var logs bytes.Buffer
	s, err := Open(dir, Options{OnCorrupt: Quarantine, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	must(t, err)
	defer s.Close()
	n := 0
	must(t, s.Sessions(func(*store.SessionRecord) error { n++; return nil }))
	if n != 0 {
		t.Fatalf("quarantined store restarted with %d sessions", n)
	}
	aside, _ := filepath.Glob(dir + ".corrupt-*")
	if len(aside) != 1 || !hasManifest(aside[0]) {
		t.Fatalf("moved-aside copy: %v", aside)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, aside[0]) {
		t.Fatalf("quarantine not logged loudly: %s", l)
	}
}

func TestVerify(t *testing.T) {
	dir := filledStore(t)
	s := mustOpen(t, dir, Options{})
	st, err := s.Verify()
	must(t, err)
	want := Stats{Sessions: 1, Retained: 1, Messages: 10, QueueEntries: 20, Inflight: 1, QoS2In: 1}
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	must(t, s.Close())
	// A message no queue entry refers to is found.
	damage(t, dir, func(db *pebble.DB) {
		must(t, db.Set(idKey(pMessage, 999), store.AppendMessage(nil, &store.MessageRecord{Topic: "t"}), pebble.Sync))
	})
	s = mustOpen(t, dir, Options{}) // not checked at open: recovery reads no message
	defer s.Close()
	if _, err := s.Verify(); !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), "no queue refers to it") {
		t.Fatalf("verify: %v", err)
	}
}

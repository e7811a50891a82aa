package pebblestore

import (
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/cockroachdb/pebble/vfs/errorfs"

	"github.com/mqttd/mqttd/internal/store"
)

// fullDisk fails writes and syncs of the log while full is set.
func fullDisk(full *atomic.Bool) vfs.FS {
	return errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op, path string) error {
		if full.Load() && strings.HasSuffix(path, ".log") && (op == errorfs.OpFileWrite || op == errorfs.OpFileSync) {
			return syscall.ENOSPC
		}
		return nil
	}))
}

// A write error on the log (a full disk) reaches the committer as an
// error, so the broker refuses the PUBLISH instead of acknowledging it;
// later commits are refused at once (Pebble cannot resume its log), reads
// and Close still work, and a restart finds exactly what was acknowledged.
func TestWriteErrorFailsStore(t *testing.T) {
	for _, d := range []store.Durability{store.Sync, store.Interval, store.None} {
		t.Run(d.String(), func(t *testing.T) {
			var full atomic.Bool
			dir := t.TempDir()
			s := mustOpen(t, dir, Options{Durability: d, FS: fullDisk(&full), RetryInterval: time.Hour}) // no recovery here: recover_test.go
			must(t, enqueueOne(s, "a"))
			if d != store.Sync {
				must(t, s.syncLog()) // the acknowledged one is on disk
			}
			full.Store(true)
			var err error
			// Sync sees the error on its own commit; the others on the
			// first fsync or commit after the log writer failed.
			for i := 0; i < 100 && err == nil; i++ {
				if err = enqueueOne(s, "a"); err == nil && d != store.Sync {
					if serr := s.syncLog(); serr != nil {
						s.fail(serr)
					}
				}
			}
			if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("commit on a full disk: %v", err)
			}
			full.Store(false)
			if err := enqueueOne(s, "a"); !errors.Is(err, ErrFailed) {
				t.Fatalf("commit after the failure: %v", err)
			}
			if _, err := s.Scan("a", 0, 10); err != nil {
				t.Fatalf("reads after the failure: %v", err)
			}
			s.Close()
			s = mustOpen(t, dir, Options{Durability: d})
			defer s.Close()
			q, err := s.Scan("a", 1, 10)
			must(t, err)
			if len(q) == 0 || q[0].Seq != 1 {
				t.Fatalf("after restart the acknowledged entry is missing: %+v", q)
			}
			must(t, enqueueOne(s, "a")) // writable again
		})
	}
}

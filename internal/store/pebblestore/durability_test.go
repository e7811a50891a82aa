package pebblestore

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"

	"github.com/mqttd/mqttd/internal/store"
)

// syncCounter is the OS file system with every fsync of a log file
// counted (Pebble syncs its log with Sync, SyncData or SyncTo).
type syncCounter struct {
	vfs.FS
	n *atomic.Int64
}

func countSyncs(n *atomic.Int64) vfs.FS { return syncCounter{vfs.Default, n} }

func (fs syncCounter) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return countedFile{f, fs.n}, nil
}

func (fs syncCounter) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	return fs.wrap(name, f, err)
}

func (fs syncCounter) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname)
	return fs.wrap(newname, f, err)
}

type countedFile struct {
	vfs.File
	n *atomic.Int64
}

func (f countedFile) Sync() error     { f.n.Add(1); return f.File.Sync() }
func (f countedFile) SyncData() error { f.n.Add(1); return f.File.SyncData() }
func (f countedFile) SyncTo(length int64) (bool, error) {
	f.n.Add(1)
	return f.File.SyncTo(length)
}

// Each mode's fsyncs: sync fsyncs before Commit returns, interval within
// its interval of a write (and not while idle), none only at Close.
func TestDurabilityModesSync(t *testing.T) {
	t.Run("sync", func(t *testing.T) {
		var n atomic.Int64
		s := mustOpen(t, t.TempDir(), Options{Durability: store.Sync, FS: countSyncs(&n)})
		defer s.Close()
		before := n.Load()
		must(t, enqueueOne(s, "a"))
		if n.Load() == before {
			t.Fatal("sync commit returned without an fsync of the log")
		}
	})
	t.Run("interval", func(t *testing.T) {
		var n atomic.Int64
		s := mustOpen(t, t.TempDir(), Options{Durability: store.Interval, SyncInterval: 20 * time.Millisecond, FS: countSyncs(&n)})
		defer s.Close()
		before := n.Load()
		must(t, enqueueOne(s, "a"))
		deadline := time.Now().Add(30 * time.Second)
		for n.Load() == before {
			if time.Now().After(deadline) {
				t.Fatal("no fsync after an interval commit")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	t.Run("none", func(t *testing.T) {
		var n atomic.Int64
		s := mustOpen(t, t.TempDir(), Options{Durability: store.None, FS: countSyncs(&n)})
		before := n.Load()
		for range 100 {
			must(t, enqueueOne(s, "a"))
		}
		if got := n.Load(); got != before {
			t.Fatalf("%d fsyncs in durability none", got-before)
		}
		must(t, s.Close())
		if n.Load() == before {
			t.Fatal("Close did not fsync the log")
		}
	})
}

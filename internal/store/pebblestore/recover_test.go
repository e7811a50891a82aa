package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/cockroachdb/pebble/vfs/errorfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/store"
)

// diskFull fails every write and sync to any file of the store, and the
// creation of new ones, while full is set, as a full disk does; probes
// counts the recovery probe's attempts to write its file meanwhile.
type diskFull struct {
	full   atomic.Bool
	probes atomic.Int64
}

func (d *diskFull) fs() vfs.FS {
	return errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op, path string) error {
		if !d.full.Load() {
			return nil
		}
		switch op {
		case errorfs.OpCreate:
			if strings.HasSuffix(path, probeFile) {
				d.probes.Add(1)
			}
			return syscall.ENOSPC
		case errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpReuseForRewrite:
			return syscall.ENOSPC
		}
		return nil
	}))
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline: the machine may be loaded, nothing here is timed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// enqueuePayload commits one message with payload p queued for client.
func enqueuePayload(s store.Store, client, p string) error {
	var b store.Batch
	b.Enqueue(&store.MessageRecord{Topic: "t", Payload: []byte(p), QoS: 1}, []store.Delivery{{ClientID: client, QoS: 1}})
	return s.Commit(context.Background(), &b)
}

// payloads is client's queue, as payloads in order.
func payloads(t *testing.T, s *Store, client string) []string {
	t.Helper()
	var out []string
	for from := uint64(0); ; {
		q, err := s.Scan(client, from, 256)
		must(t, err)
		for _, e := range q {
			out = append(out, string(e.Msg.Payload))
			from = e.Seq + 1
		}
		if len(q) < 256 {
			return out
		}
	}
}

// A full disk fails the store; while it stays full, writes are refused
// (the probe keeps trying) and reads go on; once space returns the store
// reopens itself and takes writes again, with everything acknowledged
// before the outage still there, and all of it survives a restart.
func TestRecoversWhenSpaceReturns(t *testing.T) {
	for _, d := range []store.Durability{store.Sync, store.Interval, store.None} {
		t.Run(d.String(), func(t *testing.T) {
			var disk diskFull
			dir := t.TempDir()
			m := NewMetrics()
			reg := prometheus.NewRegistry()
			reg.MustRegister(m)
			s := mustOpen(t, dir, Options{Durability: d, FS: disk.fs(), RetryInterval: 5 * time.Millisecond, Metrics: m})
			must(t, enqueuePayload(s, "a", "before"))
			if d != store.Sync {
				must(t, s.syncLog()) // acknowledged means on disk from here
			}

			disk.full.Store(true)
			var err error
			for i := 0; i < 100 && err == nil; i++ {
				if err = enqueuePayload(s, "a", "lost"); err == nil && d != store.Sync {
					err = s.syncLog()
				}
			}
			if !errors.Is(err, ErrFailed) {
				t.Fatalf("commit on a full disk: %v", err)
			}
			// The probe finds the disk still full, more than once, and
			// the store keeps refusing.
			waitFor(t, "two probes on the full disk", func() bool { return disk.probes.Load() >= 2 })
			if err := enqueuePayload(s, "a", "refused"); !errors.Is(err, ErrFailed) {
				t.Fatalf("commit while the disk is full: %v", err)
			}
			if got := payloads(t, s, "a"); len(got) == 0 || got[0] != "before" {
				t.Fatalf("reads while failed: %q", got)
			}
			if v := value(t, reg, "mqttd_store_failures_total"); v != 1 {
				t.Fatalf("failures %v, want 1", v)
			}
			if got := value(t, reg, "mqttd_store_healthy"); got != 0 {
				t.Fatalf("healthy %v while failed", got)
			}

			disk.full.Store(false)
			waitFor(t, "the store to recover", s.Healthy)
			must(t, enqueuePayload(s, "a", "after"))
			if d != store.Sync {
				must(t, s.syncLog())
			}
			if _, err := s.Verify(); err != nil {
				t.Fatalf("store after recovery: %v", err)
			}
			checkBeforeAfter(t, payloads(t, s, "a"))
			if r, f := value(t, reg, "mqttd_store_recoveries_total"), value(t, reg, "mqttd_store_failures_total"); r != 1 || f != 1 {
				t.Fatalf("recoveries %v failures %v, want 1 and 1", r, f)
			}
			if got := value(t, reg, "mqttd_store_healthy"); got != 1 {
				t.Fatalf("healthy %v after recovery", got)
			}
			must(t, s.Close())

			s = mustOpen(t, dir, Options{Durability: d})
			defer s.Close()
			if _, err := s.Verify(); err != nil {
				t.Fatalf("store after restart: %v", err)
			}
			checkBeforeAfter(t, payloads(t, s, "a"))
			must(t, enqueuePayload(s, "a", "later"))
		})
	}
}

// checkBeforeAfter: the acknowledged "before" comes first and "after"
// last; in between only failed writes (refused, never acknowledged,
// whose bytes reached the log before it failed) may be found again.
func checkBeforeAfter(t *testing.T, got []string) {
	t.Helper()
	if len(got) < 2 || got[0] != "before" || got[len(got)-1] != "after" {
		t.Fatalf("queue %q, want before ... after", got)
	}
	for _, p := range got[1 : len(got)-1] {
		if p != "lost" {
			t.Fatalf("queue %q holds %q, which was never written", got, p)
		}
	}
}

// Writers committing concurrently through two outages, in every
// durability mode, with messages large enough to fill the log's blocks
// often: no commit ever reaches Pebble's failed log writer (which would
// panic), the store stays consistent, and with sync durability every
// commit that was acknowledged is in the store after each recovery and
// after a restart. (The others acknowledge before the fsync: a write
// error loses what was not yet synced, as a crash would.) An outage that
// begins in the middle of Pebble's switch to a new log wedges the store
// instead (TestWedged); then what was acknowledged is checked on a copy,
// as a restart would find it.
func TestRecoveryKeepsAcknowledged(t *testing.T) {
	for _, d := range []store.Durability{store.Sync, store.Interval, store.None} {
		t.Run(d.String(), func(t *testing.T) { recoveryUnderLoad(t, d) })
	}
}

func recoveryUnderLoad(t *testing.T, d store.Durability) {
	var disk diskFull
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{Durability: d, SyncInterval: time.Millisecond, FS: disk.fs(), RetryInterval: 5 * time.Millisecond})
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		fails atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	pad := strings.Repeat("x", 8<<10)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				p := fmt.Sprintf("w%d-%d", w, i)
				switch err := enqueuePayload(s, fmt.Sprintf("c%d", w%2), p+" "+pad); {
				case err == nil:
					mu.Lock()
					acked[p] = true
					mu.Unlock()
				case errors.Is(err, ErrFailed):
					fails.Add(1)
				default:
					t.Errorf("commit: %v", err)
					return
				}
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	wedged := false
	for range 2 {
		n := count()
		waitFor(t, "commits while healthy", func() bool { return count() >= n+50 })
		f := fails.Load()
		disk.full.Store(true)
		waitFor(t, "refusals while full", func() bool { return fails.Load() >= f+20 })
		disk.full.Store(false)
		waitFor(t, "the store to recover", func() bool {
			wedged = errors.Is(s.failure(), errWedged)
			return wedged || s.Healthy()
		})
		if wedged {
			t.Log("the outage began in a switch of logs: wedged")
			break
		}
	}
	if !wedged {
		n := count()
		waitFor(t, "commits after recovery", func() bool { return count() >= n+50 })
	}
	stop.Store(true)
	wg.Wait()

	check := func(s *Store) {
		t.Helper()
		if _, err := s.Verify(); err != nil {
			t.Fatalf("verify: %v", err)
		}
		if d != store.Sync {
			return
		}
		have := map[string]bool{}
		for _, c := range []string{"c0", "c1"} {
			for _, p := range payloads(t, s, c) {
				have[strings.Fields(p)[0]] = true
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for p := range acked {
			if !have[p] {
				t.Fatalf("acknowledged %s is missing", p)
			}
		}
	}
	if wedged {
		must(t, s.Close())
		dir = restartCopy(t, dir)
	} else {
		check(s)
		must(t, s.Close())
	}
	s = mustOpen(t, dir, Options{Durability: d})
	defer s.Close()
	check(s)
}

// restartCopy copies the directory of a wedged store, whose Pebble still
// holds its lock until the process exits, as a restart would find it.
func restartCopy(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir() + "/store"
	if _, err := vfs.Clone(vfs.Default, vfs.Default, dir, to); err != nil {
		t.Fatal(err)
	}
	return to
}

// A write error in Pebble's switch to a new log (here: the new log cannot
// be created) panics inside Pebble with its commit pipeline locked. The
// store turns that into a wedged store: the commit is refused, later
// writes and reads are refused without touching Pebble, the probe does
// not try to reopen it, Close returns, and a restart finds everything
// that was acknowledged.
func TestWedged(t *testing.T) {
	defer func(n uint64) { memTableSize = n }(memTableSize)
	memTableSize = 256 << 10
	var noNewLog atomic.Bool
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op, path string) error {
		if noNewLog.Load() && strings.HasSuffix(path, ".log") && (op == errorfs.OpCreate || op == errorfs.OpReuseForRewrite) {
			return syscall.ENOSPC
		}
		return nil
	}))
	m := NewMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{Durability: store.Sync, FS: fs, RetryInterval: time.Millisecond, Metrics: m})
	noNewLog.Store(true)
	pad := strings.Repeat("x", 4<<10)
	var acked []string
	var err error
	for i := 0; i < 10000 && err == nil; i++ { // 40 MB: many memtables of 256 KiB
		p := fmt.Sprintf("m%d", i)
		if err = enqueuePayload(s, "a", p+" "+pad); err == nil {
			acked = append(acked, p)
		}
	}
	if !errors.Is(err, ErrFailed) || !errors.Is(err, errWedged) || !strings.Contains(err.Error(), "restart mqttd") {
		t.Fatalf("commit when Pebble cannot switch logs: %v", err)
	}
	noNewLog.Store(false)
	if err := enqueuePayload(s, "a", "later"); !errors.Is(err, errWedged) {
		t.Fatalf("commit on a wedged store: %v", err)
	}
	if _, err := s.Scan("a", 0, 1); err == nil {
		t.Fatal("read of a wedged store")
	}
	if s.Healthy() || value(t, reg, "mqttd_store_healthy") != 0 || value(t, reg, "mqttd_store_failures_total") != 1 {
		t.Fatal("a wedged store reported healthy")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close of a wedged store: %v", err)
	}
	if v := value(t, reg, "mqttd_store_recoveries_total"); v != 0 {
		t.Fatalf("recoveries %v of a wedged store", v)
	}
	s = mustOpen(t, restartCopy(t, dir), Options{Durability: store.Sync})
	defer s.Close()
	have := map[string]bool{}
	for _, p := range payloads(t, s, "a") {
		have[strings.Fields(p)[0]] = true
	}
	for _, p := range acked {
		if !have[p] {
			t.Fatalf("acknowledged %s is missing after the restart (%d acknowledged)", p, len(acked))
		}
	}
}

// enqueueSeq commits one message for client and returns the sequence
// number the store gave it.
func enqueueSeq(t *testing.T, s store.Store, client, p string) (uint64, error) {
	t.Helper()
	var b store.Batch
	ds := []store.Delivery{{ClientID: client, QoS: 1}}
	b.Enqueue(&store.MessageRecord{Topic: "t", Payload: []byte(p), QoS: 1}, ds)
	err := s.Commit(context.Background(), &b)
	return ds[0].Seq, err
}

// With durability none a commit is acknowledged before it reaches the
// disk, and a write error loses it, as a crash would. The broker still
// holds that delivery by its sequence number, so after the recovery the
// store must not hand the same number out again.
func TestRecoveryNeverReusesSequence(t *testing.T) {
	var disk diskFull
	s := mustOpen(t, t.TempDir(), Options{Durability: store.None, FS: disk.fs(), RetryInterval: time.Millisecond})
	defer s.Close()
	if _, err := enqueueSeq(t, s, "a", "kept"); err != nil {
		t.Fatal(err)
	}
	must(t, s.syncLog())
	lost, err := enqueueSeq(t, s, "a", "lost") // in the log's buffer only
	must(t, err)
	disk.full.Store(true)
	if err := s.syncLog(); !errors.Is(err, ErrFailed) {
		t.Fatalf("fsync on a full disk: %v", err)
	}
	disk.full.Store(false)
	waitFor(t, "the store to recover", s.Healthy)
	if got := payloads(t, s, "a"); len(got) != 1 || got[0] != "kept" {
		t.Fatalf("queue after the recovery %q, want only the synced one", got)
	}
	next, err := enqueueSeq(t, s, "a", "next")
	must(t, err)
	if next <= lost {
		t.Fatalf("sequence %d handed out again after the recovery (lost one had %d)", next, lost)
	}
	if _, err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}

// Open on a full disk fails with an error and leaves nothing running
// (no probe on a store that never opened); once space returns, Open
// finds what was acknowledged before.
func TestOpenOnFullDisk(t *testing.T) {
	var disk diskFull
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{FS: disk.fs(), RetryInterval: time.Millisecond})
	must(t, enqueuePayload(s, "a", "kept"))
	must(t, s.Close())
	disk.full.Store(true)
	if s, err := Open(dir, Options{FS: disk.fs(), RetryInterval: time.Millisecond, Logger: quiet()}); err == nil {
		s.Close()
		t.Fatal("Open on a full disk succeeded")
	}
	disk.full.Store(false)
	s = mustOpen(t, dir, Options{FS: disk.fs(), RetryInterval: time.Millisecond})
	defer s.Close()
	// Long enough for a probe of the failed Open to have run many times.
	for range 20 {
		must(t, enqueuePayload(s, "a", "more"))
	}
	if got := payloads(t, s, "a"); len(got) != 21 || got[0] != "kept" {
		t.Fatalf("queue %q", got)
	}
}

package pebblestore

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/mqttd/mqttd/internal/store"
)

// Recovery from a write error. Pebble cannot resume a write-ahead log
// once a write or fsync of it failed (its log writer keeps the error, a
// later commit panics, switching to a new log panics), so the store does
// not try: it refuses every write (fail.go), and a probe replaces the
// Pebble instance. First, at once, with a read-only one, so reads go on
// and a writable instance on a full disk does not retry its failed
// flushes without pause. Then every RetryInterval it checks whether the
// disk takes writes again (a file written, fsynced and removed) and, once
// it does, opens Pebble writable on the same directory: the reopen
// replays the log, which holds every acknowledged commit, and writes it
// to tables; a reopen that fails falls back to read-only and is retried.
// Before closing an instance the probe waits for the batches already
// handed to it: each ends durable (and is acknowledged) or with the error
// (and is refused). The in-memory index is rebuilt from the reopened
// store (resetIndex), and writes are accepted again. A batch that failed
// may or may not be in the log (its bytes may have reached the file
// before the fsync failed): it was refused, never acknowledged, so
// finding it again is a redelivery, not a loss.

// recovery is the state of the recovery probe.
type recovery struct {
	mu      sync.Mutex
	opened  bool          // Open succeeded: there is an instance to replace
	running bool          // a probe goroutine is running
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when the probe goroutine ends
	stopped bool

	// pending counts batches applied to the current Pebble instance whose
	// wait has not ended; the probe closes Pebble only once it is zero.
	pending sync.WaitGroup
}

// probeFile is written, fsynced and removed in the store's directory to
// tell whether the disk takes writes again; probeBytes is its size, room
// for a new log and manifest (the table of the replayed log may need
// more: a reopen that fails for want of it is retried).
const (
	probeFile  = "mqttd-space-probe"
	probeBytes = 1 << 20
)

// pebbleOptions are the options every Pebble instance of s is opened with.
// The FS reports write errors to s as they happen (guardFS), before Pebble
// itself notices them.
func (s *Store) pebbleOptions(cache *pebble.Cache, readOnly bool) *pebble.Options {
	base := s.opts.FS
	if base == nil {
		base = vfs.Default
	}
	logger := pebbleLogger{l: s.opts.Logger, onFatal: func(err error) { s.fail(err) }}
	// A background error (a failed flush or compaction) on a failed store
	// is the failure already logged once; Pebble may retry it many times.
	events := &pebble.EventListener{BackgroundError: func(err error) {
		if s.Healthy() {
			s.opts.Logger.Error("pebble: background error", "dir", s.dir, "error", err)
		} else {
			s.opts.Logger.Debug("pebble: background error", "dir", s.dir, "error", err)
		}
	}}
	return &pebble.Options{Cache: cache, Logger: logger, EventListener: events, ReadOnly: readOnly, MemTableSize: memTableSize,
		FS: &guardFS{FS: base, trip: func(err error) { s.fail(err) }}}
}

// memTableSize is Pebble's memtable size (0: its default); a variable so
// that tests can make Pebble switch to a new log often.
var memTableSize uint64

// openDone lets the probe run once Open has succeeded, starting it if a
// write failed during Open. A store whose Open fails has no probe.
func (s *Store) openDone() {
	s.rec.mu.Lock()
	s.rec.opened = true
	s.rec.mu.Unlock()
	if s.failure() != nil {
		s.startRecovery()
	}
}

// startRecovery starts the probe unless it runs, the store is closing or
// not yet open.
func (s *Store) startRecovery() {
	r := &s.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running || r.stopped || !r.opened {
		return
	}
	r.running = true
	if r.stop == nil {
		r.stop = make(chan struct{})
	}
	r.done = make(chan struct{})
	go s.recoverLoop(r.stop, r.done)
}

// stopRecovery stops the probe and waits for it; Close calls it first,
// so a probe never runs on a closing store.
func (s *Store) stopRecovery() {
	r := &s.rec
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	if r.stop == nil {
		r.stop = make(chan struct{})
	}
	close(r.stop)
	done := r.done
	r.mu.Unlock()
	if done != nil {
		<-done
	}
}

// recoverLoop first swaps the failed instance for a read-only one at
// once (a writable Pebble on a full disk retries its failed flushes
// without pause, each logged), then retries every RetryInterval until the
// store is writable again or closing.
func (s *Store) recoverLoop(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(s.opts.RetryInterval)
	defer t.Stop()
	for writable := false; ; writable = true {
		if writable {
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
		ok, err := s.tryRecover(stop, writable)
		if errors.Is(err, store.ErrClosed) {
			return
		}
		if err != nil && writable {
			s.opts.Logger.Debug("store: still not writable", "dir", s.dir, "error", err)
		}
		if ok && s.probeDone() {
			return
		}
	}
}

// probeDone ends the probe unless the store failed again meanwhile (its
// fail found the probe still running, so did not start another).
func (s *Store) probeDone() bool {
	r := &s.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.failure() != nil {
		return false
	}
	r.running = false
	return true
}

// tryRecover replaces the failed Pebble instance: with a writable one
// when writable is set and the disk takes writes again (ok is then true),
// else with a read-only one, so reads go on.
func (s *Store) tryRecover(stop chan struct{}, writable bool) (ok bool, err error) {
	switch f := s.failure(); {
	case f == nil:
		return true, nil
	case errors.Is(f, errWedged):
		return false, store.ErrClosed // only a restart recovers
	}
	if writable {
		if err := s.probeDisk(); err != nil {
			return false, err
		}
	}
	// Every batch that passed the failure check has been counted once the
	// commit mutex is free.
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return false, store.ErrClosed
	}
	// No batch is applied from now on (the store is failed); wait for the
	// ones applied before to end, outside the commit mutex: their
	// callbacks may commit (and be refused).
	s.rec.pending.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, store.ErrClosed
	}
	rw, err := s.swap(stop, writable)
	if errors.Is(err, store.ErrClosed) {
		return false, err
	}
	// The index is rebuilt the way Open builds it, through the store's
	// readers (so not under the readers' lock the swap took).
	if ierr := s.resetIndex(); ierr != nil {
		return false, ierr
	}
	if !rw {
		return false, err
	}
	// One fsynced write through the new log proves the write path whole;
	// should it fail, the store stays failed and the next attempt reopens.
	if err := s.syncLogLocked(); err != nil {
		return false, err
	}
	s.fmu.Lock()
	outage := time.Since(s.failedAt)
	s.failed = nil
	s.fmu.Unlock()
	if m := s.opts.Metrics; m != nil {
		m.recovered()
	}
	s.opts.Logger.Warn("store: writable again; QoS 1/2 messages for persistent sessions are accepted again",
		"dir", s.dir, "outage", outage.Round(time.Millisecond))
	return true, nil
}

// swap closes the Pebble instance and opens another on s.dir, under the
// readers' lock: writable if writable is set and it can (rw is then true;
// the open replays the log, which holds every acknowledged commit, and
// writes it to tables), else read-only (err says why not writable).
// Should neither open, it retries every RetryInterval, readers and
// writers waiting, until one does or the store closes. Caller holds s.mu.
func (s *Store) swap(stop chan struct{}, writable bool) (rw bool, err error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.rclosed {
		return false, store.ErrClosed
	}
	if err := s.db.Close(); err != nil {
		s.opts.Logger.Debug("store: closing the failed instance", "dir", s.dir, "error", err)
	}
	s.db = nil
	for {
		cache := pebble.NewCache(s.opts.CacheBytes)
		if writable {
			var db *pebble.DB
			if db, err = pebble.Open(s.dir, s.pebbleOptions(cache, false)); err == nil {
				s.db = db
				cache.Unref()
				return true, nil
			}
		}
		db, rerr := pebble.Open(s.dir, s.pebbleOptions(cache, true))
		cache.Unref()
		if rerr == nil {
			s.db = db
			return false, err
		}
		if err != nil {
			rerr = fmt.Errorf("%v; read-only: %v", err, rerr)
		}
		s.opts.Logger.Error("store: cannot reopen it, even read-only; retrying", "dir", s.dir, "error", rerr)
		select {
		case <-stop:
			return false, store.ErrClosed
		case <-time.After(s.opts.RetryInterval):
		}
	}
}

// resetIndex rebuilds the in-memory index from the reopened store: it
// may hold batches that failed, and the store may have lost, with
// durability interval or none, batches acknowledged but not yet synced.
// Sequence numbers and message ids never go back, though: the broker
// still holds the deliveries it was handed, and a number handed out again
// would let an acknowledgement of one of them remove a new entry. So a
// queue whose last sequence number in memory is ahead of the store's
// keeps it. Caller holds s.mu.
func (s *Store) resetIndex() error {
	floors := map[string]uint64{}
	for id, q := range s.queues {
		if q.head.last > 0 {
			floors[id] = q.head.last
		}
	}
	next := s.nextMsg
	s.queues, s.indexed, s.refs, s.dirty, s.nextMsg = map[string]*queueIndex{}, 0, refIndex{}, false, 0
	if err := s.loadIndex(); err != nil {
		return err
	}
	s.nextMsg = max(s.nextMsg, next)
	for id, last := range floors {
		if err := s.raiseLast(id, last); err != nil {
			return err
		}
	}
	return nil
}

// raiseLast makes last the least last sequence number of client id's
// queue: its head is read from the store (a queue not in memory is read
// from there when needed), and kept in memory, raised, when it is behind;
// the next commit to the queue stores it. Caller holds s.mu.
func (s *Store) raiseLast(id string, last uint64) error {
	q := s.queues[id]
	if q == nil {
		q = &queueIndex{}
	}
	if last > q.head.last {
		q.head.last, q.since = last, last+1
		s.queues[id] = q
	}
	return nil
}

// probeDisk writes, fsyncs and removes probeFile in the store's directory.
func (s *Store) probeDisk() error {
	fs := s.opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	name := fs.PathJoin(s.dir, probeFile)
	f, err := fs.Create(name)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for n := 0; n < probeBytes && err == nil; n += len(buf) {
		_, err = f.Write(buf)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := fs.Remove(name); err == nil {
		err = rerr
	}
	return err
}

// guardFS reports every failed write or sync of a file Pebble writes to
// trip (a failed preallocation is not one: Pebble ignores it), before the error reaches Pebble: the store is
// failed before Pebble's log writer keeps the error, so no commit reaches
// a log writer that would panic on it.
type guardFS struct {
	vfs.FS
	trip func(error)
}

func (g *guardFS) Create(name string) (vfs.File, error) {
	f, err := g.FS.Create(name)
	return g.wrap(f, err)
}

func (g *guardFS) OpenReadWrite(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := g.FS.OpenReadWrite(name, opts...)
	return g.wrap(f, err)
}

func (g *guardFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := g.FS.ReuseForWrite(oldname, newname)
	return g.wrap(f, err)
}

func (g *guardFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		g.trip(err)
		return nil, err
	}
	return &guardFile{File: f, trip: g.trip}, nil
}

type guardFile struct {
	vfs.File
	trip func(error)
}

func (f *guardFile) check(err error) error {
	if err != nil {
		f.trip(err)
	}
	return err
}

func (f *guardFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	return n, f.check(err)
}

func (f *guardFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	return n, f.check(err)
}

func (f *guardFile) Sync() error { return f.check(f.File.Sync()) }

func (f *guardFile) SyncData() error { return f.check(f.File.SyncData()) }

func (f *guardFile) SyncTo(n int64) (bool, error) {
	full, err := f.File.SyncTo(n)
	return full, f.check(err)
}

package pebblestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/mqttd/mqttd/internal/store"
)

// formatV3: a message for one session is held by its queue entry, and
// acknowledged entries are deleted in ranges. Format 2 (queue entries that
// always refer to a message key) and 1 (queue heads and reference counts
// stored) are refused, as older.
const formatV3 = 3

// Store is the on-disk store.Store, on Pebble. It is safe for concurrent
// use; Open one per directory.
type Store struct {
	dir  string
	opts Options
	db   *pebble.DB
	lock *os.File

	mu      sync.Mutex // serialises commits; see the package doc
	closed  bool
	nextMsg uint64                 // last message id handed out
	queues  map[string]*queueIndex // see index.go
	refs    refIndex
	indexed int           // entries cached in all queue indexes
	scratch scratch       // the writer's buffers, kept from one commit to the next
	dirty   bool          // Interval: written since the last fsync
	keys    atomic.Uint64 // key writes (sets and deletes) applied since Open
	epoch   time.Time     // Open: what readAt counts from
	readAt  atomic.Int64  // see noteRead

	rmu     sync.RWMutex // held by readers; Close takes it to stop them first
	rclosed bool

	fmu      sync.Mutex
	failed   error // see fail.go
	failedAt time.Time
	rec      recovery // see recover.go

	notify   *store.Notifier
	stopSync chan struct{}
	syncDone chan struct{}
}

var _ store.Store = (*Store)(nil)

// ErrCorruptStore wraps the error Open returns for a corrupt store.
var ErrCorruptStore = errors.New("store is corrupt")

// ErrOldFormat wraps the error Open returns for a store in an older
// format: not corrupt (it is never quarantined), but not readable by this
// version either.
var ErrOldFormat = errors.New("store is in an older format")

// Open opens the store in dir, creating dir when it does not exist. It
// takes the directory's lock, so a second Open of the same directory fails
// until Close, and checks the format marker and the session and retained
// records; a store that fails that check is refused, or moved aside and
// replaced by an empty one, as o.OnCorrupt says.
func Open(dir string, o Options) (*Store, error) {
	opts := o.withDefaults()
	s, err := open(dir, opts)
	if err == nil || !errors.Is(err, ErrCorruptStore) || opts.OnCorrupt != Quarantine {
		return s, err
	}
	aside := fmt.Sprintf("%s.corrupt-%s", filepath.Clean(dir), time.Now().UTC().Format("20060102T150405Z"))
	if rerr := os.Rename(dir, aside); rerr != nil {
		return nil, fmt.Errorf("%w; quarantining it failed: %v", err, rerr)
	}
	opts.Logger.Error("store was corrupt: moved it aside and started EMPTY (storage.on-corrupt: quarantine); sessions, queued and retained messages in it are not restored",
		"dir", dir, "moved_to", aside, "error", err)
	return open(dir, opts)
}

func open(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store %s: cannot create it: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s, err := openLocked(dir, opts, lock)
	if err != nil {
		unlockDir(lock)
		return nil, err
	}
	return s, nil
}

func openLocked(dir string, opts Options, lock *os.File) (*Store, error) {
	existed := hasManifest(dir)
	cache := pebble.NewCache(opts.CacheBytes)
	defer cache.Unref()
	s := &Store{dir: dir, opts: opts, lock: lock, queues: map[string]*queueIndex{}, epoch: time.Now()}
	db, err := pebble.Open(dir, s.pebbleOptions(cache, false))
	if err != nil {
		if pebble.IsCorruptionError(err) {
			return nil, corrupt(dir, err)
		}
		return nil, fmt.Errorf("store %s: cannot open it: %w", dir, err)
	}
	s.db = db
	if err := s.recover(existed); err != nil {
		db.Close()
		if errors.Is(err, store.ErrCorrupt) || pebble.IsCorruptionError(err) {
			return nil, corrupt(dir, err)
		}
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	s.notify = store.NewNotifier()
	if opts.Metrics != nil {
		opts.Metrics.attach(s)
	}
	if opts.Durability == store.Interval {
		s.stopSync, s.syncDone = make(chan struct{}), make(chan struct{})
		go s.syncLoop()
	}
	s.openDone()
	return s, nil
}

func corrupt(dir string, err error) error {
	return fmt.Errorf("%w: %s: %v; to keep it for inspection and start empty set storage.on-corrupt: quarantine (it is moved to %s.corrupt-TIME), or move the directory away yourself",
		ErrCorruptStore, dir, err, filepath.Clean(dir))
}

// hasManifest tells whether dir already held a Pebble store, so that a
// missing format marker after opening means damage, not a new store.
func hasManifest(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	return len(m) > 0
}

// recover checks the format marker, decodes every session and retained
// record, finds the last message id, and rebuilds the queue heads and
// reference counts from the queue entries (index.go).
func (s *Store) recover(existed bool) error {
	v, ok, err := get(s.db, formatKey)
	switch {
	case err != nil:
		return err
	case !ok && existed:
		return fmt.Errorf("%w: format marker missing", store.ErrCorrupt)
	case !ok:
		if err := s.db.Set(formatKey, []byte{formatV3}, pebble.Sync); err != nil {
			return err
		}
	case len(v) == 1 && v[0] < formatV3:
		return fmt.Errorf("%w (format %d, this mqttd reads format %d): written by an older mqttd; this one cannot read it: run the older version until its queues are drained, or move the directory away to start empty", ErrOldFormat, v[0], formatV3)
	case len(v) != 1 || v[0] != formatV3:
		return fmt.Errorf("%w: unknown store format %x (written by a newer mqttd?)", store.ErrCorrupt, v)
	}
	if err := s.Sessions(func(*store.SessionRecord) error { return nil }); err != nil {
		return err
	}
	if err := s.Retained(func(*store.MessageRecord) error { return nil }); err != nil {
		return err
	}
	return s.loadIndex()
}

// loadIndex finds what the in-memory index starts from in the store: the
// last message id. Open calls it, and the recovery probe after reopening.
func (s *Store) loadIndex() error {
	last, err := s.lastKey(pMessage)
	if err != nil {
		return err
	}
	if last != nil {
		id, ok := tailUint(last, 8)
		if !ok || len(last) != 9 {
			return fmt.Errorf("%w: bad message key %x", store.ErrCorrupt, last)
		}
		s.nextMsg = id
	}
	return s.rebuildIndex()
}

// rebuildIndex makes every queue's head and the reference counts from one
// pass over the queue entries, which only decodes each entry's message id
// (no message is read): work in proportion to queued entries, at a few
// hundred nanoseconds each. A queue's last sequence number is the larger
// of its newest entry's and the one Close wrote.
func (s *Store) rebuildIndex() error {
	// The entries' message ids, sorted afterwards to count them: a slice
	// holds a million in 8 MiB where a map of counts took 19 MiB more at
	// the peak, and most messages (one subscriber each) need no count.
	var msgs []uint64
	var q *queueIndex
	var client []byte // q's client id, as in the key
	err := s.each([]byte{pQueue}, []byte{pQueue + 1}, func(k, v []byte) error {
		id, seq, ok := splitClientKey(k, 8)
		if !ok {
			return fmt.Errorf("%w: bad queue key %x", store.ErrCorrupt, k)
		}
		msg, err := refMsg(v)
		if err != nil {
			return err
		}
		if q == nil || string(id) != string(client) {
			client = append(client[:0], id...)
			q = &queueIndex{}
			s.queues[string(id)] = q
		}
		q.head.count++
		q.head.last = seq // keys are in sequence order
		// 0: the entry holds its message, which has nothing to count.
		if msg != 0 {
			msgs = append(msgs, msg)
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = s.each([]byte{pLast}, []byte{pLast + 1}, func(k, v []byte) error {
		last, err := decodeLast(v)
		if err != nil {
			return err
		}
		q := s.queues[string(k[1:])]
		if q == nil {
			q = &queueIndex{}
			s.queues[string(k[1:])] = q
		}
		q.head.last = max(q.head.last, last)
		return nil
	})
	if err != nil {
		return err
	}
	for _, q := range s.queues {
		q.since = q.head.last + 1
	}
	slices.Sort(msgs)
	for i := 0; i < len(msgs); {
		j := i + 1
		for j < len(msgs) && msgs[j] == msgs[i] {
			j++
		}
		s.refs.set(msgs[i], uint32(j-i))
		i = j
	}
	return nil
}

func (s *Store) lastKey(prefix byte) ([]byte, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if !it.Last() {
		return nil, it.Error()
	}
	return append([]byte(nil), it.Key()...), nil
}

// get returns a copy of key's value.
func get(r pebble.Reader, key []byte) ([]byte, bool, error) {
	v, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	c.Close()
	return out, true, nil
}

// KeysWritten is the number of key writes (sets and deletes) applied since
// Open: what the benchmarks divide by messages to compare layouts.
func (s *Store) KeysWritten() uint64 { return s.keys.Load() }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Close waits for pending commits, fsyncs and releases the directory.
func (s *Store) Close() error {
	s.stopRecovery()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	s.notify.Close()
	s.rmu.Lock()
	s.rclosed = true
	s.rmu.Unlock()
	if s.stopSync != nil {
		close(s.stopSync)
		<-s.syncDone
	}
	var err error
	if s.failure() == nil {
		if err = s.saveLast(); err == nil {
			err = s.syncLog()
		}
	}
	if s.db != nil { // nil: the recovery probe could not reopen it
		if cerr := s.db.Close(); err == nil {
			err = cerr
		}
	}
	unlockDir(s.lock)
	if err != nil {
		return fmt.Errorf("store %s: close: %w", s.dir, err)
	}
	return nil
}

// saveLast writes every queue's last sequence number (see index.go), once
// no commit can run.
func (s *Store) saveLast() error {
	b := s.db.NewBatch()
	defer b.Close()
	var v []byte
	for id, q := range s.queues {
		if q.head.last == 0 {
			continue
		}
		v = appendLast(v[:0], q.head.last)
		if err := b.Set(flatKey(pLast, id), v, nil); err != nil {
			return err
		}
	}
	if b.Empty() {
		return nil
	}
	return s.db.Apply(b, pebble.NoSync)
}

// syncLoop is Interval durability: fsync the log when something was
// written since the last time.
func (s *Store) syncLoop() {
	defer close(s.syncDone)
	t := time.NewTicker(s.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopSync:
			return
		case <-t.C:
		}
		s.mu.Lock()
		dirty := s.dirty
		s.dirty = false
		s.mu.Unlock()
		if dirty && s.failure() == nil {
			if err := s.syncLog(); err != nil {
				s.fail(err)
			}
		}
	}
}

// Exists tells whether dir holds a store, so that an offline check does
// not create an empty one where the operator mistyped the directory.
func Exists(dir string) bool { return hasManifest(dir) }

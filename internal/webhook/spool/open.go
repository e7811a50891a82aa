package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/mqttd/mqttd/internal/filelock"
)

// Options configure Open.
type Options struct {
	MaxBytes int64        // keys and values kept at most; beyond it the oldest records are dropped [256 MiB]
	Logger   *slog.Logger // [slog.Default()]
}

// open spools by directory: a plugin rebuilt by a config reload opens the
// directory its predecessor still holds, and gets the same store.
var (
	openMu sync.Mutex
	opened = map[string]*store{}
)

// Open opens (creating it if need be) the spool in dir. Within one process
// every Open of a directory shares one store, each with its own Spool
// handle; the store is closed with the last handle. Another process holding
// the directory is refused. A store Pebble finds corrupt is moved aside to
// DIR.corrupt-TIME and an empty one started, logged at error level: events
// are worth less than a broker that starts. A record that does not decode
// is deleted, counted (Stats.Corrupt) and logged.
func Open(dir string, o Options) (*Spool, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 256 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	openMu.Lock()
	defer openMu.Unlock()
	st := opened[abs]
	if st == nil {
		if st, err = openStore(abs, o); err != nil {
			return nil, err
		}
		opened[abs] = st
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.maxBytes = o.MaxBytes // the newest config wins
	return st.attach(), nil
}

func openStore(dir string, o Options) (*store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool %s: cannot create it: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	st := &store{dir: dir, lock: lock, log: o.Logger, maxBytes: o.MaxBytes, changed: make(chan struct{})}
	if err := st.openDB(); err != nil {
		var c corruptError
		if !errors.As(err, &c) {
			unlockDir(lock)
			return nil, err
		}
		aside := fmt.Sprintf("%s.corrupt-%s", dir, time.Now().UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(dir, aside); rerr != nil {
			unlockDir(lock)
			return nil, fmt.Errorf("%w; moving it aside failed: %v", err, rerr)
		}
		o.Logger.Error("event spool was corrupt: moved it aside and started EMPTY; the events in it are not delivered",
			"dir", dir, "moved_to", aside, "error", err)
		unlockDir(lock)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("spool %s: cannot create it: %w", dir, err)
		}
		if st.lock, err = lockDir(dir); err != nil {
			return nil, err
		}
		if err := st.openDB(); err != nil {
			unlockDir(st.lock)
			return nil, err
		}
	}
	return st, nil
}

type corruptError struct{ error }

func (c corruptError) Unwrap() error { return c.error }

// openDB opens Pebble in st.dir and rebuilds the in-memory index.
func (st *store) openDB() error {
	cache := pebble.NewCache(1 << 20)
	defer cache.Unref()
	db, err := pebble.Open(st.dir, &pebble.Options{Cache: cache, Logger: pebbleLogger{st}})
	if err != nil {
		if pebble.IsCorruptionError(err) {
			return corruptError{fmt.Errorf("spool %s is corrupt: %w", st.dir, err)}
		}
		return fmt.Errorf("spool %s: cannot open it: %w", st.dir, err)
	}
	st.db = db
	if err := st.load(); err != nil {
		db.Close()
		if pebble.IsCorruptionError(err) {
			return corruptError{fmt.Errorf("spool %s is corrupt: %w", st.dir, err)}
		}
		return fmt.Errorf("spool %s: %w", st.dir, err)
	}
	return nil
}

// load checks the format marker and indexes every record, deleting those
// that do not decode.
func (st *store) load() error {
	v, closer, err := st.db.Get(formatKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := st.db.Set(formatKey, []byte{formatV1}, pebble.Sync); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		ok := len(v) == 1 && v[0] == formatV1
		closer.Close()
		if !ok {
			return corruptError{fmt.Errorf("spool %s: unknown format %x (written by a newer mqttd?)", st.dir, v)}
		}
	}
	it, err := st.db.NewIter(&pebble.IterOptions{LowerBound: []byte{eventByte}, UpperBound: []byte{eventByte + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	var bad []uint64
	st.head, st.tail = 1, 1
	for ok := it.First(); ok; ok = it.Next() {
		seq, good := keySeq(it.Key())
		if !good {
			return corruptError{fmt.Errorf("spool %s: bad key %x", st.dir, it.Key())}
		}
		if st.records() == 0 {
			st.head, st.tail = seq, seq
		}
		for st.tail < seq { // a gap: deleted as corrupt earlier, or dropped
			st.sizes = append(st.sizes, 0)
			st.tail++
		}
		if _, _, err := decodeRecord(it.Value()); err != nil {
			bad = append(bad, seq)
			st.sizes = append(st.sizes, 0)
		} else {
			size := uint32(len(it.Key()) + len(it.Value()))
			st.sizes = append(st.sizes, size)
			st.bytes += int64(size)
		}
		st.tail++
	}
	if err := it.Error(); err != nil {
		return err
	}
	for _, seq := range bad {
		if err := st.db.Delete(eventKey(seq), pebble.NoSync); err != nil {
			return err
		}
	}
	if len(bad) > 0 {
		st.corrupt += uint64(len(bad))
		st.log.Error("event spool: records that did not decode were deleted; those events are lost",
			"dir", st.dir, "records", len(bad))
	}
	return st.loadTail()
}

// loadTail moves an empty spool's numbering past every number it handed out.
func (st *store) loadTail() error {
	v, closer, err := st.db.Get(tailKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	if len(v) != 8 {
		return corruptError{fmt.Errorf("spool %s: bad sequence marker %x", st.dir, v)}
	}
	if next := binary.BigEndian.Uint64(v); st.records() == 0 && next > st.tail {
		st.head, st.tail = next, next
	}
	return nil
}

const lockName = "spool.lock"

// lockDir takes an exclusive flock on dir/spool.lock, so that a second
// broker on the same directory is refused with an answer that names it.
func lockDir(dir string) (*os.File, error) {
	name := filepath.Join(dir, lockName)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool %s: cannot create its lock file: %w", dir, err)
	}
	if err := filelock.Lock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool %s is in use by another mqttd (its lock %s is held): stop that process or give this one another directory: %w", dir, name, err)
	}
	return f, nil
}

func unlockDir(f *os.File) {
	filelock.Unlock(f)
	f.Close()
}

// pebbleLogger sends Pebble's chatter to debug and its errors to error
// level. A fatal error (a failed log write) fails the spool instead of
// stopping the process: appends are refused from then on, and the pipeline
// counts those events as failed.
type pebbleLogger struct{ st *store }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.st.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.st.log.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	p.st.log.Error("event spool failed; plugin events are no longer spooled until restart", "dir", p.st.dir, "error", msg)
	p.st.failed.Store(true)
}

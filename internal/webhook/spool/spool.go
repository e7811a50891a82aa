// Package spool is the on-disk queue behind an HTTP plugin's durable
// events: an append-only log of encoded events on Pebble, read from its
// oldest record, released up to a sequence number once the plugin has
// taken them, and bounded in bytes (the oldest records are dropped and
// counted beyond it).
//
// Records are numbered by a sequence that only grows, so the order they
// were appended is the order they are read; every release (delivered or
// dropped) is from the oldest end. Appends and releases are not fsynced
// one by one: Sync makes everything before it durable, and a release lost
// in a crash only means those events are delivered again, which the
// plugin's de-duplication by event id absorbs.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
)

// ErrFailed is returned by appends after the store's log failed.
var ErrFailed = errors.New("spool: the store failed after a write error; restart mqttd")

// ErrClosed is returned by a closed handle.
var ErrClosed = errors.New("spool: closed")

// Entry is one event to append: its id and its encoded JSON object.
type Entry struct {
	ID   string
	JSON []byte
}

// Record is one spooled event.
type Record struct {
	Seq  uint64
	ID   string
	JSON []byte
}

// Stats is a snapshot of a spool's counters.
type Stats struct {
	Records  int    // events held
	Bytes    int64  // their keys and values
	Appended uint64 // events appended since Open
	Released uint64 // events released as delivered since Open
	Dropped  uint64 // oldest events dropped to stay within MaxBytes
	Corrupt  uint64 // records deleted at Open because they did not decode
}

// store is one directory's Pebble and its index, shared by its handles.
type store struct {
	dir  string
	db   *pebble.DB
	lock *os.File
	log  *slog.Logger

	failed atomic.Bool
	sync   sync.Mutex // one fsync at a time; the ones waiting share the next

	mu         sync.Mutex
	maxBytes   int64
	head, tail uint64   // records are [head, tail)
	sizes      []uint32 // sizes[i] is record head+i's key and value (0 for a gap)
	bytes      int64
	changed    chan struct{} // closed and replaced at every append
	handles    []*Spool      // open handles, oldest first
	appended   uint64
	released   uint64
	dropped    uint64
	corrupt    uint64
}

// Spool is one user's handle on a spool directory.
type Spool struct {
	st *store
	// gate is the tail when the last older handle closed (or at attach):
	// see Clear.
	gate   uint64
	closed bool
}

func (st *store) records() int { return int(st.tail - st.head) }

func (st *store) attach() *Spool {
	s := &Spool{st: st, gate: st.tail}
	st.handles = append(st.handles, s)
	return s
}

// Clear reports whether every record that was in the spool when this
// handle opened, or that an older handle of the same directory appended
// before it closed, has been released. Until then events of a client that
// may have records there must not overtake them.
func (s *Spool) Clear() bool {
	st := s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.handles[0] == s && st.head >= s.gate
}

// Head is the sequence number of the oldest record held (or the next one
// appended, when none is): a record of sequence q has been released once
// Head() > q.
func (s *Spool) Head() uint64 {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return s.st.head
}

// Changed returns a channel closed at the next append.
func (s *Spool) Changed() <-chan struct{} {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return s.st.changed
}

// Append adds es in order and returns the sequence number of the last one.
// It does not fsync (see Sync). Beyond MaxBytes the oldest records are
// dropped, the new ones too if they alone are larger; dropped says how
// many.
func (s *Spool) Append(es []Entry) (last uint64, dropped int, err error) {
	st := s.st
	if st.failed.Load() {
		return 0, 0, ErrFailed
	}
	b := st.db.NewBatch()
	defer b.Close()
	var val []byte
	sizes := make([]uint32, len(es))
	st.mu.Lock()
	defer st.mu.Unlock()
	if s.closed {
		return 0, 0, ErrClosed
	}
	for i, e := range es {
		val = appendRecord(val[:0], e.ID, e.JSON)
		if err := b.Set(eventKey(st.tail+uint64(i)), val, nil); err != nil {
			return 0, 0, err
		}
		sizes[i] = uint32(keyLen + len(val))
	}
	var tail [8]byte
	binary.BigEndian.PutUint64(tail[:], st.tail+uint64(len(es)))
	if err := b.Set(tailKey, tail[:], nil); err != nil {
		return 0, 0, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, 0, fmt.Errorf("spool %s: append: %w", st.dir, err)
	}
	for _, n := range sizes {
		st.sizes = append(st.sizes, n)
		st.bytes += int64(n)
	}
	st.tail += uint64(len(es))
	st.appended += uint64(len(es))
	close(st.changed)
	st.changed = make(chan struct{})
	dropped, err = st.trim()
	return st.tail - 1, dropped, err
}

// trim drops the oldest records until the spool is within maxBytes.
func (st *store) trim() (int, error) {
	over := st.bytes - st.maxBytes
	n := 0
	for over > 0 && n < st.records() {
		over -= int64(st.sizes[n])
		n++
	}
	if n == 0 {
		return 0, nil
	}
	st.dropped += uint64(n)
	return n, st.releaseLocked(st.head + uint64(n))
}

// releaseLocked deletes [head, upTo) and moves head there.
func (st *store) releaseLocked(upTo uint64) error {
	if upTo <= st.head {
		return nil
	}
	from := st.head
	n := int(min(upTo, st.tail) - st.head)
	for _, size := range st.sizes[:n] {
		st.bytes -= int64(size)
	}
	st.sizes = st.sizes[n:]
	if cap(st.sizes) > 1024 && len(st.sizes) < cap(st.sizes)/4 {
		st.sizes = append([]uint32(nil), st.sizes...) // give back what the released part held
	}
	st.head += uint64(n)
	if err := st.db.DeleteRange(eventKey(from), eventKey(st.head), pebble.NoSync); err != nil {
		return fmt.Errorf("spool %s: release: %w", st.dir, err)
	}
	return nil
}

// Peek returns the oldest records, at most maxN of them and, beyond the
// first, at most maxBytes of JSON once joined by commas. It does not
// release them.
func (s *Spool) Peek(maxN, maxBytes int) ([]Record, error) {
	st := s.st
	st.mu.Lock()
	head, tail, closed := st.head, st.tail, s.closed
	st.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if head == tail {
		return nil, nil
	}
	it, err := st.db.NewIter(&pebble.IterOptions{LowerBound: eventKey(head), UpperBound: eventKey(tail)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Record
	size := 0
	for ok := it.First(); ok && len(out) < maxN; ok = it.Next() {
		seq, _ := keySeq(it.Key())
		id, js, err := decodeRecord(it.Value())
		if err != nil { // written by this process and checked at Open: the disk changed under us
			return out, fmt.Errorf("spool %s: record %d: %w", st.dir, seq, err)
		}
		if len(out) > 0 && size+1+len(js) > maxBytes { // 1: the comma before it in a batch
			break
		}
		size += len(js) + min(len(out), 1)
		out = append(out, Record{Seq: seq, ID: string(id), JSON: append([]byte(nil), js...)})
	}
	return out, it.Error()
}

// Release gives up every record up to and including seq, delivered.
// Records already dropped or released are skipped.
func (s *Spool) Release(seq uint64) error {
	st := s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if seq < st.head {
		return nil
	}
	st.released += min(seq+1, st.tail) - st.head
	return st.releaseLocked(seq + 1)
}

// Sync makes every append and release before it durable. Callers waiting
// while one fsync runs share the next.
func (s *Spool) Sync() error {
	st := s.st
	if st.failed.Load() {
		return ErrFailed
	}
	st.sync.Lock()
	defer st.sync.Unlock()
	if err := st.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("spool %s: sync: %w", st.dir, err)
	}
	return nil
}

// Stats returns the spool's counters.
func (s *Spool) Stats() Stats {
	st := s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	return Stats{Records: st.records(), Bytes: st.bytes, Appended: st.appended, Released: st.released,
		Dropped: st.dropped, Corrupt: st.corrupt}
}

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.st.dir }

// Close releases the handle; the last one fsyncs and closes the store.
// Handles opened after this one stop waiting for it (see Clear).
func (s *Spool) Close() error {
	openMu.Lock()
	defer openMu.Unlock()
	st := s.st
	st.mu.Lock()
	if s.closed {
		st.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	for i, h := range st.handles {
		if h == s {
			st.handles = append(st.handles[:i], st.handles[i+1:]...)
			break
		}
	}
	for _, h := range st.handles {
		h.gate = max(h.gate, st.tail)
	}
	last := len(st.handles) == 0
	st.mu.Unlock()
	if !last {
		return nil
	}
	delete(opened, st.dir)
	var err error
	if !st.failed.Load() {
		err = st.db.LogData(nil, pebble.Sync)
	}
	if cerr := st.db.Close(); err == nil {
		err = cerr
	}
	unlockDir(st.lock)
	if err != nil {
		return fmt.Errorf("spool %s: close: %w", st.dir, err)
	}
	return nil
}

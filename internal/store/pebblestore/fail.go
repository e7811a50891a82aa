package pebblestore

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/mqttd/mqttd/internal/store"
)

// ErrFailed wraps every commit error after a write to the store has
// failed; it wraps store.ErrUnavailable.
var ErrFailed error = failedError{}

type failedError struct{}

func (failedError) Error() string { return "store failed after a write error" }
func (failedError) Unwrap() error { return store.ErrUnavailable }

// errWedged: Pebble itself stopped (see wedge); only a restart recovers.
var errWedged = errors.New("pebble stopped")

// Pebble cannot resume a log after a failed write (a full disk, an I/O
// error): its log writer keeps the error, and a later commit through it
// stops the process. So the first write error fails the store: commits
// are refused from then on, without calling Pebble, and Close skips the
// final fsync. The recovery probe (recover.go) keeps reads going and
// reopens the store once the disk takes writes again; a restart does the
// same. Either recovers the last durable state, which holds every commit
// that was acknowledged; a failed batch may be visible to reads until
// then, and may be found again after it, but it was never acknowledged.

// fail records err as the store's failure, once per outage, logs it and
// starts the recovery probe.
func (s *Store) fail(err error) error {
	s.fmu.Lock()
	first := s.failed == nil
	if first {
		s.failed = fmt.Errorf("%w: store %s: %v; refusing writes until the disk takes writes again (retried every %s; check free space and the disk)",
			ErrFailed, s.dir, err, s.opts.RetryInterval)
		s.failedAt = time.Now()
	}
	failed := s.failed
	s.fmu.Unlock()
	if first {
		s.opts.Logger.Error("store: write failed; QoS 1/2 messages for persistent sessions are refused until it recovers",
			"dir", s.dir, "error", err, "retry_interval", s.opts.RetryInterval)
		if m := s.opts.Metrics; m != nil {
			m.failedOnce()
		}
		s.startRecovery()
	}
	return failed
}

func (s *Store) failure() error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return s.failed
}

// Healthy reports whether the store accepts writes: false from a write
// error until the recovery probe has reopened it.
func (s *Store) Healthy() bool { return s.failure() == nil }

// syncLog fsyncs the log without Pebble's fatal path: an empty batch
// applied without waiting, then waited for, returns the error instead.
// It is applied under the commit mutex, after the failure check, like
// every write to Pebble (see guardFS).
func (s *Store) syncLog() error {
	s.mu.Lock()
	if err := s.failure(); err != nil {
		s.mu.Unlock()
		return err
	}
	b, err := s.applySyncMarker()
	if err == nil {
		s.rec.pending.Add(1)
		defer s.rec.pending.Done()
	}
	s.mu.Unlock()
	return s.waitSyncMarker(b, err)
}

// syncLogLocked is syncLog for a caller holding the commit mutex.
func (s *Store) syncLogLocked() error {
	b, err := s.applySyncMarker()
	return s.waitSyncMarker(b, err)
}

// waitSyncMarker waits for the marker applySyncMarker returned (with its
// error) to be fsynced; any error fails the store.
func (s *Store) waitSyncMarker(b *pebble.Batch, err error) error {
	if err != nil {
		return s.fail(err)
	}
	defer b.Close()
	if err := b.SyncWait(); err != nil {
		return s.fail(err)
	}
	return nil
}

func (s *Store) applySyncMarker() (*pebble.Batch, error) {
	b := s.db.NewBatch()
	if err := b.LogData(nil, nil); err != nil {
		b.Close()
		return nil, err
	}
	if err := s.pebbleApply(func() error { return s.db.ApplyNoSyncWait(b, pebble.Sync) }); err != nil {
		if !errors.Is(err, errWedged) {
			b.Close()
		}
		return nil, err
	}
	return b, nil
}

// pebbleApply runs apply, a commit into Pebble, under the commit mutex.
// The failure check before it keeps commits away from a log that failed,
// but one thing it cannot: a write error in the commit's own switch to a
// new log (creating it, closing the old one) makes Pebble panic, with its
// commit pipeline locked. That panic wedges the store instead of stopping
// the process.
func (s *Store) pebbleApply(apply func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.wedge(r)
		}
	}()
	return apply()
}

// wedge takes a Pebble that panicked in a commit out of use: its locks
// are held for good, so any further call (a write, a read, its metrics,
// Close) could block forever. Writes and reads of the store are refused
// from now on, Close leaves it be, and the recovery probe stops: the
// process holds its files until it exits, and only a restart, which
// replays the log, brings the store back. The rest of the broker keeps
// serving. Caller holds s.mu.
func (s *Store) wedge(r any) error {
	err := fmt.Errorf("%w: %w: store %s: a write error stopped Pebble (%v); restart mqttd (check free space and the disk)", ErrFailed, errWedged, s.dir, r)
	s.fmu.Lock()
	first := s.failed == nil
	s.failed = err
	if first {
		s.failedAt = time.Now()
	}
	s.fmu.Unlock()
	if first {
		if m := s.opts.Metrics; m != nil {
			m.failedOnce()
		}
	}
	s.rmu.Lock()
	s.rclosed, s.db = true, nil
	s.rmu.Unlock()
	s.opts.Logger.Error("store: Pebble stopped after a write error; writes and reads of the store are refused until mqttd is restarted, the rest keeps serving",
		"dir", s.dir, "error", r)
	return err
}

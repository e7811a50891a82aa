package pebblestore

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"
)

// ErrFailed wraps every commit error after a write to the log has failed.
var ErrFailed = errors.New("store failed after a write error")

// Pebble cannot resume a log after a failed write (a full disk, an I/O
// error): the writer is dead and a later synchronous write stops the
// process. So the first write error fails the store: commits are refused
// from then on, without calling Pebble, reads go on, and Close skips the
// final fsync. Restarting (reopening) recovers the last durable state,
// which holds every commit that was acknowledged; a failed batch may be
// visible to reads until then, but it was never acknowledged.

// fail records err as the store's failure, once, and logs it.
func (s *Store) fail(err error) error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.failed == nil {
		s.failed = fmt.Errorf("%w: store %s: %v; refusing writes until mqttd is restarted (check free space and the disk)", ErrFailed, s.dir, err)
		s.opts.Logger.Error("store: write failed; QoS 1/2 messages for persistent sessions are refused until restart", "dir", s.dir, "error", err)
	}
	return s.failed
}

func (s *Store) failure() error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return s.failed
}

// syncLog fsyncs the log without Pebble's fatal path: an empty batch
// applied without waiting, then waited for, returns the error instead.
func (s *Store) syncLog() error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.LogData(nil, nil); err != nil {
		return err
	}
	if err := s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		return err
	}
	return b.SyncWait()
}

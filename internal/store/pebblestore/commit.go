package pebblestore

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/mqttd/mqttd/internal/store"
)

// Commit applies b and waits until it is durable.
func (s *Store) Commit(ctx context.Context, b *store.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	pb, err := s.apply(b, nil)
	if err != nil {
		s.opts.Metrics.refused()
		return err
	}
	return s.waitCounted(pb, start)
}

// CommitAsync applies b and calls done, in commit order, once durable.
func (s *Store) CommitAsync(b *store.Batch, done func(error)) {
	// Queued under the commit mutex, so callbacks follow commit order and
	// Close (which takes the mutex first) drains every applied batch.
	start := time.Now()
	_, err := s.apply(b, func(pb *pebble.Batch) {
		s.notify.Push(func() error { return s.waitCounted(pb, start) }, done)
	})
	if err != nil {
		s.opts.Metrics.refused()
		s.notify.Push(nil, func(error) { done(err) })
	}
}

// waitCounted is wait, counted in the metrics when a batch was written.
func (s *Store) waitCounted(pb *pebble.Batch, start time.Time) error {
	if pb == nil {
		return nil
	}
	err := s.wait(pb)
	s.opts.Metrics.committed(start, err)
	return err
}

// wait returns once pb is as durable as the store's mode says; pb may be
// nil (nothing was written).
func (s *Store) wait(pb *pebble.Batch) error {
	if pb == nil {
		return nil
	}
	defer s.rec.pending.Done() // see recover.go
	var err error
	if s.opts.Durability == store.Sync {
		err = pb.SyncWait()
	}
	pb.Close()
	if err != nil {
		return s.fail(err)
	}
	return nil
}

// apply turns b into one Pebble batch and applies it to the memtable
// under s.mu (see the package doc); the fsync is left to wait. applied, if
// set, runs under s.mu after a successful apply.
func (s *Store) apply(b *store.Batch, applied func(*pebble.Batch)) (*pebble.Batch, error) {
	if b.Len() == 0 {
		if applied != nil {
			applied(nil)
		}
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	if err := s.failure(); err != nil {
		return nil, err
	}
	pb := s.db.NewBatch()
	w := writer{s: s, pb: pb, ops: b.Ops}
	w.scratch = s.scratch
	defer w.keep()
	if err := w.run(); err != nil {
		pb.Close()
		w.undo()
		return nil, fmt.Errorf("store %s: %w", s.dir, err)
	}
	err := s.pebbleApply(func() error { // see fail.go
		if s.opts.Durability == store.Sync {
			return s.db.ApplyNoSyncWait(pb, pebble.Sync)
		}
		s.dirty = true
		return s.db.Apply(pb, pebble.NoSync)
	})
	if err == nil {
		err = s.failure() // Pebble's fatal path ran (see pebbleLogger)
	}
	if err != nil {
		w.undo()
		// Not closed: after a failed log write Pebble may still hold it.
		return nil, s.fail(err)
	}
	s.rec.pending.Add(1) // until wait
	w.applied()
	s.keys.Add(uint64(pb.Count()))
	if applied != nil {
		applied(pb)
	}
	return pb, nil
}

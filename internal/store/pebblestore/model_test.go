package pebblestore

import (
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/storetest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestModel: random batches against Pebble and the in-memory model, with
// restarts (Close, Open) in between, full state compared after each step.
// Durability None: what is compared is the data, not the fsync; the kill
// test covers the fsync. Bounded in time for a loaded machine.
func TestModel(t *testing.T) {
	// The model checks read the store after every step: with the reads
	// noted, every acknowledgement would be a point deletion.
	defer func(q time.Duration) { readQuiet = q }(readQuiet)
	readQuiet = 0
	cfg := storetest.Config{Seeds: 200, Ops: 200, Budget: 30 * time.Second, MinSeeds: 2,
		Check: func(s store.Store) error { _, err := s.(*Store).Verify(); return err }}
	if testing.Short() {
		cfg.Seeds, cfg.Budget = 20, 20*time.Second
	}
	storetest.Run(t, cfg, func(t *testing.T, seed int) storetest.Opener {
		dir := filepath.Join(t.TempDir(), strconv.Itoa(seed))
		return func() (store.Store, error) {
			return Open(dir, Options{Durability: store.None, Logger: quiet()})
		}
	})
}

// TestModelSmallIndex is TestModel with an in-memory index that is dropped
// after nearly every commit, so acknowledgements and deletions also take
// the paths that read entries and counts back from Pebble.
func TestModelSmallIndex(t *testing.T) {
	defer func(b int, q time.Duration) { indexBudget, readQuiet = b, q }(indexBudget, readQuiet)
	indexBudget, readQuiet = 3, 0
	cfg := storetest.Config{Seeds: 100, Ops: 200, Budget: 15 * time.Second, MinSeeds: 2,
		Check: func(s store.Store) error { _, err := s.(*Store).Verify(); return err }}
	storetest.Run(t, cfg, func(t *testing.T, seed int) storetest.Opener {
		dir := filepath.Join(t.TempDir(), strconv.Itoa(seed))
		return func() (store.Store, error) {
			return Open(dir, Options{Durability: store.None, Logger: quiet()})
		}
	})
}

// TestModelPointDeletes is TestModel with every acknowledgement deleted
// point by point, as while the store is being read (see noteRead).
func TestModelPointDeletes(t *testing.T) {
	defer func(q time.Duration) { readQuiet = q }(readQuiet)
	readQuiet = time.Hour
	cfg := storetest.Config{Seeds: 50, Ops: 200, Budget: 10 * time.Second, MinSeeds: 2,
		Check: func(s store.Store) error { _, err := s.(*Store).Verify(); return err }}
	storetest.Run(t, cfg, func(t *testing.T, seed int) storetest.Opener {
		dir := filepath.Join(t.TempDir(), strconv.Itoa(seed))
		return func() (store.Store, error) {
			return Open(dir, Options{Durability: store.None, Logger: quiet()})
		}
	})
}

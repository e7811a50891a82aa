package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/memstore"
)

// Config bounds a model run.
type Config struct {
	Seeds, Ops int           // seeds to run, and operations per seed (committed in batches of 1 to 3)
	Budget     time.Duration // stop starting seeds after this long (logged)
	MinSeeds   int           // fail if fewer seeds ran within the budget
	// Check, if set, runs on the store under test after every step: an
	// implementation's own consistency check.
	Check func(store.Store) error
}

// Opener opens the store under test for one seed; called again after
// Close it must reopen the same data (a restart).
type Opener func() (store.Store, error)

// Run applies each seed's random batches to a fresh store from newOpener
// and to the model, restarting the store now and then, and compares their
// full state after every step.
func Run(t *testing.T, cfg Config, newOpener func(t *testing.T, seed int) Opener) {
	start := time.Now()
	ran := 0
	for seed := 0; seed < cfg.Seeds; seed++ {
		if time.Since(start) > cfg.Budget {
			break
		}
		runSeed(t, seed, cfg, newOpener(t, seed))
		if t.Failed() {
			return
		}
		ran++
	}
	t.Logf("%d seeds x %d ops in %v", ran, cfg.Ops, time.Since(start).Round(time.Millisecond))
	if ran < cfg.MinSeeds {
		t.Fatalf("only %d seeds ran in the %v budget, want at least %d", ran, cfg.Budget, cfg.MinSeeds)
	}
}

func runSeed(t *testing.T, seed int, cfg Config, open Opener) {
	g := &gen{r: rand.New(rand.NewPCG(uint64(seed), 42)), seq: map[string][]uint64{}}
	model := memstore.New()
	defer model.Close()
	real, err := open()
	if err != nil {
		t.Fatalf("seed %d: open: %v", seed, err)
	}
	defer func() { real.Close() }()
	var log []string
	for step := 0; step < cfg.Ops; {
		if g.r.IntN(25) == 0 {
			if err := real.Close(); err != nil {
				t.Fatalf("seed %d step %d: close: %v", seed, step, err)
			}
			if real, err = open(); err != nil {
				t.Fatalf("seed %d step %d: reopen: %v", seed, step, err)
			}
			log = append(log, "restart")
		}
		n := 1 + g.r.IntN(3)
		var mb, rb store.Batch
		var mds, rds [][]store.Delivery
		for range n {
			f, desc := g.op()
			mds = append(mds, f(&mb))
			rds = append(rds, f(&rb))
			log = append(log, desc)
			step++
		}
		async := g.r.IntN(2) == 0
		if err := commit(model, &mb, false); err != nil {
			t.Fatalf("seed %d: model commit: %v", seed, err)
		}
		if err := commit(real, &rb, async); err != nil {
			t.Fatalf("seed %d step %d: commit: %v", seed, step, err)
		}
		if !reflect.DeepEqual(mds, rds) {
			t.Fatalf("seed %d step %d: sequence numbers differ:\nmodel %+v\nstore %+v\nops %q", seed, step, mds, rds, log)
		}
		for _, ds := range mds {
			for _, d := range ds {
				g.seq[d.ClientID] = append(g.seq[d.ClientID], d.Seq)
			}
		}
		if diff := compare(model, real, g.r); diff != "" {
			t.Fatalf("seed %d step %d: %s\nops: %q", seed, step, diff, log)
		}
		if cfg.Check != nil {
			if err := cfg.Check(real); err != nil {
				t.Fatalf("seed %d step %d: check: %v\nops: %q", seed, step, err, log)
			}
		}
	}
}

func commit(s store.Store, b *store.Batch, async bool) error {
	if !async {
		return s.Commit(context.Background(), b)
	}
	ch := make(chan error, 1)
	s.CommitAsync(b, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-time.After(time.Minute):
		return fmt.Errorf("CommitAsync never called back")
	}
}

package jsstore

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/storetest"
)

// TestModel: random batches against the stream and the in-memory model,
// full state compared after each step. Each seed has its own prefix (its
// own stream) on one server; a "restart" opens a new Store on a new
// connection, with nothing in memory, as a second process would.
func TestModel(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	// A seed is slow here (each step reads the whole state back over
	// NATS, a few hundred round trips), so on a loaded machine one seed
	// may be all the budget allows.
	cfg := storetest.Config{Seeds: 100, Ops: 150, Budget: 20 * time.Second, MinSeeds: 1}
	if testing.Short() {
		cfg.Seeds, cfg.Budget = 10, 15*time.Second
	}
	m := NewMetrics()
	storetest.Run(t, cfg, func(t *testing.T, seed int) storetest.Opener {
		prefix := "m" + strconv.Itoa(seed)
		// The cache of body records: the default, one small enough to
		// evict all the time, or none, by turns.
		cache := []int64{0, 2048, -1}[seed%3]
		return func() (store.Store, error) {
			nc := connect(t, ns.ClientURL())
			// The bodies are reclaimed all the time, and a session's
			// queue rewritten once its oldest chunk is 20ms old, under
			// the model's reads and writes.
			return Open(context.Background(), nc, Options{Prefix: prefix, Logger: quiet(),
				ReclaimInterval: 2 * time.Millisecond, LaggardAge: 20 * time.Millisecond, BodyCacheBytes: cache, Metrics: m})
		}
	})
	t.Logf("%v queues rewritten, %v reclaim failures, %v conflicts; body cache %v hits, %v misses, %v evictions", counter(m.laggards), counter(m.reclaim), counter(m.conflicts),
		counter(m.bodyHits), counter(m.bodyMisses), counter(m.bodyEvictions))
}

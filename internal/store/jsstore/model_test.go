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
	storetest.Run(t, cfg, func(t *testing.T, seed int) storetest.Opener {
		prefix := "m" + strconv.Itoa(seed)
		return func() (store.Store, error) {
			nc := connect(t, ns.ClientURL())
			return Open(context.Background(), nc, Options{Prefix: prefix, Logger: quiet()})
		}
	})
}

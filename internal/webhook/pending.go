package webhook

import (
	"sync"
	"sync/atomic"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// pending holds a plugin's events until its manifest says which it wants,
// when the config does not name them: sending them as they come would
// hand the plugin event types it never asked for. The held events are
// owned copies, at most queue.size of them (the oldest dropped and
// counted beyond), and are filtered through the manifest's list and
// queued, in order, once it answers (or the plugin has none: 404).
type pending struct {
	on atomic.Bool // holding; read first by every event

	mu       sync.Mutex
	events   []*hooks.Event
	limit    int
	overflow atomic.Uint64 // events dropped for the bound
	shutdown atomic.Uint64 // events still held at Close
}

// hold keeps e if the plugin is still waiting for its manifest; false
// means the caller pushes e as usual.
func (q *pending) hold(e *hooks.Event) bool {
	if !q.on.Load() {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.on.Load() {
		return false
	}
	if len(q.events) >= q.limit {
		q.events[0] = nil
		q.events = q.events[1:]
		q.overflow.Add(1)
	}
	q.events = append(q.events, e.Clone())
	return true
}

// release stops holding and pushes the held events of the types in mask,
// in order, with push. Events that arrive meanwhile wait on the lock, so
// none overtakes a held one.
func (q *pending) release(mask mqtt.EventMask, push func(*hooks.Event)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.on.Load() {
		return
	}
	for _, e := range q.events {
		if mask.Has(e.Type) {
			push(e)
		}
	}
	q.events = nil
	q.on.Store(false)
}

// drop stops holding at Close, counting what was never released.
func (q *pending) drop() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.events)
	q.shutdown.Add(uint64(n))
	q.events = nil
	q.on.Store(false)
	return n
}

// held is the number of events held.
func (q *pending) held() int {
	if !q.on.Load() {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events)
}

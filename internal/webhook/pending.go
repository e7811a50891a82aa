package webhook

import (
	"sync"
	"sync/atomic"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook/batch"
)

// pending holds a plugin's events until its manifest says which it wants,
// when the config does not name them: sending them as they come would
// hand the plugin event types it never asked for. The held events are
// owned copies, at most queue.size of them (the oldest dropped and
// counted beyond), and are filtered through the manifest's list and
// queued, in order, once it answers (or the plugin has none: 404).
//
// With durable events they are spilled to the spool instead of being
// dropped: when the bound is reached, when an attempt at the manifest
// fails (the plugin is down), and at Close. From then on nothing is held:
// every event goes to the pipeline, which spools it, and the spool waits
// for the manifest and is filtered through it (the plugin's Gate and
// Keep).
type pending struct {
	on    atomic.Bool     // holding; read first by every event
	spool *batch.Pipeline // durable plugins only: where spill sends held events

	mu       sync.Mutex
	events   []*hooks.Event
	limit    int
	overflow atomic.Uint64 // events dropped for the bound
	shutdown atomic.Uint64 // events still held at Close
	spilled  atomic.Uint64 // events moved to the spool (durable)
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
		if q.spillLocked() {
			q.spool.Push(e) // after the held ones
			return true
		}
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

// spill stops holding and moves the held events, in order, into the
// spool, when there is one; it reports whether it did.
func (q *pending) spill() bool {
	if q.spool == nil || !q.on.Load() {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.spillLocked()
}

func (q *pending) spillLocked() bool {
	if q.spool == nil || !q.on.Load() {
		return false
	}
	q.spool.SpoolAll() // the lanes spool the held events and all that follow
	for _, e := range q.events {
		q.spool.Push(e)
	}
	q.spilled.Add(uint64(len(q.events)))
	q.events = nil
	q.on.Store(false)
	return true
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

package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// retainedSync keeps the retained messages of every node in one bucket, one
// entry per topic: a publish with RETAIN is stored there before the
// publisher is acknowledged, and every node watches the bucket and applies
// each change to its own retained tree. A cleared topic is an entry with an
// empty payload, so that storing it yields a revision like any other.
//
// Revisions order the changes: a node applies an entry only when it is
// newer than the last it applied for that topic, whether it came from its
// own store or from the watch, so every node ends with the bucket's last
// value whatever order the two arrive in.
type retainedSync struct {
	n  *Node
	kv jetstream.KeyValue

	wmu  sync.Mutex // serialises (re)starting the watch
	w    jetstream.KeyWatcher
	done chan struct{} // closed when w's follower returns

	mu       sync.Mutex
	revs     map[string]uint64 // key -> revision applied
	applied  uint64            // highest revision the watch delivered
	advanced chan struct{}     // closed and replaced when applied grows
}

// start loads the bucket into the broker and follows it.
func (r *retainedSync) start(ctx context.Context) error {
	loaded, err := r.watch()
	if err != nil {
		return err
	}
	select {
	case <-loaded:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// watch (re)starts following the bucket: its current entries first, then
// every change. Entries already applied are skipped by their revision.
func (r *retainedSync) watch() (loaded chan struct{}, err error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.w != nil {
		r.w.Stop()
		<-r.done
		r.w = nil
	}
	if r.n.ctx.Err() != nil {
		return nil, r.n.ctx.Err()
	}
	w, err := r.kv.WatchAll(r.n.ctx)
	if err != nil {
		return nil, err
	}
	r.w, r.done = w, make(chan struct{})
	loaded = make(chan struct{})
	go r.follow(w, r.done, loaded)
	return loaded, nil
}

// rewatch follows the bucket afresh after NATS came back: the watch's
// consumer may not have survived a restarted server. A bucket that is
// behind what this node applied was recreated: its revisions start over.
func (r *retainedSync) rewatch() {
	ctx, cancel := context.WithTimeout(r.n.ctx, opTimeout)
	defer cancel()
	if st, err := r.kv.Status(ctx); err == nil {
		if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
			r.mu.Lock()
			if bs.StreamInfo().State.LastSeq < r.applied {
				r.revs, r.applied = make(map[string]uint64), 0
			}
			r.mu.Unlock()
		}
	}
	if _, err := r.watch(); err != nil && r.n.ctx.Err() == nil {
		r.n.log.Warn("cluster: cannot follow the retained messages of other nodes", "err", err)
	}
}

// resync applies the whole bucket again, over whatever the broker holds:
// what it recovered from its own store may be older than the cluster's.
func (r *retainedSync) resync(ctx context.Context) error {
	r.mu.Lock()
	r.revs, r.applied = make(map[string]uint64), 0
	r.mu.Unlock()
	return r.start(ctx)
}

func (r *retainedSync) stop() {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.w != nil {
		r.w.Stop()
		<-r.done
		r.w = nil
	}
}

func (r *retainedSync) follow(w jetstream.KeyWatcher, done, loaded chan struct{}) {
	defer close(done)
	first := true
	for e := range w.Updates() {
		if e == nil { // the bucket's contents are in
			if first {
				close(loaded)
				first = false
			}
			continue
		}
		r.applyEntry(e)
	}
}

func (r *retainedSync) applyEntry(e jetstream.KeyValueEntry) {
	var m *mqtt.Message
	if e.Operation() == jetstream.KeyValuePut {
		var err error
		if m, err = decodeEnvelope(e.Value()); err != nil {
			r.n.stats.RemoteBad.Add(1)
			r.n.log.Warn("cluster: malformed retained message in the bucket", "key", e.Key(), "err", err)
		}
	}
	topic := ""
	if m != nil {
		topic = m.Topic
	} else if t, err := decodeTopic(e.Key()); err == nil {
		topic = t
	}
	r.mu.Lock()
	if topic != "" {
		r.applyLocked(e.Key(), topic, m, e.Revision())
	}
	if e.Revision() > r.applied {
		r.applied = e.Revision()
		close(r.advanced)
		r.advanced = make(chan struct{})
	}
	r.mu.Unlock()
}

// applyLocked sets topic's retained message when rev is newer than what
// this node has. A message with no payload clears it. Caller holds r.mu.
func (r *retainedSync) applyLocked(key, topic string, m *mqtt.Message, rev uint64) {
	if rev <= r.revs[key] {
		return
	}
	r.revs[key] = rev
	b := r.n.broker.Load()
	if b == nil {
		return
	}
	if m != nil && len(m.Payload) == 0 {
		m = nil
	}
	b.ApplyRetained(topic, m)
}

// store writes a retained message (or its clearing) to the bucket and
// applies it here, before the publisher is acknowledged. An error is
// counted and logged; the broker refuses the publish.
func (r *retainedSync) store(topic string, payload []byte, qos byte, from string, created time.Time, props *packets.Properties) error {
	n := r.n
	fail := func(err error) error {
		n.stats.RetainFailed.Add(1)
		n.warnRetain.warn(n.log, "cluster: retained message not stored for the other nodes; refused", "topic", topic, "err", err)
		return err
	}
	if !n.nc.IsConnected() {
		return fail(errDisconnected)
	}
	val, err := appendEnvelope(nil, topic, payload, qos, true, from, created, props)
	if err != nil {
		return fail(err)
	}
	key := topicKey(topic)
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	rev, err := r.kv.Put(ctx, key, val)
	cancel()
	if err != nil {
		return fail(err)
	}
	var m *mqtt.Message
	if len(payload) > 0 {
		m, _ = decodeEnvelope(val) // an owned copy
	}
	r.mu.Lock()
	r.applyLocked(key, topic, m, rev)
	r.mu.Unlock()
	return nil
}

// catchUp waits, for a short while, until the watch has applied every
// change the bucket held when it was called, so a client subscribing right
// after another node acknowledged a retained message gets it.
func (r *retainedSync) catchUp() {
	n := r.n
	if !n.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	st, err := r.kv.Status(ctx)
	if err != nil {
		n.log.Warn("cluster: retained messages may lag behind other nodes", "err", err)
		return
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return
	}
	last := bs.StreamInfo().State.LastSeq
	for {
		r.mu.Lock()
		applied, ch := r.applied, r.advanced
		r.mu.Unlock()
		if applied >= last {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			n.log.Warn("cluster: retained messages lag behind other nodes", "applied", applied, "stored", last)
			return
		}
	}
}

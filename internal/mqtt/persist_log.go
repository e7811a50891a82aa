// The store writes nothing waits for (session records, in-flight packet
// ids, acknowledged deliveries) are gathered into one pending batch and
// committed together: by the next PUBLISH batch, which carries them ahead
// of its own writes, or by the flusher. One commit then holds many of them,
// where one commit each would cost a store batch per packet. Every write
// reaches the store in the order it was made, PUBLISH batches included.
//
// One kind of write is held back instead: the record that a stored QoS 1/2
// delivery went out with a packet id. Most are cleared by the subscriber's
// acknowledgement within milliseconds; held for sentDelay (to 2×sentDelay)
// first, such a record and its clearing are never written at all, where
// writing both cost two of the keys a stored delivery writes. The record
// only lets a session resumed after a crash resend with the same packet id
// ([MQTT-4.4.0-1]); a crash inside the delay resends with a new one, a
// duplicate QoS 1/2 allows. A graceful stop writes every held record.

package mqtt

import (
	"sync"
	"time"

	"github.com/mqttd/mqttd/internal/store"
)

// sentDelay is how long a sent-delivery record is held before it is
// written (see above): longer than a subscriber's usual acknowledgement
// round trip under load, short against a restart.
const sentDelay = 50 * time.Millisecond

type storeLog struct {
	mu      sync.Mutex
	pending store.Batch
	// sent holds the in-flight records not written yet, in two
	// generations: young ones move to old at a tick, old ones are written
	// at the next. A record here is not in the store (the flow before it
	// on the same packet id was cleared first), so its clearing need not
	// be written either.
	sent    [2]map[sentKey]store.InflightRecord // [0] young, [1] old
	stopped bool                                // the flusher has stopped: commit at once
	kick    chan struct{}                       // wakes the flusher
	stop    chan struct{}
	done    chan struct{}
}

// startStoreLog starts the flusher.
func (b *Broker) startStoreLog() {
	l := &b.wlog
	l.kick = make(chan struct{}, 1)
	l.stop = make(chan struct{})
	l.done = make(chan struct{})
	l.sent = [2]map[sentKey]store.InflightRecord{{}, {}}
	go b.flushStoreLog()
}

// stopStoreLog commits what is pending and stops the flusher; later
// writes are committed one by one.
func (b *Broker) stopStoreLog() {
	l := &b.wlog
	if l.stop == nil {
		return
	}
	close(l.stop)
	<-l.done
}

func (b *Broker) flushStoreLog() {
	l := &b.wlog
	defer close(l.done)
	tick := time.NewTicker(sentDelay)
	defer tick.Stop()
	for {
		select {
		case <-l.kick:
			l.mu.Lock()
			b.commitPendingLocked()
			l.mu.Unlock()
		case <-tick.C:
			l.mu.Lock()
			l.ageSent()
			b.commitPendingLocked()
			l.mu.Unlock()
		case <-l.stop:
			l.mu.Lock()
			l.ageSent()
			l.ageSent()
			b.commitPendingLocked()
			l.stopped = true
			l.mu.Unlock()
			return
		}
	}
}

// commitPendingLocked commits the pending writes. Caller holds wlog.mu.
func (b *Broker) commitPendingLocked() {
	l := &b.wlog
	if l.pending.Len() == 0 {
		return
	}
	bt := &store.Batch{Ops: l.takePending()}
	b.disk.CommitAsync(bt, func(err error) {
		if err != nil {
			b.storeFailed(err, "write", "")
		}
		putOps(bt.Ops)
	})
}

// takePending hands over the pending writes, leaving an empty batch with
// room (a batch grown op by op from nothing was a sixth of the CPU of a
// stored delivery). Caller holds l.mu.
func (l *storeLog) takePending() []store.Op {
	ops := l.pending.Ops
	l.pending.Ops = getOps()
	return ops
}

// opsFree recycles the operation slices of committed batches: a free
// list rather than a sync.Pool, which every garbage collection empties
// (and this path allocates enough to collect often).
var opsFree struct {
	mu    sync.Mutex
	lists [][]store.Op
}

// maxFreeOps bounds the free list, and opsKept the size of a slice kept.
const (
	maxFreeOps = 64
	opsKept    = 1 << 14
)

func getOps() []store.Op {
	opsFree.mu.Lock()
	defer opsFree.mu.Unlock()
	n := len(opsFree.lists)
	if n == 0 {
		return make([]store.Op, 0, 64)
	}
	ops := opsFree.lists[n-1]
	opsFree.lists[n-1] = nil
	opsFree.lists = opsFree.lists[:n-1]
	return ops
}

// putOps recycles ops once the store is done with them, dropping their
// references to records.
func putOps(ops []store.Op) {
	if cap(ops) == 0 || cap(ops) > opsKept {
		return
	}
	clear(ops)
	opsFree.mu.Lock()
	if len(opsFree.lists) < maxFreeOps {
		opsFree.lists = append(opsFree.lists, ops[:0])
	}
	opsFree.mu.Unlock()
}

// sentKey names an outbound packet id of a session.
type sentKey struct {
	id  string
	pid uint16
}

// ageSent writes the old generation of held in-flight records and makes
// the young one old. Caller holds l.mu.
func (l *storeLog) ageSent() {
	old := l.sent[1]
	for k, r := range old {
		l.pending.SetInflight(k.id, r)
	}
	clear(old)
	l.sent[0], l.sent[1] = old, l.sent[0]
}

// holding reports whether in-flight records are being held (not once the
// flusher has stopped). Caller holds l.mu.
func (l *storeLog) holding() bool {
	return !l.stopped && l.sent[0] != nil
}

// takeSent forgets a held record of packet id pid, reporting whether
// there was one. Caller holds l.mu.
func (l *storeLog) takeSent(id string, pid uint16) bool {
	if l.sent[0] == nil {
		return false
	}
	k := sentKey{id, pid}
	for _, m := range l.sent {
		if _, ok := m[k]; ok {
			delete(m, k)
			return true
		}
	}
	return false
}

// dropSent forgets every held record of a session being deleted. Caller
// holds l.mu.
func (l *storeLog) dropSent(id string) {
	for _, m := range l.sent {
		for k := range m {
			if k.id == id {
				delete(m, k)
			}
		}
	}
}

// writeSent records that a stored delivery went out with packet id
// r.PacketID: held (see above) while the flusher runs, written otherwise.
func (b *Broker) writeSent(id string, r store.InflightRecord) {
	l := &b.wlog
	l.mu.Lock()
	if l.holding() {
		delete(l.sent[1], sentKey{id, r.PacketID})
		l.sent[0][sentKey{id, r.PacketID}] = r
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	b.write(func(bt *store.Batch) { bt.SetInflight(id, r) })
}

// write records writes nothing waits for: fn adds them to the pending
// batch. A packet id cleared (ClearInflight) whose record is still held
// is forgotten instead of written, and a record set again (SetInflight)
// replaces a held one; a deleted session's held records are dropped.
func (b *Broker) write(fn func(*store.Batch)) {
	l := &b.wlog
	l.mu.Lock()
	n := len(l.pending.Ops)
	fn(&l.pending)
	if l.sent[0] != nil {
		l.settleSent(n)
	}
	if l.stopped || l.kick == nil {
		b.commitPendingLocked()
	} else {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	l.mu.Unlock()
}

// settleSent reconciles the operations added to the pending batch from
// index n on with the held in-flight records. Caller holds l.mu.
func (l *storeLog) settleSent(n int) {
	ops := l.pending.Ops
	kept := n
	for i := n; i < len(ops); i++ {
		op := ops[i]
		switch op.Kind {
		case store.OpClearInflight:
			if l.takeSent(op.ClientID, op.PacketID) {
				continue // never written: nothing to clear
			}
		case store.OpSetInflight:
			l.takeSent(op.ClientID, op.Inflight.PacketID) // superseded
		case store.OpDeleteSession:
			l.dropSent(op.ClientID)
		}
		ops[kept] = op
		kept++
	}
	clear(ops[kept:])
	l.pending.Ops = ops[:kept]
}

// commitLocked commits bt, preceded by the pending writes, calling done
// once it is durable. Caller holds wlog.mu.
func (b *Broker) commitLocked(bt *store.Batch, done func(error)) {
	l := &b.wlog
	if l.pending.Len() == 0 {
		b.disk.CommitAsync(bt, done)
		return
	}
	ops := append(l.takePending(), bt.Ops...)
	bt.Ops = ops
	b.disk.CommitAsync(bt, func(err error) {
		done(err)
		putOps(ops)
	})
}

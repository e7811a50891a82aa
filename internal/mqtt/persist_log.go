// The store writes nothing waits for (session records, in-flight packet
// ids, acknowledged deliveries) are gathered into one pending batch and
// committed together: by the next PUBLISH batch, which carries them ahead
// of its own writes, or by the flusher. One commit then holds many of them,
// where one commit each would cost a store batch per packet. Every write
// reaches the store in the order it was made, PUBLISH batches included.

package mqtt

import (
	"sync"

	"github.com/mqttd/mqttd/internal/store"
)

type storeLog struct {
	mu      sync.Mutex
	pending store.Batch
	stopped bool          // the flusher has stopped: commit at once
	kick    chan struct{} // wakes the flusher
	stop    chan struct{}
	done    chan struct{}
}

// startStoreLog starts the flusher.
func (b *Broker) startStoreLog() {
	l := &b.wlog
	l.kick = make(chan struct{}, 1)
	l.stop = make(chan struct{})
	l.done = make(chan struct{})
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
	for {
		select {
		case <-l.kick:
			l.mu.Lock()
			b.commitPendingLocked()
			l.mu.Unlock()
		case <-l.stop:
			l.mu.Lock()
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

// write records writes nothing waits for: fn adds them to the pending
// batch.
func (b *Broker) write(fn func(*store.Batch)) {
	l := &b.wlog
	l.mu.Lock()
	fn(&l.pending)
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

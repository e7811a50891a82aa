// The store writes nothing waits for (session records, in-flight packet
// ids, acknowledged deliveries) are gathered into one pending batch and
// committed together: by the next PUBLISH batch, which carries them ahead
// of its own writes, or by the flusher. One commit then holds many of them,
// where one commit each would cost a store batch per packet. Every write
// reaches the store in the order it was made, PUBLISH batches included.
//
// One kind of write is held back instead: the record that a stored QoS 1
// delivery went out with a packet id. Most are cleared by the subscriber's
// PUBACK within milliseconds; held for sentDelay (to 2×sentDelay) first,
// such a record and its clearing are never written at all, where writing
// both cost two of the keys a stored delivery writes. The record only lets
// a session resumed after a crash resend with the same packet id
// ([MQTT-4.4.0-1]); after a crash inside the delay the message is resent
// from the queue with a new one, a duplicate, which QoS 1 allows. QoS 2
// records are written at once: exactly-once rests on the packet id. A
// graceful stop writes every held record.

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
	// sent holds the in-flight records not written yet that were held
	// since the last tick, sentOld those held in the tick before: each
	// tick writes sentOld and makes sent the new sentOld, so a record is
	// written at the second tick after it was held. A record here is not
	// in the store (the flow before it on the same packet id was cleared
	// first), so its clearing need not be written either. Two maps keyed
	// by a number rather than one keyed by session and packet id with
	// the tick in the value: the tick no longer walks every record held,
	// and a lookup (one per acknowledgement) costs a third as much.
	sent    map[uint64]heldSent
	sentOld map[uint64]heldSent
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
	l.sent, l.sentOld = map[uint64]heldSent{}, map[uint64]heldSent{}
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
			l.writeSent(l.sentOld)
			l.sent, l.sentOld = l.sentOld, l.sent
			b.commitPendingLocked()
			l.mu.Unlock()
		case <-l.stop:
			l.mu.Lock()
			l.writeSent(l.sentOld)
			l.writeSent(l.sent)
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

// sentKey names an outbound packet id of a session: its number (unique
// per broker) and the packet id.
func sentKey(s *Session, pid uint16) uint64 { return s.seq<<16 | uint64(pid) }

// heldSent is an in-flight record held back, with its session.
type heldSent struct {
	s *Session
	r store.InflightRecord
}

// writeSent adds the records held in m to the pending batch and empties
// m. Caller holds l.mu.
func (l *storeLog) writeSent(m map[uint64]heldSent) {
	for _, h := range m {
		l.pending.SetInflight(h.s.id, h.r)
	}
	clear(m)
}

// takeSent forgets the held record of s's packet id pid, reporting
// whether there was one: then its clearing need not be written. Caller
// holds l.mu.
func (l *storeLog) takeSent(s *Session, pid uint16) bool {
	if len(l.sent)+len(l.sentOld) == 0 {
		return false
	}
	k := sentKey(s, pid)
	for _, m := range [2]map[uint64]heldSent{l.sent, l.sentOld} {
		if _, ok := m[k]; ok {
			delete(m, k)
			return true
		}
	}
	return false
}

// holdSent records that a stored delivery of s went out with packet id
// r.PacketID: a QoS 1 one held (see above) while the flusher runs, any
// other written.
func (b *Broker) holdSent(s *Session, r store.InflightRecord, qos byte) {
	l := &b.wlog
	l.mu.Lock()
	if qos == 1 && !l.stopped && l.sent != nil {
		// One record per packet id: one held before for the same id (a
		// resend) is replaced, as its clearing would not be written.
		k := sentKey(s, r.PacketID)
		delete(l.sentOld, k)
		l.sent[k] = heldSent{s, r}
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	b.write(func(bt *store.Batch) { bt.SetInflight(s.id, r) })
}

// write records writes nothing waits for: fn adds them to the pending
// batch (fn runs under l.mu, so it may call takeSent). A deleted session's
// held records are dropped.
func (b *Broker) write(fn func(*store.Batch)) {
	l := &b.wlog
	l.mu.Lock()
	n := len(l.pending.Ops)
	fn(&l.pending)
	if len(l.sent)+len(l.sentOld) > 0 {
		for _, op := range l.pending.Ops[n:] {
			if op.Kind == store.OpDeleteSession {
				for _, m := range [2]map[uint64]heldSent{l.sent, l.sentOld} {
					for k, h := range m {
						if h.s.id == op.ClientID {
							delete(m, k)
						}
					}
				}
			}
		}
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

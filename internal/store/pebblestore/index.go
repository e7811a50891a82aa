package pebblestore

// What a commit needs to know about queues and messages, kept in memory so
// that acknowledging a delivery reads nothing back from Pebble: reading each
// queue entry and reference count through the LSM (often from a flushed
// table) was over a third of the CPU of a commit. Memory is a cache of what
// is stored, never the only copy: every change is written to Pebble too,
// and anything not in memory is read from Pebble. Only what was enqueued
// since Open is indexed, so recovery still reads no queue.

// indexBudget bounds the entries held in memory (queue entries and
// reference counts together): past it the index is dropped after a commit
// and rebuilt as commits touch queues, so a backlog that builds up while its
// subscribers are offline costs Pebble reads when it drains rather than
// memory in proportion to it. A variable so tests can make it small.
var indexBudget = 1 << 18

// dropQueue forgets client id's queue index.
func (s *Store) dropQueue(id string) {
	if q := s.queues[id]; q != nil {
		s.indexed -= len(q.msgs)
		delete(s.queues, id)
	}
}

// queueIndex is one client's queue as the store knows it in memory.
type queueIndex struct {
	head head // as stored (or as the batch being built will store it)
	// since: every entry with seq >= since is in msgs; older entries
	// (written before Open, or before a failed batch dropped the index)
	// are only in Pebble.
	since uint64
	msgs  map[uint64]uint64 // seq -> message id, for seq >= since
	peak  int               // largest len(msgs) since msgs was made
	dirty bool              // head changed by the batch being built
}

// add indexes entry seq of message id.
func (q *queueIndex) add(seq, id uint64) {
	if q.msgs == nil {
		q.msgs = make(map[uint64]uint64)
	}
	q.msgs[seq] = id
	q.peak = max(q.peak, len(q.msgs))
}

// remove forgets entry seq, giving back the memory of a map that has
// shrunk well below its peak (Go maps never shrink by themselves).
func (q *queueIndex) remove(seq uint64) {
	delete(q.msgs, seq)
	switch n := len(q.msgs); {
	case n == 0:
		q.msgs, q.peak = nil, 0
	case q.peak >= shrinkAt && n < q.peak/8:
		m := make(map[uint64]uint64, n)
		for k, v := range q.msgs {
			m[k] = v
		}
		q.msgs, q.peak = m, n
	}
}

// shrinkAt is the peak size from which a map shrunk to an eighth is copied
// into a smaller one.
const shrinkAt = 1024

// refCount is a message's number of queue references, in memory.
type refCount struct {
	n     uint64
	dirty bool // changed by the batch being built
}

// refIndex holds the reference counts of messages enqueued since Open, and
// of older ones once a commit has read them.
type refIndex struct {
	m    map[uint64]refCount
	peak int
}

func (r *refIndex) get(id uint64) (refCount, bool) {
	c, ok := r.m[id]
	return c, ok
}

func (r *refIndex) set(id uint64, c refCount) {
	if r.m == nil {
		r.m = make(map[uint64]refCount)
	}
	r.m[id] = c
	r.peak = max(r.peak, len(r.m))
}

// remove forgets id, shrinking the map as queueIndex.remove does.
func (r *refIndex) remove(id uint64) {
	delete(r.m, id)
	if n := len(r.m); r.peak >= shrinkAt && n < r.peak/8 {
		m := make(map[uint64]refCount, n)
		for k, v := range r.m {
			m[k] = v
		}
		r.m, r.peak = m, n
	}
}

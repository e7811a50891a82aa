package pebblestore

// What a commit needs to know about queues and messages, kept in memory so
// that writing a batch reads nothing back from Pebble: every queue's head
// (last sequence number handed out, entry count) and the reference count
// of every message held by more than one queue entry. These are not
// written by commits: Open rebuilds them with one pass over the queue
// entries, so that enqueueing and acknowledging write only the entries (a
// head and a count written per commit were half the keys of a stored
// delivery). Only a queue's last sequence number cannot always be found
// again in its entries (its newest entries may have been acknowledged), so
// Close writes it for every queue, and a deleted session's is deleted with
// it; after a crash, when Close did not run, the last sequence number comes
// from the newest remaining entry, and numbers above it may be handed out
// again. No queue entry refers to those any more, and an AwaitAck in-flight
// record is cleared in the commit that acknowledges its entry; only an
// AwaitComp record may still carry one, which orders its PUBREL among the
// resends and is never looked up. Which
// message each recent entry holds is cached too (the queue index proper);
// that part is a cache of what is stored, dropped when it outgrows
// indexBudget and read back from Pebble as needed.

// indexBudget bounds the queue entries cached in memory: past it the
// cached entries are dropped after a commit (heads and counts stay) and
// older entries are read from Pebble, so a backlog that builds up while
// its subscribers are offline costs Pebble reads when it drains rather
// than memory in proportion to it. A variable so tests can make it small.
var indexBudget = 1 << 18

// queueIndex is one client's queue as the store knows it in memory.
type queueIndex struct {
	head head // as committed (or as the batch being built leaves it)
	// since: every entry with seq >= since is in msgs; older entries
	// (written before Open, or before the cache was dropped) are only in
	// Pebble.
	since uint64
	msgs  map[uint64]uint64 // seq -> message id, for seq >= since
	peak  int               // largest len(msgs) since msgs was made
	dirty bool              // touched by the batch being built (its old head is in the writer's undo log)
}

// head is a queue's last sequence number handed out and its entry count.
type head struct {
	last  uint64
	count uint64
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

// emptyBetween tells whether q is known to hold no entry strictly
// between sequence numbers a < b, at most maxGap apart: all of them are
// cached (at or above since) and none is in the index.
func (q *queueIndex) emptyBetween(a, b uint64) bool {
	if a < q.since || b-a > maxGap {
		return false
	}
	for seq := a + 1; seq < b; seq++ {
		if _, ok := q.msgs[seq]; ok {
			return false
		}
	}
	return true
}

// uncache drops q's cached entries: from now on they are read from Pebble.
func (q *queueIndex) uncache() {
	q.msgs, q.peak, q.since = nil, 0, q.head.last+1
}

// dropCache drops every queue's cached entries, keeping the heads.
func (s *Store) dropCache() {
	for _, q := range s.queues {
		q.uncache()
	}
	s.indexed = 0
}

// shrinkAt is the peak size from which a map shrunk to an eighth is copied
// into a smaller one.
const shrinkAt = 1024

// refIndex holds the reference count of every message referenced by more
// than one queue entry; a message it does not hold has exactly one (it is
// only asked about messages an existing entry refers to).
type refIndex struct {
	m    map[uint64]uint32
	peak int
}

// get is id's reference count.
func (r *refIndex) get(id uint64) uint32 {
	if n, ok := r.m[id]; ok {
		return n
	}
	return 1
}

// set records id's reference count, forgetting it at 1 (or 0).
func (r *refIndex) set(id uint64, n uint32) {
	if n <= 1 {
		r.remove(id)
		return
	}
	if r.m == nil {
		r.m = make(map[uint64]uint32)
	}
	r.m[id] = n
	r.peak = max(r.peak, len(r.m))
}

// remove forgets id, shrinking the map as queueIndex.remove does.
func (r *refIndex) remove(id uint64) {
	if _, ok := r.m[id]; !ok {
		return
	}
	delete(r.m, id)
	if n := len(r.m); r.peak >= shrinkAt && n < r.peak/8 {
		m := make(map[uint64]uint32, n)
		for k, v := range r.m {
			m[k] = v
		}
		r.m, r.peak = m, n
	}
}

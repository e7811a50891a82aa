package pebblestore

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/mqttd/mqttd/internal/store"
)

// writer turns the operations of one batch into writes to a plain Pebble
// batch (no read-your-writes index: building one cost a quarter of a
// commit). What an operation must know of the ones before it in the same
// batch (queue heads, entries, reference counts) it finds in the store's
// in-memory index (index.go), which it updates as it goes, noting what it
// changed so that a batch that is not applied can be taken back; what
// memory does not cache (old entries) it reads from the committed state.
type writer struct {
	s      *Store
	pb     *pebble.Batch
	ops    []store.Op // the batch: deleteSession looks back at it
	msgIDs int        // message ids handed out by this batch (given back if it fails)
	// queues are the clients whose queue this batch touched, oldHeads
	// their heads before it; oldRefs the reference counts it changed, as
	// they were before (first change first).
	scratch
	// deleted are the clients this batch deleted; goneOld the keys of
	// entries older than their index that it removed (the committed state
	// still shows them until it is applied).
	deleted []string
	goneOld map[string]struct{}
}

// scratch is what a writer grows as it goes, handed from one commit to
// the next (under the commit mutex) rather than grown again each time.
type scratch struct {
	queues   []string
	oldHeads []head
	oldRefs  []refWas
	key      []byte // for keys (Pebble copies them)
	val      []byte // for values
	key2     []byte // a range's end key
	// acked are the cached entries the batch acknowledged, freed the
	// messages whose last reference went: both deleted when the batch's
	// operations are done, a run of neighbours with one range deletion
	// (see flushDeletes).
	acked []entryID
	freed []uint64
}

// entryID names a queue entry.
type entryID struct {
	client string
	seq    uint64
}

// keep hands w's buffers to the next commit, emptied.
func (w *writer) keep() {
	clear(w.queues)
	clear(w.acked)
	w.s.scratch = scratch{queues: w.queues[:0], oldHeads: w.oldHeads[:0], oldRefs: w.oldRefs[:0], key: w.key[:0], val: w.val[:0],
		key2: w.key2[:0], acked: w.acked[:0], freed: w.freed[:0]}
}

// refWas is a message's reference count before a batch changed it.
type refWas struct {
	id uint64
	n  uint32
}

// undo takes back what a batch that was not applied changed in memory:
// heads and counts as they were, and the touched queues' cached entries
// dropped (the committed entries are read back from Pebble when needed).
func (w *writer) undo() {
	w.s.nextMsg -= uint64(w.msgIDs)
	for i, id := range w.queues {
		q := w.s.queues[id]
		w.s.indexed -= len(q.msgs)
		q.head, q.dirty = w.oldHeads[i], false
		q.uncache()
	}
	for i := len(w.oldRefs) - 1; i >= 0; i-- {
		r := w.oldRefs[i]
		w.s.refs.set(r.id, r.n)
	}
}

// applied forgets the queues of clients deleted by the batch that hold
// nothing since (an absent queue means the same), and every cached entry
// once they outgrow indexBudget.
func (w *writer) applied() {
	for _, id := range w.queues {
		w.s.queues[id].dirty = false
	}
	for _, id := range w.deleted {
		if q := w.s.queues[id]; q != nil && q.head.last == 0 {
			delete(w.s.queues, id)
		}
	}
	if w.s.indexed > indexBudget {
		w.s.dropCache()
	}
}

// run writes every operation of the batch.
func (w *writer) run() error {
	for i := range w.ops {
		if err := w.op(i); err != nil {
			return err
		}
	}
	return w.flushDeletes()
}

func (w *writer) op(i int) error {
	op := &w.ops[i]
	switch op.Kind {
	case store.OpPutSession:
		return w.set(flatKey(pSession, op.ClientID), store.AppendSession(w.val[:0], op.Session))
	case store.OpDeleteSession:
		return w.deleteSession(op.ClientID, w.ops[:i])
	case store.OpPutRetained:
		return w.set(flatKey(pRetained, op.Topic), store.AppendMessage(w.val[:0], op.Msg))
	case store.OpDeleteRetained:
		return w.pb.Delete(flatKey(pRetained, op.Topic), nil)
	case store.OpEnqueue:
		return w.enqueue(op.Msg, op.Deliveries)
	case store.OpAck:
		return w.ack(op.ClientID, op.Seq)
	case store.OpSetInflight:
		w.key = appendPidKey(w.key[:0], pInflight, op.ClientID, op.Inflight.PacketID)
		return w.set(w.key, appendInflight(w.val[:0], op.Inflight))
	case store.OpClearInflight:
		w.key = appendPidKey(w.key[:0], pInflight, op.ClientID, op.PacketID)
		return w.pb.Delete(w.key, nil)
	case store.OpAddQoS2In:
		w.key = appendPidKey(w.key[:0], pQoS2, op.ClientID, op.PacketID)
		return w.pb.Set(w.key, nil, nil)
	case store.OpRemoveQoS2In:
		w.key = appendPidKey(w.key[:0], pQoS2, op.ClientID, op.PacketID)
		return w.pb.Delete(w.key, nil)
	}
	return nil
}

// set writes k = v, keeping v's buffer for the next value.
func (w *writer) set(k, v []byte) error {
	w.val = v
	return w.pb.Set(k, v, nil)
}

func (w *writer) enqueue(m *store.MessageRecord, ds []store.Delivery) error {
	if len(ds) == 1 {
		// Held by its one entry: no message key to write and delete.
		d := &ds[0]
		q := w.queue(d.ClientID)
		q.head.last++
		q.head.count++
		d.Seq = q.head.last
		q.add(d.Seq, 0)
		w.s.indexed++
		w.key = appendQueueKey(w.key[:0], d.ClientID, d.Seq)
		r := ref{qos: d.QoS, retain: d.Retain, subIDs: d.SubIDs, group: d.Group, body: m}
		return w.set(w.key, appendRef(w.val[:0], &r))
	}
	w.s.nextMsg++
	w.msgIDs++
	id := w.s.nextMsg
	if err := w.set(idKey(pMessage, id), store.AppendMessage(w.val[:0], m)); err != nil {
		return err
	}
	w.oldRefs = append(w.oldRefs, refWas{id, 0})
	w.s.refs.set(id, uint32(len(ds)))
	for i := range ds {
		d := &ds[i]
		q := w.queue(d.ClientID)
		q.head.last++
		q.head.count++
		d.Seq = q.head.last
		q.add(d.Seq, id)
		w.s.indexed++
		w.key = appendQueueKey(w.key[:0], d.ClientID, d.Seq)
		r := ref{msg: id, qos: d.QoS, retain: d.Retain, subIDs: d.SubIDs, group: d.Group}
		if err := w.set(w.key, appendRef(w.val[:0], &r)); err != nil {
			return err
		}
	}
	return nil
}

// queue is client id's queue index (made empty when it has none), noted
// as touched by the batch.
func (w *writer) queue(id string) *queueIndex {
	q, ok := w.s.queues[id]
	if !ok {
		q = &queueIndex{since: 1}
		w.s.queues[id] = q
	}
	if !q.dirty {
		q.dirty = true
		w.queues = append(w.queues, id)
		w.oldHeads = append(w.oldHeads, q.head)
	}
	return q
}

// ack removes entry seq of client id: an entry older than the index at
// once, a cached one (and a message it frees) with the batch's other
// deletions in flushDeletes. Not with a single delete, though
// entries and messages are written once under their key while it exists:
// a key is written again after its deletion (sequence numbers start again
// after a session is deleted, message ids after a restart), and a flush
// that drops the plain delete under the new write would let a later single
// delete uncover the first write (seen in the model test).
func (w *writer) ack(id string, seq uint64) error {
	q := w.queue(id)
	msg, ok, err := w.takeEntry(id, q, seq)
	if err != nil || !ok {
		return err
	}
	if err := w.unref(msg); err != nil {
		return err
	}
	if q.head.count > 0 {
		q.head.count--
	}
	return nil
}

// takeEntry removes entry seq of client id from what the batch sees and
// returns its message id; ok is false when there is no such entry.
func (w *writer) takeEntry(id string, q *queueIndex, seq uint64) (msg uint64, ok bool, err error) {
	if seq >= q.since {
		msg, ok = q.msgs[seq]
		if ok {
			q.remove(seq)
			w.s.indexed--
			w.acked = append(w.acked, entryID{id, seq}) // deleted by flushDeletes
		}
		return msg, ok, nil
	}
	k := queueKey(id, seq)
	if _, gone := w.goneOld[string(k)]; gone {
		return 0, false, nil
	}
	w.s.noteRead()
	v, ok, err := get(w.s.db, k)
	if err != nil || !ok {
		return 0, false, err
	}
	msg, err = refMsg(v)
	if err != nil {
		return 0, false, err
	}
	w.forgetOld(k)
	return msg, true, w.pb.Delete(k, nil)
}

func (w *writer) forgetOld(k []byte) {
	if w.goneOld == nil {
		w.goneOld = make(map[string]struct{})
	}
	w.goneOld[string(k)] = struct{}{}
}

// unref drops one of the references an existing entry holds to message
// id, deleting the message with the last (id 0: the entry held it).
func (w *writer) unref(id uint64) error {
	if id == 0 {
		return nil
	}
	n := w.s.refs.get(id)
	if n > 1 {
		w.oldRefs = append(w.oldRefs, refWas{id, n})
		w.s.refs.set(id, n-1)
		return nil
	}
	w.freed = append(w.freed, id) // deleted by flushDeletes
	return nil
}

// maxGap is the longest run of sequence numbers, known to hold no entry,
// that a range deletion of acknowledged entries may span.
const maxGap = 64

// flushDeletes deletes the entries acknowledged and the messages freed
// since the last call. Neighbours go together: entries of one queue whose
// sequence numbers are only separated by numbers known to hold no entry
// (at or above the index's since and not in it: acknowledged before, or
// never used), and messages with consecutive ids, are deleted with one
// range deletion rather than a point deletion each, which is what a
// subscriber acknowledging in order costs. A range deletion is safe where
// single deletes are not (see ack): it hides only what was written before
// it. The index is as the batch leaves it, so a range never covers an
// entry still queued; run before anything in the batch can write those
// keys again (deleteSession, which restarts the sequence numbers).
func (w *writer) flushDeletes() error {
	// While the store is being read (see noteRead) runs are not merged,
	// nor sorted to be: each entry and message gets a point deletion, in
	// the order the batch freed them.
	ranges := w.s.rangesWanted()
	if ranges && len(w.acked) > 1 {
		slices.SortFunc(w.acked, func(a, b entryID) int {
			return cmp.Or(strings.Compare(a.client, b.client), cmp.Compare(a.seq, b.seq))
		})
	}
	for i := 0; i < len(w.acked); {
		e := w.acked[i]
		q := w.s.queues[e.client]
		j := i + 1
		for ; ranges && j < len(w.acked) && w.acked[j].client == e.client && q.emptyBetween(w.acked[j-1].seq, w.acked[j].seq); j++ {
		}
		w.key = appendQueueKey(w.key[:0], e.client, e.seq)
		if err := w.deleteRun(w.acked[j-1].seq-e.seq, func(k []byte) []byte {
			return appendQueueKey(k, e.client, w.acked[j-1].seq+1)
		}); err != nil {
			return err
		}
		i = j
	}
	clear(w.acked)
	w.acked = w.acked[:0]
	if ranges {
		slices.Sort(w.freed)
	}
	for i := 0; i < len(w.freed); {
		j := i + 1
		for ; ranges && j < len(w.freed) && w.freed[j] == w.freed[j-1]+1; j++ {
		}
		w.key = appendIDKey(w.key[:0], pMessage, w.freed[i])
		last := w.freed[j-1]
		if err := w.deleteRun(last-w.freed[i], func(k []byte) []byte { return appendIDKey(k, pMessage, last+1) }); err != nil {
			return err
		}
		i = j
	}
	w.freed = w.freed[:0]
	return nil
}

// readQuiet is how long after a read of the store commits go on deleting
// with a point deletion each (a variable so tests can change it; 0: never).
var readQuiet = time.Second

// noteRead records that queues are being read back: a page of a backlog
// (Scan), an entry older than the index (acknowledged, or its session
// deleted). A read after a range deletion makes Pebble fragment all the
// range deletions of its current memtable again (its cache of them is
// rebuilt whenever one is added), which costs in proportion to their
// number: a backlog drained one acknowledgement at a time (each reads its
// entry back) beside sessions acknowledging in order cost ~0.5-1 ms per
// commit instead of ~0.05-0.15 ms (BenchmarkDrainBesideLiveAcks). So
// while queues are read, commits delete point by point (two keys per
// delivery rather than about one), and the fragments, no longer
// invalidated, are built once. Reads that come once per start or per
// resumed session (sessions, retained messages, packet ids) are not noted:
// each pays for one fragmenting at most.
func (s *Store) noteRead() {
	s.readAt.Store(int64(time.Since(s.epoch)) + 1)
}

// rangesWanted tells whether no read was noted within readQuiet.
func (s *Store) rangesWanted() bool {
	if readQuiet <= 0 {
		return true
	}
	at := s.readAt.Load()
	return at == 0 || time.Since(s.epoch)-time.Duration(at-1) > readQuiet
}

// deleteRun deletes w.key, or when span > 0 the range from w.key to the
// key end appends.
func (w *writer) deleteRun(span uint64, end func([]byte) []byte) error {
	if span == 0 {
		return w.pb.Delete(w.key, nil)
	}
	w.key2 = end(w.key2[:0])
	return w.pb.DeleteRange(w.key, w.key2, nil)
}

package pebblestore

import (
	"github.com/cockroachdb/pebble"

	"github.com/mqttd/mqttd/internal/store"
)

// writer turns the operations of one batch into writes to a plain Pebble
// batch (no read-your-writes index: building one cost a quarter of a
// commit). What an operation must know of the ones before it in the same
// batch (queue heads, entries, reference counts) it finds in the store's
// in-memory index (index.go), which it updates as it goes; what memory does
// not hold it reads from the committed state. Queue heads and reference
// counts are written once per batch, by finish, however many operations
// changed them.
type writer struct {
	s      *Store
	pb     *pebble.Batch
	ops    []store.Op // the batch: deleteSession looks back at it
	msgIDs int        // message ids handed out by this batch (given back if it fails)
	queues []string   // clients whose queue index this batch changed
	counts []uint64   // messages whose reference count this batch changed
	// deleted are the clients this batch deleted; goneOld the keys of
	// entries older than their index that it removed (the committed state
	// still shows them until it is applied).
	deleted []string
	goneOld map[string]struct{}
	key     []byte // scratch for keys (Pebble copies them)
	val     []byte // scratch for values
}

// undo forgets what a batch that was not applied changed in memory: what
// it touched is read back from Pebble when next needed.
func (w *writer) undo() {
	w.s.nextMsg -= uint64(w.msgIDs)
	for _, id := range w.queues {
		w.s.dropQueue(id)
	}
	for _, id := range w.counts {
		w.s.refs.remove(id)
	}
}

// applied drops the index of clients deleted by the batch that hold
// nothing since (its absence means the same), and the whole index once it
// outgrows indexBudget. Once a batch is applied memory holds nothing Pebble
// does not, so any of it may be dropped: it is read back when needed.
func (w *writer) applied() {
	for _, id := range w.deleted {
		if q := w.s.queues[id]; q != nil && q.head.last == 0 {
			w.s.dropQueue(id)
		}
	}
	if w.s.indexed+len(w.s.refs.m) > indexBudget {
		w.s.queues, w.s.indexed, w.s.refs = map[string]*queueIndex{}, 0, refIndex{}
	}
}

// run writes every operation of the batch, then the heads and counts they
// changed.
func (w *writer) run() error {
	for i := range w.ops {
		if err := w.op(i); err != nil {
			return err
		}
	}
	return w.finish()
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
	w.s.nextMsg++
	w.msgIDs++
	id := w.s.nextMsg
	if err := w.set(idKey(pMessage, id), store.AppendMessage(w.val[:0], m)); err != nil {
		return err
	}
	w.s.refs.set(id, refCount{n: uint64(len(ds)), dirty: true})
	w.counts = append(w.counts, id)
	for i := range ds {
		d := &ds[i]
		q, err := w.queue(d.ClientID)
		if err != nil {
			return err
		}
		w.changed(d.ClientID, q)
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

// queue is id's queue index, made from its stored head on first use.
func (w *writer) queue(id string) (*queueIndex, error) {
	if q, ok := w.s.queues[id]; ok {
		return q, nil
	}
	var h head
	v, ok, err := get(w.s.db, flatKey(pHead, id))
	if err != nil {
		return nil, err
	}
	if ok {
		if h, err = decodeHead(v); err != nil {
			return nil, err
		}
	}
	q := &queueIndex{head: h, since: h.last + 1}
	w.s.queues[id] = q
	return q, nil
}

// changed marks q's head to be written by finish.
func (w *writer) changed(id string, q *queueIndex) {
	if !q.dirty {
		q.dirty = true
		w.queues = append(w.queues, id)
	}
}

func (w *writer) ack(id string, seq uint64) error {
	q, err := w.queue(id)
	if err != nil {
		return err
	}
	w.changed(id, q) // before takeEntry changes it, so that undo drops it
	msg, ok, err := w.takeEntry(id, q, seq)
	if err != nil || !ok {
		return err
	}
	w.key = appendQueueKey(w.key[:0], id, seq)
	if err := w.pb.Delete(w.key, nil); err != nil {
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
		}
		return msg, ok, nil
	}
	k := queueKey(id, seq)
	if _, gone := w.goneOld[string(k)]; gone {
		return 0, false, nil
	}
	v, ok, err := get(w.s.db, k)
	if err != nil || !ok {
		return 0, false, err
	}
	r, err := decodeRef(v)
	if err != nil {
		return 0, false, err
	}
	w.forgetOld(k)
	return r.msg, true, nil
}

func (w *writer) forgetOld(k []byte) {
	if w.goneOld == nil {
		w.goneOld = make(map[string]struct{})
	}
	w.goneOld[string(k)] = struct{}{}
}

// unref drops one reference to message id, deleting it with the last.
func (w *writer) unref(id uint64) error {
	c, ok := w.s.refs.get(id)
	if !ok {
		v, found, err := get(w.s.db, idKey(pCount, id))
		if err != nil || !found {
			return err // a missing count was already released
		}
		if c.n, err = decodeCount(v); err != nil {
			return err
		}
	}
	if !c.dirty {
		c.dirty = true
		w.counts = append(w.counts, id)
	}
	if c.n > 1 {
		c.n--
		w.s.refs.set(id, c)
		return nil
	}
	w.s.refs.remove(id)
	if err := w.pb.Delete(idKey(pCount, id), nil); err != nil {
		return err
	}
	return w.pb.Delete(idKey(pMessage, id), nil)
}

// finish writes the queue heads and reference counts the batch changed.
func (w *writer) finish() error {
	for _, id := range w.queues {
		q := w.s.queues[id]
		if q == nil || !q.dirty {
			continue
		}
		q.dirty = false
		if err := w.set(flatKey(pHead, id), appendHead(w.val[:0], q.head)); err != nil {
			return err
		}
	}
	for _, id := range w.counts {
		c, ok := w.s.refs.get(id)
		if !ok || !c.dirty {
			continue // released: its keys are deleted
		}
		c.dirty = false
		w.s.refs.set(id, c)
		w.key = appendIDKey(w.key[:0], pCount, id)
		if err := w.set(w.key, appendCount(w.val[:0], c.n)); err != nil {
			return err
		}
	}
	return nil
}

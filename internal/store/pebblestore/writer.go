package pebblestore

import (
	"github.com/cockroachdb/pebble"

	"github.com/mqttd/mqttd/internal/store"
)

// writer turns batch operations into Pebble writes. Its reads go through
// the indexed batch, so an operation sees the ones before it.
type writer struct {
	s       *Store
	pb      *pebble.Batch
	msgIDs  int      // message ids handed out by this batch (given back if it fails)
	touched []string // queue heads this batch changed in s.heads
}

// undo forgets what a batch that was not applied changed in memory.
func (w *writer) undo() {
	w.s.nextMsg -= uint64(w.msgIDs)
	for _, id := range w.touched {
		delete(w.s.heads, id)
	}
}

func (w *writer) op(op *store.Op) error {
	switch op.Kind {
	case store.OpPutSession:
		return w.pb.Set(flatKey(pSession, op.ClientID), store.AppendSession(nil, op.Session), nil)
	case store.OpDeleteSession:
		return w.deleteSession(op.ClientID)
	case store.OpPutRetained:
		return w.pb.Set(flatKey(pRetained, op.Topic), store.AppendMessage(nil, op.Msg), nil)
	case store.OpDeleteRetained:
		return w.pb.Delete(flatKey(pRetained, op.Topic), nil)
	case store.OpEnqueue:
		return w.enqueue(op.Msg, op.Deliveries)
	case store.OpAck:
		return w.ack(op.ClientID, op.Seq)
	case store.OpSetInflight:
		return w.pb.Set(pidKey(pInflight, op.ClientID, op.Inflight.PacketID), appendInflight(nil, op.Inflight), nil)
	case store.OpClearInflight:
		return w.pb.Delete(pidKey(pInflight, op.ClientID, op.PacketID), nil)
	case store.OpAddQoS2In:
		return w.pb.Set(pidKey(pQoS2, op.ClientID, op.PacketID), nil, nil)
	case store.OpRemoveQoS2In:
		return w.pb.Delete(pidKey(pQoS2, op.ClientID, op.PacketID), nil)
	}
	return nil
}

func (w *writer) enqueue(m *store.MessageRecord, ds []store.Delivery) error {
	w.s.nextMsg++
	w.msgIDs++
	id := w.s.nextMsg
	if err := w.pb.Set(idKey(pMessage, id), store.AppendMessage(nil, m), nil); err != nil {
		return err
	}
	if err := w.pb.Set(idKey(pCount, id), appendCount(nil, uint64(len(ds))), nil); err != nil {
		return err
	}
	var buf []byte
	for i := range ds {
		d := &ds[i]
		h, err := w.head(d.ClientID)
		if err != nil {
			return err
		}
		h.last++
		h.count++
		d.Seq = h.last
		buf = appendRef(buf[:0], &ref{msg: id, qos: d.QoS, retain: d.Retain, subIDs: d.SubIDs, group: d.Group})
		if err := w.pb.Set(queueKey(d.ClientID, d.Seq), buf, nil); err != nil {
			return err
		}
		if err := w.setHead(d.ClientID, h); err != nil {
			return err
		}
	}
	return nil
}

// head is id's queue head, from memory once read: a lookup in the LSM per
// delivery was a third of a commit's CPU.
func (w *writer) head(id string) (head, error) {
	if h, ok := w.s.heads[id]; ok {
		return h, nil
	}
	v, ok, err := get(w.pb, flatKey(pHead, id))
	if err != nil || !ok {
		return head{}, err
	}
	return decodeHead(v)
}

func (w *writer) setHead(id string, h head) error {
	w.s.heads[id] = h
	w.touched = append(w.touched, id)
	return w.pb.Set(flatKey(pHead, id), appendHead(nil, h), nil)
}

func (w *writer) ack(id string, seq uint64) error {
	k := queueKey(id, seq)
	v, ok, err := get(w.pb, k)
	if err != nil || !ok {
		return err
	}
	r, err := decodeRef(v)
	if err != nil {
		return err
	}
	if err := w.pb.Delete(k, nil); err != nil {
		return err
	}
	if err := w.unref(r.msg); err != nil {
		return err
	}
	h, err := w.head(id)
	if err != nil {
		return err
	}
	if h.count > 0 {
		h.count--
	}
	return w.setHead(id, h)
}

// unref drops one reference to message id, deleting it with the last.
func (w *writer) unref(id uint64) error {
	ck := idKey(pCount, id)
	v, ok, err := get(w.pb, ck)
	if err != nil || !ok {
		return err // a missing count was already released
	}
	n, err := decodeCount(v)
	if err != nil {
		return err
	}
	if n > 1 {
		return w.pb.Set(ck, appendCount(nil, n-1), nil)
	}
	if err := w.pb.Delete(ck, nil); err != nil {
		return err
	}
	return w.pb.Delete(idKey(pMessage, id), nil)
}

// deleteSession removes the session record, its queue (releasing each
// message reference), its head and its packet ids.
func (w *writer) deleteSession(id string) error {
	if err := w.pb.Delete(flatKey(pSession, id), nil); err != nil {
		return err
	}
	delete(w.s.heads, id)
	w.touched = append(w.touched, id)
	if err := w.pb.Delete(flatKey(pHead, id), nil); err != nil {
		return err
	}
	for _, p := range []byte{pQueue, pInflight, pQoS2} {
		if err := w.deleteClientKeys(p, id); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) deleteClientKeys(prefix byte, id string) error {
	lo := clientPrefix(prefix, id, 0)
	it, err := w.pb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: upperBound(lo)})
	if err != nil {
		return err
	}
	var keys [][]byte
	var msgs []uint64
	for ok := it.First(); ok; ok = it.Next() {
		keys = append(keys, append([]byte(nil), it.Key()...))
		if prefix == pQueue {
			r, err := decodeRef(it.Value())
			if err != nil {
				it.Close()
				return err
			}
			msgs = append(msgs, r.msg)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, k := range keys {
		if err := w.pb.Delete(k, nil); err != nil {
			return err
		}
	}
	for _, m := range msgs {
		if err := w.unref(m); err != nil {
			return err
		}
	}
	return nil
}

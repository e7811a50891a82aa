package pebblestore

import (
	"github.com/cockroachdb/pebble"

	"github.com/mqttd/mqttd/internal/store"
)

// deleteSession removes the session record, its queue (releasing each
// message reference) and its packet ids. The batch is not indexed, so the
// keys come from three places: the queue index in memory (entries since it
// was made), the committed state (older entries and packet ids) and the
// operations before this one in the same batch (packet ids they set).
func (w *writer) deleteSession(id string, before []store.Op) error {
	// The acknowledged entries waiting to be deleted go first: the queue
	// starts again at sequence number 1, and a range deleted after the
	// entries this batch enqueues again could hide them.
	if err := w.flushDeletes(); err != nil {
		return err
	}
	if err := w.pb.Delete(flatKey(pSession, id), nil); err != nil {
		return err
	}
	q := w.queue(id)
	for seq, msg := range q.msgs {
		w.key = appendQueueKey(w.key[:0], id, seq)
		if err := w.pb.Delete(w.key, nil); err != nil {
			return err
		}
		if err := w.unref(msg); err != nil {
			return err
		}
	}
	if err := w.deleteOldEntries(id, q.since); err != nil {
		return err
	}
	// Empty, and all of it known: sequence numbers start again at 1.
	w.s.indexed -= len(q.msgs)
	q.head, q.msgs, q.peak, q.since = head{}, nil, 0, 1
	w.deleted = append(w.deleted, id)
	if err := w.pb.Delete(flatKey(pLast, id), nil); err != nil {
		return err
	}
	for _, p := range []byte{pInflight, pQoS2} {
		if err := w.deleteStored(clientPrefix(p, id, 0)); err != nil {
			return err
		}
	}
	return w.deletePidsSetIn(before, id)
}

// deleteOldEntries deletes client id's stored entries below seq since
// that this batch has not removed yet, releasing their messages.
func (w *writer) deleteOldEntries(id string, since uint64) error {
	if since <= 1 {
		return nil
	}
	w.s.noteRead()
	it, err := w.s.db.NewIter(&pebble.IterOptions{LowerBound: queueKey(id, 0), UpperBound: queueKey(id, since)})
	if err != nil {
		return err
	}
	var keys [][]byte
	var msgs []uint64
	for ok := it.First(); ok; ok = it.Next() {
		if _, gone := w.goneOld[string(it.Key())]; gone {
			continue
		}
		msg, err := refMsg(it.Value())
		if err != nil {
			it.Close()
			return err
		}
		keys = append(keys, append([]byte(nil), it.Key()...))
		msgs = append(msgs, msg)
	}
	if err := it.Close(); err != nil {
		return err
	}
	for i, k := range keys {
		w.forgetOld(k)
		if err := w.pb.Delete(k, nil); err != nil {
			return err
		}
		if err := w.unref(msgs[i]); err != nil {
			return err
		}
	}
	return nil
}

// deleteStored deletes every committed key starting with prefix.
func (w *writer) deleteStored(prefix []byte) error {
	it, err := w.s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upperBound(prefix)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := w.pb.Delete(it.Key(), nil); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// deletePidsSetIn deletes the packet ids of client id that the operations
// before were to set: the committed state does not show them yet.
func (w *writer) deletePidsSetIn(before []store.Op, id string) error {
	for i := range before {
		op := &before[i]
		if op.ClientID != id {
			continue
		}
		switch op.Kind {
		case store.OpSetInflight:
			w.key = appendPidKey(w.key[:0], pInflight, id, op.Inflight.PacketID)
		case store.OpAddQoS2In:
			w.key = appendPidKey(w.key[:0], pQoS2, id, op.PacketID)
		default:
			continue
		}
		if err := w.pb.Delete(w.key, nil); err != nil {
			return err
		}
	}
	return nil
}

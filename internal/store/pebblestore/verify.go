package pebblestore

import (
	"fmt"

	"github.com/mqttd/mqttd/internal/store"
)

// Stats counts what a store holds, as Verify found it, so an offline
// check can report the size of what it checked.
type Stats struct {
	Sessions, Retained int // session and retained-message records
	Messages           int // distinct queued message bodies
	QueueEntries       int // queue references to them, all sessions together
	Inflight, QoS2In   int // outbound and inbound QoS 2 packet ids
}

// Verify reads the whole store from one snapshot and checks that it is
// consistent: every record decodes, every queue entry's message exists and
// every message has an entry, no key is of an unknown kind, and the queue
// heads and reference counts kept in memory (index.go) agree with the
// entries. It holds the messages' reference tallies in memory: an offline
// check (the model tests run it after every step), not part of recovery.
func (s *Store) Verify() (Stats, error) {
	s.rmu.RLock()
	defer s.rmu.RUnlock()
	if s.rclosed {
		return Stats{}, store.ErrClosed
	}
	// The snapshot and the copy of the in-memory state are taken together,
	// between commits.
	s.mu.Lock()
	snap := s.db.NewSnapshot()
	heads := make(map[string]head, len(s.queues))
	for id, q := range s.queues {
		heads[id] = q.head
	}
	counts := make(map[uint64]uint64, len(s.refs.m))
	for id, n := range s.refs.m {
		counts[id] = uint64(n)
	}
	s.mu.Unlock()
	defer snap.Close()
	it, err := snap.NewIter(nil)
	if err != nil {
		return Stats{}, s.wrap(err)
	}
	defer it.Close()
	v := verifier{refs: map[uint64]uint64{}, counts: counts, msgs: map[uint64]bool{},
		entries: map[string]head{}, heads: heads}
	for ok := it.First(); ok; ok = it.Next() {
		if err := v.key(it.Key(), it.Value()); err != nil {
			return v.st, s.wrap(fmt.Errorf("key %x: %w", it.Key(), err))
		}
	}
	if err := it.Error(); err != nil {
		return v.st, s.wrap(err)
	}
	return v.st, s.wrap(v.cross())
}

type verifier struct {
	st      Stats
	refs    map[uint64]uint64 // message id -> queue entries pointing at it
	counts  map[uint64]uint64 // message id -> reference count in memory, when above 1
	msgs    map[uint64]bool
	entries map[string]head // client -> entries seen (count, highest seq)
	heads   map[string]head // client -> head in memory
}

func (v *verifier) key(k, val []byte) error {
	switch k[0] {
	case pFormat:
		if len(k) != 1 || len(val) != 1 || val[0] != formatV3 {
			return fmt.Errorf("%w: bad format marker", store.ErrCorrupt)
		}
	case pSession:
		v.st.Sessions++
		_, err := store.DecodeSession(val)
		return err
	case pRetained:
		v.st.Retained++
		_, err := store.DecodeMessage(val)
		return err
	case pMessage:
		return v.message(k, val)
	case pLast:
		_, err := decodeLast(val)
		return err
	case pQueue, pInflight, pQoS2:
		return v.clientKey(k, val)
	default:
		return fmt.Errorf("%w: unknown key kind %q", store.ErrCorrupt, k[0])
	}
	return nil
}

func (v *verifier) message(k, val []byte) error {
	if len(k) != 9 {
		return fmt.Errorf("%w: bad message key", store.ErrCorrupt)
	}
	id, _ := tailUint(k, 8)
	v.st.Messages++
	v.msgs[id] = true
	_, err := store.DecodeMessage(val)
	return err
}

// clientKey checks a composite key's length prefix and its record.
func (v *verifier) clientKey(k, val []byte) error {
	tail := 2
	if k[0] == pQueue {
		tail = 8
	}
	cid, n, ok := splitClientKey(k, tail)
	if !ok {
		return fmt.Errorf("%w: bad composite key", store.ErrCorrupt)
	}
	id := string(cid)
	switch k[0] {
	case pQueue:
		v.st.QueueEntries++
		r, err := decodeRef(val)
		if err != nil {
			return err
		}
		if r.msg == 0 {
			v.st.Messages++ // held by the entry
		} else {
			v.refs[r.msg]++
		}
		e := v.entries[id]
		e.count++
		e.last = max(e.last, n)
		v.entries[id] = e
	case pInflight:
		v.st.Inflight++
		_, err := decodeInflight(uint16(n), val)
		return err
	case pQoS2:
		v.st.QoS2In++
		if len(val) != 0 {
			return fmt.Errorf("%w: QoS 2 packet id with a value", store.ErrCorrupt)
		}
	}
	return nil
}

// cross checks what single records cannot: references against counts
// and messages, entries against heads.
func (v *verifier) cross() error {
	for id, n := range v.refs {
		if !v.msgs[id] {
			return fmt.Errorf("%w: %d queue entries refer to missing message %d", store.ErrCorrupt, n, id)
		}
		if c := max(v.counts[id], 1); c != n {
			return fmt.Errorf("%w: message %d has %d queue entries but a reference count of %d", store.ErrCorrupt, id, n, c)
		}
	}
	for id := range v.msgs {
		if v.refs[id] == 0 {
			return fmt.Errorf("%w: message %d is stored but no queue refers to it", store.ErrCorrupt, id)
		}
	}
	for id := range v.counts {
		if !v.msgs[id] {
			return fmt.Errorf("%w: reference count for missing message %d", store.ErrCorrupt, id)
		}
	}
	for client, e := range v.entries {
		h, ok := v.heads[client]
		if !ok || h.count != e.count || h.last < e.last {
			return fmt.Errorf("%w: queue of %q has %d entries up to %d, its head in memory says %d up to %d", store.ErrCorrupt, client, e.count, e.last, h.count, h.last)
		}
	}
	for client, h := range v.heads {
		if h.count != v.entries[client].count {
			return fmt.Errorf("%w: queue head of %q in memory counts %d entries, found %d", store.ErrCorrupt, client, h.count, v.entries[client].count)
		}
	}
	return nil
}

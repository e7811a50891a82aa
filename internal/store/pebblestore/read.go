package pebblestore

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble"

	"github.com/mqttd/mqttd/internal/store"
)

// each visits the keys in [lo, hi) in order.
func (s *Store) each(lo, hi []byte, fn func(k, v []byte) error) error {
	s.rmu.RLock()
	defer s.rmu.RUnlock()
	if s.rclosed {
		return store.ErrClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return s.wrap(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return s.wrap(err)
		}
	}
	return s.wrap(it.Close())
}

func (s *Store) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store %s: %w", s.dir, err)
}

// Sessions calls fn for every session in client id order.
func (s *Store) Sessions(fn func(*store.SessionRecord) error) error {
	return s.each([]byte{pSession}, []byte{pSession + 1}, func(k, v []byte) error {
		r, err := store.DecodeSession(v)
		if err != nil {
			return err
		}
		if r.ClientID != string(k[1:]) {
			return fmt.Errorf("%w: session %q stored under key %q", store.ErrCorrupt, r.ClientID, k[1:])
		}
		return fn(r)
	})
}

// Session returns clientID's record, or nil when there is none.
func (s *Store) Session(clientID string) (*store.SessionRecord, error) {
	var out *store.SessionRecord
	k := append([]byte{pSession}, clientID...)
	err := s.each(k, append(k[:len(k):len(k)], 0), func(_, v []byte) error {
		r, err := store.DecodeSession(v)
		if err != nil {
			return err
		}
		if r.ClientID != clientID {
			return fmt.Errorf("%w: session %q stored under key %q", store.ErrCorrupt, r.ClientID, clientID)
		}
		out = r
		return nil
	})
	return out, err
}

// Retained calls fn for every retained message in topic order.
func (s *Store) Retained(fn func(*store.MessageRecord) error) error {
	return s.each([]byte{pRetained}, []byte{pRetained + 1}, func(k, v []byte) error {
		m, err := store.DecodeMessage(v)
		if err != nil {
			return err
		}
		if m.Topic != string(k[1:]) {
			return fmt.Errorf("%w: retained message for %q stored under key %q", store.ErrCorrupt, m.Topic, k[1:])
		}
		return fn(m)
	})
}

// Scan returns up to limit deliveries of clientID with Seq >= from. Only
// those entries and their messages are read, from one snapshot: a
// concurrent Ack cannot take a message away between reading its entry and
// reading it.
func (s *Store) Scan(clientID string, from uint64, limit int) ([]store.Queued, error) {
	if limit <= 0 {
		return nil, nil
	}
	s.rmu.RLock()
	defer s.rmu.RUnlock()
	if s.rclosed {
		return nil, store.ErrClosed
	}
	s.noteRead()
	snap := s.db.NewSnapshot()
	defer snap.Close()
	qit, err := snap.NewIter(&pebble.IterOptions{
		LowerBound: queueKey(clientID, from),
		UpperBound: upperBound(clientPrefix(pQueue, clientID, 0)),
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	defer qit.Close()
	mit, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{pMessage}, UpperBound: []byte{pMessage + 1}})
	if err != nil {
		return nil, s.wrap(err)
	}
	defer mit.Close()
	var out []store.Queued
	for ok := qit.First(); ok && len(out) < limit; ok = qit.Next() {
		q, err := readEntry(clientID, qit, mit)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, q)
	}
	if err := qit.Error(); err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

// readEntry decodes the queue entry at qit and its message, found by
// seeking mit (entries of one queue mostly point forward in message ids,
// so the seeks are short).
func readEntry(clientID string, qit, mit *pebble.Iterator) (store.Queued, error) {
	seq, _ := tailUint(qit.Key(), 8)
	r, err := decodeRef(qit.Value())
	if err != nil {
		return store.Queued{}, err
	}
	d := store.Delivery{ClientID: clientID, Seq: seq, QoS: r.qos, Retain: r.retain, SubIDs: r.subIDs, Group: r.group}
	if r.msg == 0 {
		return store.Queued{Delivery: d, Msg: r.body}, nil
	}
	mk := idKey(pMessage, r.msg)
	if !mit.SeekGE(mk) || !bytes.Equal(mit.Key(), mk) {
		if err := mit.Error(); err != nil {
			return store.Queued{}, err
		}
		return store.Queued{}, fmt.Errorf("%w: queue entry %d of %q refers to missing message %d", store.ErrCorrupt, seq, clientID, r.msg)
	}
	m, err := store.DecodeMessage(mit.Value())
	if err != nil {
		return store.Queued{}, err
	}
	return store.Queued{Delivery: d, Msg: m}, nil
}

// QueueLen is the number of deliveries queued for clientID, from the
// heads kept in memory.
func (s *Store) QueueLen(clientID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	if q := s.queues[clientID]; q != nil {
		return int(q.head.count), nil
	}
	return 0, nil
}

// Inflight returns the outbound packet ids in send order.
func (s *Store) Inflight(clientID string) ([]store.InflightRecord, error) {
	var out []store.InflightRecord
	lo := clientPrefix(pInflight, clientID, 0)
	err := s.each(lo, upperBound(lo), func(k, v []byte) error {
		pid, _ := tailUint(k, 2)
		r, err := decodeInflight(uint16(pid), v)
		out = append(out, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	store.SortInflight(out)
	return out, nil
}

// QoS2In returns the inbound QoS 2 packet ids, ascending.
func (s *Store) QoS2In(clientID string) ([]uint16, error) {
	var out []uint16
	lo := clientPrefix(pQoS2, clientID, 0)
	err := s.each(lo, upperBound(lo), func(k, v []byte) error {
		pid, _ := tailUint(k, 2)
		out = append(out, uint16(pid))
		return nil
	})
	return out, err
}

// MessageCount is the number of distinct message bodies stored for queues:
// those stored once for several entries and those held by their entry.
func (s *Store) MessageCount() (int, error) {
	n := 0
	err := s.each([]byte{pMessage}, []byte{pMessage + 1}, func(k, v []byte) error {
		n++
		return nil
	})
	if err != nil {
		return 0, err
	}
	err = s.each([]byte{pQueue}, []byte{pQueue + 1}, func(k, v []byte) error {
		msg, err := refMsg(v)
		if msg == 0 {
			n++
		}
		return err
	})
	return n, err
}

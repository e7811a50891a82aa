// Package memstore is the in-memory store.Store: the model the on-disk
// store is tested against, and the store of storage.type: memory. It keeps
// the same records, sequence numbers and message reference counts as the
// on-disk store, so the two can be compared state for state.
package memstore

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/mqttd/mqttd/internal/store"
)

type message struct {
	rec  *store.MessageRecord
	refs int
}

type ref struct {
	d    store.Delivery // Seq set, ClientID set
	msg  uint64
	gone bool // acknowledged
}

type queue struct {
	next uint64 // last sequence number handed out
	// entries, ascending Seq, may hold acknowledged ones (gone) behind
	// the first live one: removing from the middle of a slice on every
	// acknowledgement cost time in proportion to the queue. The front is
	// trimmed as it is acknowledged, and the slice compacted once most of
	// it is gone.
	entries []ref
	live    int // entries not gone
}

// Store is an in-memory store.Store.
type Store struct {
	mu       sync.RWMutex
	closed   bool
	sessions map[string]*store.SessionRecord
	retained map[string]*store.MessageRecord
	msgs     map[uint64]*message
	nextMsg  uint64
	queues   map[string]*queue
	inflight map[string]map[uint16]store.InflightRecord
	qos2     map[string]map[uint16]struct{}
	notify   *store.Notifier
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		sessions: map[string]*store.SessionRecord{},
		retained: map[string]*store.MessageRecord{},
		msgs:     map[uint64]*message{},
		queues:   map[string]*queue{},
		inflight: map[string]map[uint16]store.InflightRecord{},
		qos2:     map[string]map[uint16]struct{}{},
		notify:   store.NewNotifier(),
	}
}

// Commit applies b at once, unless ctx has already ended. There is no
// disk to wait for, so it returns as soon as b is applied: every
// Durability is the same here.
func (s *Store) Commit(ctx context.Context, b *store.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apply(b)
}

// CommitAsync applies b and reports on the notifier goroutine, queued
// under the lock so that callbacks follow commit order.
func (s *Store) CommitAsync(b *store.Batch, done func(error)) {
	s.mu.Lock()
	err := s.apply(b)
	if err == nil {
		s.notify.Push(nil, done)
	}
	s.mu.Unlock()
	if err != nil {
		s.notify.Push(nil, func(error) { done(err) })
	}
}

// apply runs b's operations; s.mu is held.
func (s *Store) apply(b *store.Batch) error {
	if s.closed {
		return store.ErrClosed
	}
	for i := range b.Ops {
		s.applyOp(&b.Ops[i])
	}
	return nil
}

func (s *Store) applyOp(op *store.Op) {
	switch op.Kind {
	case store.OpPutSession:
		s.sessions[op.ClientID] = store.CloneSession(op.Session)
	case store.OpDeleteSession:
		s.deleteSession(op.ClientID)
	case store.OpPutRetained:
		s.retained[op.Topic] = store.CloneMessage(op.Msg)
	case store.OpDeleteRetained:
		delete(s.retained, op.Topic)
	case store.OpEnqueue:
		s.enqueue(op.Msg, op.Deliveries)
	case store.OpAck:
		s.ack(op.ClientID, op.Seq)
	case store.OpSetInflight:
		m := s.inflight[op.ClientID]
		if m == nil {
			m = map[uint16]store.InflightRecord{}
			s.inflight[op.ClientID] = m
		}
		m[op.Inflight.PacketID] = op.Inflight
	case store.OpClearInflight:
		delete(s.inflight[op.ClientID], op.PacketID)
	case store.OpAddQoS2In:
		m := s.qos2[op.ClientID]
		if m == nil {
			m = map[uint16]struct{}{}
			s.qos2[op.ClientID] = m
		}
		m[op.PacketID] = struct{}{}
	case store.OpRemoveQoS2In:
		delete(s.qos2[op.ClientID], op.PacketID)
	}
}

func (s *Store) enqueue(m *store.MessageRecord, ds []store.Delivery) {
	s.nextMsg++
	id := s.nextMsg
	s.msgs[id] = &message{rec: store.CloneMessage(m), refs: len(ds)}
	for i := range ds {
		q := s.queues[ds[i].ClientID]
		if q == nil {
			q = &queue{}
			s.queues[ds[i].ClientID] = q
		}
		q.next++
		ds[i].Seq = q.next
		d := ds[i]
		d.SubIDs = slices.Clone(d.SubIDs)
		if len(d.SubIDs) == 0 {
			d.SubIDs = nil
		}
		q.entries = append(q.entries, ref{d: d, msg: id})
		q.live++
	}
}

func (s *Store) ack(clientID string, seq uint64) {
	q := s.queues[clientID]
	if q == nil {
		return
	}
	i, ok := slices.BinarySearchFunc(q.entries, seq, func(r ref, seq uint64) int {
		return cmpU64(r.d.Seq, seq)
	})
	if !ok || q.entries[i].gone {
		return
	}
	s.unref(q.entries[i].msg)
	q.entries[i] = ref{d: store.Delivery{Seq: seq}, gone: true}
	q.live--
	q.trim()
}

// trim drops the acknowledged entries at the front, and compacts the rest
// once fewer than a quarter are live.
func (q *queue) trim() {
	n := 0
	for n < len(q.entries) && q.entries[n].gone {
		n++
	}
	clear(q.entries[:n])
	q.entries = q.entries[n:]
	if len(q.entries) >= 64 && q.live < len(q.entries)/4 {
		kept := make([]ref, 0, 2*q.live)
		for _, r := range q.entries {
			if !r.gone {
				kept = append(kept, r)
			}
		}
		q.entries = kept
	}
}

func (s *Store) unref(id uint64) {
	m := s.msgs[id]
	if m.refs--; m.refs == 0 {
		delete(s.msgs, id)
	}
}

func (s *Store) deleteSession(id string) {
	delete(s.sessions, id)
	if q := s.queues[id]; q != nil {
		for _, r := range q.entries {
			if !r.gone {
				s.unref(r.msg)
			}
		}
		delete(s.queues, id)
	}
	delete(s.inflight, id)
	delete(s.qos2, id)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Sessions calls fn for every session in client id order.
func (s *Store) Sessions(fn func(*store.SessionRecord) error) error {
	s.mu.RLock()
	all := make([]*store.SessionRecord, 0, len(s.sessions))
	for _, r := range s.sessions {
		all = append(all, store.CloneSession(r))
	}
	s.mu.RUnlock()
	slices.SortFunc(all, func(a, b *store.SessionRecord) int { return strings.Compare(a.ClientID, b.ClientID) })
	for _, r := range all {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Session returns a copy of clientID's record, or nil when there is none.
func (s *Store) Session(clientID string) (*store.SessionRecord, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.sessions[clientID]
	if !ok {
		return nil, nil
	}
	return store.CloneSession(r), nil
}

// Retained calls fn for every retained message in topic order.
func (s *Store) Retained(fn func(*store.MessageRecord) error) error {
	s.mu.RLock()
	all := make([]*store.MessageRecord, 0, len(s.retained))
	for _, m := range s.retained {
		all = append(all, store.CloneMessage(m))
	}
	s.mu.RUnlock()
	slices.SortFunc(all, func(a, b *store.MessageRecord) int { return strings.Compare(a.Topic, b.Topic) })
	for _, m := range all {
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// Scan returns up to limit deliveries with Seq >= from.
func (s *Store) Scan(clientID string, from uint64, limit int) ([]store.Queued, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	q := s.queues[clientID]
	if q == nil {
		return nil, nil
	}
	i, _ := slices.BinarySearchFunc(q.entries, from, func(r ref, seq uint64) int { return cmpU64(r.d.Seq, seq) })
	var out []store.Queued
	for ; i < len(q.entries) && len(out) < limit; i++ {
		r := q.entries[i]
		if r.gone {
			continue
		}
		d := r.d
		d.SubIDs = slices.Clone(d.SubIDs)
		out = append(out, store.Queued{Delivery: d, Msg: store.CloneMessage(s.msgs[r.msg].rec)})
	}
	return out, nil
}

// QueueLen is the number of deliveries queued for clientID.
func (s *Store) QueueLen(clientID string) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if q := s.queues[clientID]; q != nil {
		return q.live, nil
	}
	return 0, nil
}

// Inflight returns the outbound packet ids by Seq, then packet id.
func (s *Store) Inflight(clientID string) ([]store.InflightRecord, error) {
	s.mu.RLock()
	var out []store.InflightRecord
	for _, r := range s.inflight[clientID] {
		out = append(out, r)
	}
	s.mu.RUnlock()
	store.SortInflight(out)
	return out, nil
}

// QoS2In returns the inbound QoS 2 packet ids, ascending.
func (s *Store) QoS2In(clientID string) ([]uint16, error) {
	s.mu.RLock()
	var out []uint16
	for pid := range s.qos2[clientID] {
		out = append(out, pid)
	}
	s.mu.RUnlock()
	slices.Sort(out)
	return out, nil
}

// MessageCount is the number of distinct message bodies stored for queues.
func (s *Store) MessageCount() (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.msgs), nil
}

// Close refuses further commits (with store.ErrClosed) and returns once
// the callbacks already queued by CommitAsync have run.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.notify.Close()
	return nil
}

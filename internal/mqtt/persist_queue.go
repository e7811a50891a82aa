// A persistent session's stored queue read back: in pages as its memory
// queue drains (so a large backlog is never in memory whole), and its
// in-flight and inbound QoS 2 packet ids when a session restored from the
// store resumes.

package mqtt

import "github.com/mqttd/mqttd/internal/store"

// storePage is how many queued deliveries are read from the store at once.
const storePage = 256

// refillLocked reads the next page of s's backlog into its memory queue
// when the queue runs low and a connection can take it. Caller holds s.mu.
func (b *Broker) refillLocked(s *Session) {
	if !s.disk.backlog || s.client == nil || s.queue.len() >= storePage/2 {
		return
	}
	qs, err := b.disk.Scan(s.id, s.disk.from, storePage)
	if err != nil {
		b.storeFailed(err, "read queue", s.id)
		return
	}
	for i := range qs {
		q := &qs[i]
		s.disk.from, s.disk.loaded = q.Seq+1, q.Seq
		if s.disk.skip[q.Seq] {
			continue
		}
		d, ok := b.queuedDelivery(s, q)
		if ok {
			s.queue.push(d)
		}
	}
	if len(qs) < storePage {
		s.disk.backlog, s.disk.skip = false, nil
	}
}

// queuedDelivery is a stored delivery back in memory; a record that does
// not decode is logged and removed rather than block the queue.
func (b *Broker) queuedDelivery(s *Session, q *store.Queued) (delivery, bool) {
	m, err := messageFrom(q.Msg)
	if err != nil {
		b.log.Error("stored message unreadable: dropped", "client_id", s.id, "seq", q.Seq, "error", err)
		b.dropStoredLocked(s, 0, &delivery{seq: q.Seq})
		return delivery{}, false
	}
	return delivery{msg: m, qos: q.QoS, retain: q.Retain, subIDs: q.SubIDs, group: q.Group, seq: q.Seq}, true
}

// loadRestoredLocked reads the packet ids of a session restored from the
// store when it first resumes: the outbound ones go back into the window,
// to be resent as they were (PUBLISH with DUP, or PUBREL), and the inbound
// QoS 2 ones are held again until PUBREL. Caller holds s.mu.
func (b *Broker) loadRestoredLocked(s *Session) {
	if !s.disk.restored {
		return
	}
	s.disk.restored = false
	ids, err := b.disk.QoS2In(s.id)
	if err != nil {
		b.storeFailed(err, "read packet ids", s.id)
	}
	for _, pid := range ids {
		if s.inQoS2 == nil {
			s.inQoS2 = make(map[uint16]struct{})
		}
		s.inQoS2[pid] = struct{}{}
	}
	recs, err := b.disk.Inflight(s.id)
	if err != nil {
		b.storeFailed(err, "read packet ids", s.id)
	}
	for _, r := range recs {
		e := inflightEntry{pid: r.PacketID, state: awaitComp, d: delivery{seq: r.Seq}}
		if r.State == store.AwaitAck {
			d, ok := b.restoredInflight(s, r)
			if !ok {
				continue
			}
			e.state, e.d = awaitAck, d
		}
		s.inflight.push(max(s.window, len(recs)), e)
		if r.PacketID > s.nextID {
			s.nextID = r.PacketID
		}
	}
}

// restoredInflight reads the queued delivery an in-flight record carries,
// marking it so the backlog does not send it a second time.
func (b *Broker) restoredInflight(s *Session, r store.InflightRecord) (delivery, bool) {
	qs, err := b.disk.Scan(s.id, r.Seq, 1)
	if err != nil || len(qs) == 0 || qs[0].Seq != r.Seq {
		// Its message is gone: nothing to resend.
		b.write(func(bt *store.Batch) { bt.ClearInflight(s.id, r.PacketID) })
		return delivery{}, false
	}
	d, ok := b.queuedDelivery(s, &qs[0])
	if ok {
		if s.disk.skip == nil {
			s.disk.skip = make(map[uint64]bool)
		}
		s.disk.skip[r.Seq] = true
	}
	return d, ok
}

package main

import (
	"bytes"
	"fmt"
	"sync/atomic"
)

// seqWindow is how far back (in sequence numbers) a subscriber can tell a
// duplicate from a late arrival.
const seqWindow = 4096

// seqTrack follows one publisher's sequence numbers at one subscriber.
type seqTrack struct {
	next   uint64 // highest seen + 1
	unique uint64
	seen   [seqWindow / 64]uint64 // ring bitmap of the last seqWindow seqs
}

// see records seq and classifies it. late means it arrived after a higher
// sequence number (reordered, or redelivered after a loss was assumed).
// beyond means it was too old for the bitmap to rule out a duplicate; it
// is then counted as unique and late.
func (t *seqTrack) see(seq uint64) (dup, late, beyond bool) {
	if seq >= t.next {
		gap := seq - t.next
		if gap >= seqWindow {
			t.seen = [seqWindow / 64]uint64{}
		} else {
			// Slots for skipped seqs may still hold bits from seqWindow
			// ago; clear them so a later arrival is not taken for a dup.
			for s := t.next; s < seq; s++ {
				t.seen[s%seqWindow/64] &^= 1 << (s % 64)
			}
		}
		t.seen[seq%seqWindow/64] |= 1 << (seq % 64)
		t.next = seq + 1
		t.unique++
		return false, false, false
	}
	if t.next-seq > seqWindow {
		t.unique++
		return false, true, true
	}
	w, b := seq%seqWindow/64, uint64(1)<<(seq%64)
	if t.seen[w]&b != 0 {
		return true, false, false
	}
	t.seen[w] |= b
	t.unique++
	return false, true, false
}

// subscriber is one subscribing connection and its measurements; all but
// the atomics belong to its reader goroutine until that exits.
type subscriber struct {
	idx    int
	conn   *mconn
	filter string
	hist   histogram
	tracks []seqTrack // indexed by publisher

	unique atomic.Uint64 // unique deliveries, polled while draining
	recv   atomic.Uint64 // all PUBLISH packets, polled for progress

	deliveredInWindow uint64
	dups, late        uint64
	beyond            uint64
	corrupt           uint64
	misrouted         uint64
	badProps          uint64 // -v5-props: deliveries without the sent properties
	failedAcks        uint64 // 5.0: PUBREL with a failure reason code
}

// subPacket handles one packet arriving at a subscriber. It runs once per
// delivered message and must not allocate.
func (r *loadRun) subPacket(s *subscriber, typ, flags byte, body []byte, now int64) error {
	switch typ {
	case typePublish:
	case typePubrel:
		// Second half of QoS 2 receipt: the broker released the message
		// we already counted at PUBLISH time [MQTT-4.3.3-2].
		id, reason, err := r.parseAck(body)
		if err != nil {
			return err
		}
		if reason >= reasonFailure {
			s.failedAcks++
		}
		s.conn.out = appendAck(s.conn.out, typePubcomp, id)
		return nil
	case typePingresp:
		return nil
	case typeDisconnect:
		if r.cfg.v5 {
			return disconnectError(body)
		}
		fallthrough
	default:
		r.protoErrs.add("subscriber %d: unexpected packet type %d", s.idx, typ)
		return nil
	}
	return r.subPublish(s, flags, body, now)
}

// subPublish handles one PUBLISH at a subscriber: it acknowledges it and
// checks what arrived. It must not allocate.
func (r *loadRun) subPublish(s *subscriber, flags byte, body []byte, now int64) error {
	var topic, props, payload []byte
	var qos byte
	var id uint16
	var err error
	if r.cfg.v5 {
		topic, props, payload, qos, id, err = parsePublish5(flags, body)
	} else {
		topic, payload, qos, id, err = parsePublish(flags, body)
	}
	if err != nil {
		return err
	}
	if r.cfg.v5Props && !publishPropsOK(props, v5PropsExpiry, v5PropsKey, v5PropsValue) {
		s.badProps++
	}
	switch qos {
	case 1:
		s.conn.out = appendAck(s.conn.out, typePuback, id)
	case 2:
		s.conn.out = appendAck(s.conn.out, typePubrec, id)
	}
	s.recv.Add(1)
	pubIdx, seq, sentNs, ok := readPayload(payload)
	if !ok || len(payload) != r.cfg.size || int(pubIdx) >= len(r.pubs) {
		s.corrupt++
		return nil
	}
	if !r.expects(s, int(pubIdx)) || !bytes.Equal(topic, r.topics[pubIdx]) {
		s.misrouted++
		return nil
	}
	r.account(s, pubIdx, seq, sentNs, now)
	return nil
}

// account counts one well-formed, well-routed delivery: duplicates, late
// arrivals, latency, and the publisher's closed-loop progress (waking it
// when this delivery was the last one it waited for).
func (r *loadRun) account(s *subscriber, pubIdx uint32, seq uint64, sentNs, now int64) {
	t := &s.tracks[pubIdx]
	before := t.next
	dup, late, beyond := t.see(seq)
	if dup {
		s.dups++
		return
	}
	if late {
		s.late++
	}
	if beyond {
		s.beyond++
	}
	s.unique.Store(s.unique.Load() + 1) // single writer: no read-modify-write needed
	if r.inWindow(now) {
		s.deliveredInWindow++
	}
	if r.inWindow(sentNs) {
		s.hist.record(now - sentNs)
	}
	if t.next != before {
		p := r.pubs[pubIdx]
		p.done[r.slot(s)].Store(t.next)
		if tg := p.target.Load(); before < tg && t.next >= tg {
			if p.remaining.Add(-1) == 0 {
				select {
				case p.wake <- struct{}{}:
				default:
				}
			}
		}
	}
}

// parseAck decodes PUBACK, PUBREC, PUBREL or PUBCOMP in the run's
// protocol; 3.1.1 acks have no reason code and report success.
func (r *loadRun) parseAck(body []byte) (id uint16, reason byte, err error) {
	if r.cfg.v5 {
		return parseAck5(body)
	}
	id, err = parseAck(body)
	return id, reasonSuccess, err
}

// disconnectError describes a DISCONNECT a 5.0 broker sent us; the
// connection ends with it.
func disconnectError(body []byte) error {
	reason, err := parseDisconnect5(body)
	if err != nil {
		return fmt.Errorf("broker sent a malformed DISCONNECT (reason code 0x%02x): %w", reason, err)
	}
	return fmt.Errorf("broker sent DISCONNECT with reason code 0x%02x", reason)
}

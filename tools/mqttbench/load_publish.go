package main

import (
	"sync/atomic"
	"time"
)

// paddedU64 keeps counters written by different goroutines on different
// cache lines: a publisher's per-subscriber progress counters are each
// written by one subscriber goroutine, and packing them would make every
// delivery bounce one line between cores.
type paddedU64 struct {
	atomic.Uint64
	_ [56]byte
}

// publisher is one publishing connection and its closed-loop state.
type publisher struct {
	idx   int
	topic string
	conn  *mconn

	sent  atomic.Uint64 // messages handed to the socket
	acked atomic.Uint64 // PUBACKs (QoS 1) or PUBCOMPs (QoS 2) received

	// done[k] is one past the highest sequence number subscriber slot k
	// has received from this publisher. Using the highest rather than a
	// count means a lost QoS 0 message stops counting as outstanding once
	// a later one arrives, so a lossy broker cannot stall the closed loop.
	done []paddedU64

	// Wake-up protocol for the closed loop. Before sleeping, the publisher
	// stores target (the done value every subscriber must reach), counts
	// the subscribers still below it and adds that count to remaining.
	// A subscriber whose done crosses target decrements remaining, and
	// the one that brings it to zero wakes the publisher. So a 1 -> 100
	// fan-out wakes its publisher once per window step instead of up to
	// 100 times. Races can only cause early wake-ups, after which the
	// publisher re-checks, never a lost one (see waitRoom).
	target    atomic.Uint64
	remaining atomic.Int64
	// ackWaiting tells the reader to wake the publisher after acks.
	ackWaiting atomic.Bool
	wake       chan struct{}

	// inflightIDs marks packet ids sent and not yet fully acknowledged:
	// it refuses to reuse an id the broker still holds and spots acks for
	// ids we never sent.
	inflightIDs [65536 / 32]atomic.Uint32
	// sentAt is when each packet id's PUBLISH was written (run clock),
	// for the publish-to-acknowledgement latency.
	sentAt [65536]atomic.Int64

	// Owned by the publisher goroutine, read after it exits.
	sentInWindow uint64
	minDone      uint64 // cached lower bound of min(done)

	// limit is the most QoS 1/2 publishes left unacknowledged: -inflight
	// (or -window), and in 5.0 no more than the broker's Receive Maximum.
	// Set before the publisher starts.
	limit uint64

	// Owned by the reader goroutine, read after it exits.
	unexpectedAcks uint64
	pubrecs        uint64
	failedAcks     uint64    // 5.0: PUBACK/PUBREC/PUBCOMP with a failure reason code
	ackHist        histogram // PUBLISH written to PUBACK (QoS 1) or PUBCOMP (QoS 2) read, for publishes sent in the window
}

func (p *publisher) idBusy(id uint16) bool {
	return p.inflightIDs[id>>5].Load()&(1<<(id&31)) != 0
}

func (p *publisher) setID(id uint16) { p.inflightIDs[id>>5].Or(1 << (id & 31)) }

// clearID clears id and reports whether it was set.
func (p *publisher) clearID(id uint16) bool {
	old := p.inflightIDs[id>>5].And(^uint32(1 << (id & 31)))
	return old&(1<<(id&31)) != 0
}

// packetID maps a sequence number to a non-zero id [MQTT-2.3.1-1].
func packetID(seq uint64) uint16 { return uint16(seq%65535) + 1 }

// pubPacket handles acknowledgements arriving at a publisher.
func (r *loadRun) pubPacket(p *publisher, typ byte, body []byte, now int64) error {
	switch typ {
	case typePuback, typePubcomp:
		id, reason, err := r.parseAck(body)
		if err != nil {
			return err
		}
		want := byte(typePuback)
		if r.cfg.qos == 2 {
			want = typePubcomp
		}
		if typ != want || !p.clearID(id) {
			p.unexpectedAcks++
			return nil
		}
		if reason >= reasonFailure {
			// The broker refused the message; its id and its Receive
			// Maximum slot are free again, and the loss will show.
			p.failedAcks++
		} else if sent := p.sentAt[id].Load(); r.inWindow(sent) {
			p.ackHist.record(now - sent)
		}
		p.ackDone()
	case typePubrec:
		id, reason, err := r.parseAck(body)
		if err != nil {
			return err
		}
		if r.cfg.qos != 2 || !p.idBusy(id) {
			p.unexpectedAcks++
			return nil
		}
		p.pubrecs++
		if reason >= reasonFailure {
			// 5.0: a failed PUBREC ends the exchange; no PUBREL follows
			// and the slot is free (section 4.3.3).
			p.failedAcks++
			p.clearID(id)
			p.ackDone()
			return nil
		}
		// [MQTT-4.3.3-1] answer PUBREC with PUBREL; batched with the
		// other acks of this read.
		p.conn.out = appendAck(p.conn.out, typePubrel, id)
	case typePingresp:
	case typeDisconnect:
		if r.cfg.v5 {
			return disconnectError(body)
		}
		fallthrough
	default:
		r.protoErrs.add("publisher %d: unexpected packet type %d", p.idx, typ)
	}
	return nil
}

// ackDone counts a finished QoS 1/2 exchange and wakes the publisher if
// it waits for one.
func (p *publisher) ackDone() {
	p.acked.Add(1)
	if p.ackWaiting.Load() {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// burst is how many window slots must be free before a blocked publisher
// resumes: at least 1, at most the window.
func (r *loadRun) burst() uint64 {
	return uint64(min(max(r.cfg.burst, 1), r.cfg.window))
}

// inflightLimit is the most QoS 1/2 publishes a publisher leaves
// unacknowledged; packet ids make 65535 the hard ceiling.
func (r *loadRun) inflightLimit() uint64 {
	n := r.cfg.inflight
	if n <= 0 {
		n = r.cfg.window
	}
	if n <= 0 || n > 65535 {
		n = 65535
	}
	return uint64(n)
}

// roomFor reports whether the publisher may send sequence number seq
// without exceeding its window or in-flight limit. When the delivery
// window is full it arms the wake-up protocol and returns armed = true:
// the caller must then sleep until woken (or re-check at once when the
// arming found every subscriber already past the target).
func (r *loadRun) roomFor(p *publisher, seq uint64) (ok, armed bool) {
	if w := uint64(r.cfg.window); w > 0 && seq-p.minDone >= w {
		p.minDone = minDone(p.done)
		if seq-p.minDone >= w {
			// Sleep until -burst slots are free. The default of 1 keeps
			// the offered load smooth (one message per freed slot, as
			// the research figures were measured); a larger burst wakes
			// the publisher less often but hands the broker bursts and
			// changes what is measured (Mosquitto 2.0.11 p2p QoS 0 here:
			// ~150 k del/s with 1, ~190 k with 32).
			tg := seq - w + r.burst()
			p.remaining.Store(0)
			p.target.Store(tg)
			var below int64
			lo := ^uint64(0)
			for k := range p.done {
				d := p.done[k].Load()
				if d < tg {
					below++
				}
				lo = min(lo, d)
			}
			p.minDone = lo
			if below == 0 || p.remaining.Add(below) <= 0 {
				// Everyone crossed while we were arming.
				return false, false
			}
			return false, true
		}
	}
	if r.cfg.qos > 0 {
		limit := p.limit
		if limit == 0 {
			limit = r.inflightLimit()
		}
		if seq-p.acked.Load() >= limit || p.idBusy(packetID(seq)) {
			p.ackWaiting.Store(true)
			// Re-check after announcing, or an ack that arrived in
			// between would never wake us.
			if seq-p.acked.Load() < limit && !p.idBusy(packetID(seq)) {
				p.ackWaiting.Store(false)
				return true, false
			}
			return false, true
		}
	}
	return true, false
}

func minDone(done []paddedU64) uint64 {
	lo := ^uint64(0)
	for k := range done {
		lo = min(lo, done[k].Load())
	}
	return lo
}

// waitRoom blocks until seq may be sent; false means the run is stopping.
func (r *loadRun) waitRoom(p *publisher, seq uint64) bool {
	for {
		if r.stop.Load() {
			return false
		}
		ok, armed := r.roomFor(p, seq)
		if ok {
			return true
		}
		if armed {
			select {
			case <-p.wake:
			case <-r.stopCh:
				return false
			}
			p.ackWaiting.Store(false)
		}
	}
}

// publish is the publisher goroutine: one write per message, like a
// device, paced by -rate or by the closed-loop window.
func (r *loadRun) publish(p *publisher, start int64) {
	cfg := r.cfg
	payload := make([]byte, cfg.size)
	for i := payloadHeader; i < len(payload); i++ {
		payload[i] = byte('a' + i%26)
	}
	pkt := r.publishPacket(p, payload)
	payOff := len(pkt) - cfg.size
	// The packet id follows the topic (in 5.0 the properties come after
	// it, so it is not simply in front of the payload).
	_, _, body, _, _, _ := parsePacket(pkt)
	idOff := len(pkt) - len(body) + 2 + len(p.topic)

	var timer *time.Timer
	var interval, phase float64
	if cfg.rate > 0 {
		interval = float64(time.Second) / cfg.rate
		phase = float64(p.idx) / float64(len(r.pubs))
		timer = time.NewTimer(time.Hour)
		timer.Stop()
	}
	for seq := uint64(0); ; seq++ {
		if r.stop.Load() {
			return
		}
		if cfg.rate > 0 {
			// Fixed schedule from the common start, each publisher
			// shifted by a fraction of the interval so N publishers do
			// not fire in lock-step bursts. When behind we catch up
			// rather than silently lowering the rate.
			due := start + int64((float64(seq)+phase)*interval)
			if d := due - r.now(); d > 0 {
				timer.Reset(time.Duration(d))
				select {
				case <-timer.C:
				case <-r.stopCh:
					return
				}
			}
		}
		if !r.waitRoom(p, seq) {
			return
		}
		if cfg.qos > 0 {
			id := packetID(seq)
			p.setID(id)
			pkt[idOff] = byte(id >> 8)
			pkt[idOff+1] = byte(id)
		}
		now := r.now()
		if cfg.qos > 0 {
			p.sentAt[packetID(seq)].Store(now)
		}
		stampPayload(pkt[payOff:], uint32(p.idx), seq, now)
		if r.inWindow(now) {
			p.sentInWindow++
		}
		p.sent.Store(seq + 1)
		if _, err := p.conn.c.Write(pkt); err != nil {
			if !r.closing.Load() {
				r.connErrs.add("publisher %d: write: %v", p.idx, err)
			}
			return
		}
	}
}

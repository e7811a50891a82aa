// Persistence of a PUBLISH: the deliveries to persistent sessions, the
// retained change and the inbound QoS 2 packet id of one PUBLISH are one
// store batch; they reach the sessions, and the publisher hears PUBACK or
// PUBREC, only once that batch is durable. Acknowledgements leave in the
// order the publishes arrived, whichever of them waited for the store.

package mqtt

import (
	"errors"
	"sync"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/store"
)

// pubBatch is what routing one message writes to the store.
type pubBatch struct {
	b       store.Batch
	msg     *Message
	ds      []store.Delivery // one per persistent session; Seq set at commit
	targets []storedDelivery // the same sessions, in the same order
}

type storedDelivery struct {
	s *Session
	d delivery
}

// batch is r's store batch, made on first use.
func (r *routed) batch() *pubBatch {
	if r.pb == nil {
		r.pb = new(pubBatch)
	}
	return r.pb
}

// deferToStore takes a QoS 1/2 delivery to a persistent session out of
// routing: it goes into r's batch and is handed to the session once that
// is durable (deliverStored). It reports whether it took d, and what
// became of it. A session whose stored queue is full takes d past its
// bound when it is online and the publisher can be held back (the
// backpressure of queueOnline); otherwise a shared delivery is offered to
// another member and any other is dropped, as the memory queue would.
func (b *Broker) deferToStore(s *Session, r *routed, d delivery) (deliverResult, bool) {
	if !r.persist || d.qos == 0 || d.seq != 0 {
		return delivered, false
	}
	s.mu.Lock()
	if !b.persistent(s) {
		s.mu.Unlock()
		return delivered, false
	}
	msg := r.message()
	d.msg = msg
	size := d.size()
	full := !b.storedFits(s, size)
	if full && b.mayOverrunLocked(s, r, &d) {
		full = false
	}
	if !full {
		s.disk.stored++
		s.disk.bytes += size
	}
	s.mu.Unlock()
	if full {
		if d.group != "" {
			return deliverNoRoom, true
		}
		b.stats.droppedQueued.Add(1)
		return delivered, true
	}
	pb := r.batch()
	pb.msg = msg
	if pb.ds == nil { // room for a typical fan-out without regrowing
		pb.ds, pb.targets = getFanout()
	}
	pb.ds = append(pb.ds, store.Delivery{ClientID: s.id, QoS: d.qos, Retain: d.retain, SubIDs: d.subIDs, Group: d.group})
	pb.targets = append(pb.targets, storedDelivery{s, d})
	return delivered, true
}

// storedFits reports whether one more delivery of size bytes fits s's
// stored queue. Caller holds s.mu.
func (b *Broker) storedFits(s *Session, size int) bool {
	return s.disk.stored < b.limits.MaxQueued && s.disk.bytes+size <= b.limits.MaxQueuedBytes
}

// routeStored routes a message nobody waits to acknowledge (a will, one
// published through the admin API) and commits what it wrote to the store.
func (b *Broker) routeStored(r *routed) int {
	r.persist = b.disk != nil
	_, n := b.route(r, nil)
	b.commitBatch(r.pb, nil)
	return n
}

// commitBatch commits pb (nil: nothing to write) and calls done, if set,
// once it is durable or has failed.
func (b *Broker) commitBatch(pb *pubBatch, done func(error)) {
	if pb == nil {
		return
	}
	l := &b.wlog
	l.mu.Lock()
	defer l.mu.Unlock()
	// A session deleted since routing found it: its delete is queued
	// already (or applied), and would not remove what this batch adds.
	pb.dropUnstored()
	if len(pb.ds) > 0 {
		pb.b.Enqueue(messageRecord(pb.msg), pb.ds)
	}
	b.commitLocked(&pb.b, func(err error) {
		b.committed(pb, err)
		putFanout(pb)
		if done != nil {
			done(err)
		}
	})
}

// dropUnstored leaves out the deliveries to sessions whose stored copy has
// been deleted.
func (pb *pubBatch) dropUnstored() {
	n := 0
	for i, t := range pb.targets {
		if !t.s.unstored.Load() {
			pb.targets[n], pb.ds[n] = t, pb.ds[i]
			n++
		}
	}
	clear(pb.targets[n:])
	clear(pb.ds[n:]) // past their length the lists are zero (putFanouts)
	pb.targets, pb.ds = pb.targets[:n], pb.ds[:n]
}

// committed hands the stored deliveries of pb to their sessions, in commit
// order (callbacks run one at a time), or forgets them when the write
// failed: the publisher is refused, so nothing of it may be delivered to
// the persistent sessions.
func (b *Broker) committed(pb *pubBatch, err error) {
	if err != nil {
		from := ""
		if pb.msg != nil {
			from = pb.msg.From
		}
		b.storeFailed(err, "publish", from)
		for _, t := range pb.targets {
			t.s.mu.Lock()
			t.s.disk.unstore(&t.d)
			t.s.mu.Unlock()
		}
		return
	}
	if len(pb.targets) == 0 {
		return
	}
	r := routedFrom(pb.msg)
	for i, t := range pb.targets {
		t.d.seq = pb.ds[i].Seq
		b.deliverStored(t.s, &r, t.d)
	}
}

// fanoutFree recycles the delivery lists of committed publish batches:
// made afresh for every stored PUBLISH they were an eighth of the broker's
// CPU (allocating and zeroing them, and the collections that followed).
// A free list rather than a sync.Pool, as for the operation slices.
var fanoutFree struct {
	mu    sync.Mutex
	lists []fanout
}

type fanout struct {
	ds      []store.Delivery
	targets []storedDelivery
}

// maxFreeFanouts bounds the free list (a few MiB at most), and fanoutKept
// the length of a list kept. One fsync completes the commits of every
// publisher's window at once, so the list must hold about that many.
const (
	maxFreeFanouts = 2048
	fanoutKept     = 1 << 10
)

func getFanout() ([]store.Delivery, []storedDelivery) {
	fanoutFree.mu.Lock()
	if n := len(fanoutFree.lists); n > 0 {
		f := fanoutFree.lists[n-1]
		fanoutFree.lists[n-1] = fanout{}
		fanoutFree.lists = fanoutFree.lists[:n-1]
		fanoutFree.mu.Unlock()
		return f.ds, f.targets
	}
	fanoutFree.mu.Unlock()
	return make([]store.Delivery, 0, 16), make([]storedDelivery, 0, 16)
}

// putFanout recycles pb's delivery lists once its commit is done with them
// (the store read them while applying; the deliveries are handed over),
// dropping their references.
func putFanout(pb *pubBatch) { putFanouts([]*pubBatch{pb}) }

// putFanouts is putFanout for the publishes of one commit, under one lock.
// Only the lists' lengths are cleared: past them they are zero (appends
// fill them in order; dropUnstored clears what it cuts).
func putFanouts(pbs []*pubBatch) {
	fanoutFree.mu.Lock()
	defer fanoutFree.mu.Unlock()
	for _, pb := range pbs {
		ds, ts := pb.ds, pb.targets
		pb.ds, pb.targets = nil, nil
		if cap(ds) == 0 || cap(ds) > fanoutKept || cap(ts) > fanoutKept || len(fanoutFree.lists) >= maxFreeFanouts {
			continue
		}
		clear(ds)
		clear(ts)
		fanoutFree.lists = append(fanoutFree.lists, fanout{ds[:0], ts[:0]})
	}
}

// deliverStored hands a committed delivery to its session, unless the
// session reads its queue from the store (a backlog, which this delivery
// is now the tail of) or has ended.
func (b *Broker) deliverStored(s *Session, r *routed, d delivery) {
	s.mu.Lock()
	switch {
	case !s.disk.saved:
		s.mu.Unlock() // discarded meanwhile: its stored queue went with it
		return
	case s.disk.backlog || d.seq <= s.disk.loaded:
		s.mu.Unlock()
		return
	case s.queue.len() >= b.limits.MaxQueued || s.queue.bytes+len(r.topic)+len(r.payload)+r.props.Size() > b.limits.MaxQueuedBytes:
		// The memory queue is full: it stays in the store, read when the
		// queue drains.
		s.disk.backlog, s.disk.from = true, d.seq
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if b.deliver(s, r, d) != delivered {
		s.mu.Lock()
		b.dropStoredLocked(s, 0, &d)
		s.mu.Unlock()
	}
}

// dropStoredLocked removes a stored delivery that will never be sent
// (expired, too large, denied) or is acknowledged, with its in-flight
// record when pid is not 0. Caller holds s.mu.
func (b *Broker) dropStoredLocked(s *Session, pid uint16, d *delivery) {
	if d.seq == 0 || !s.disk.saved {
		return
	}
	seq := d.seq
	b.write(func(bt *store.Batch) {
		if pid != 0 && !b.wlog.takeSent(s, pid) {
			bt.ClearInflight(s.id, pid)
		}
		bt.Ack(s.id, seq)
	})
	s.disk.unstore(d)
	b.signalRoomLocked(s) // publishers held back by its stored queue
}

// unstore takes a delivery out of the stored queue's bounds.
func (ds *diskState) unstore(d *delivery) {
	ds.stored = max(ds.stored-1, 0)
	if d.msg != nil {
		ds.bytes = max(ds.bytes-d.size(), 0)
	}
}

// handedOff removes from from's stored queue a shared-subscription
// delivery handed to another member of its group, which has it in memory
// from now on.
func (b *Broker) handedOff(from *Session, d *delivery) {
	if d.seq == 0 {
		return
	}
	from.mu.Lock()
	b.dropStoredLocked(from, 0, d)
	from.mu.Unlock()
}

// storeSentLocked records that a stored delivery went out with packet id
// pid, so a session resumed after a restart resends it with the same id
// ([MQTT-4.4.0-1]). Caller holds s.mu.
func (b *Broker) storeSentLocked(s *Session, pid uint16, d *delivery) {
	if d.seq == 0 || !s.disk.saved {
		return
	}
	b.holdSent(s, store.InflightRecord{PacketID: pid, Seq: d.seq, State: store.AwaitAck}, d.qos)
}

// storeAckLocked records the subscriber's acknowledgement of packet id pid
// carrying stored delivery seq: PUBACK, a refusing PUBREC or PUBCOMP end
// the flow; a PUBREC (rec) leaves only the id, awaiting PUBCOMP. Caller
// holds s.mu.
func (b *Broker) storeAckLocked(s *Session, pid uint16, d *delivery, rec bool) {
	if d.seq == 0 || !s.disk.saved {
		return
	}
	if !rec {
		b.dropStoredLocked(s, pid, d)
		return
	}
	r := store.InflightRecord{PacketID: pid, Seq: d.seq, State: store.AwaitComp}
	b.write(func(bt *store.Batch) {
		b.wlog.takeSent(s, pid) // replaced, never to be written
		bt.SetInflight(s.id, r)
		bt.Ack(s.id, r.Seq)
	})
	s.disk.unstore(d)
	b.signalRoomLocked(s) // publishers held back by its stored queue
}

// storeCompLocked forgets packet id pid once PUBCOMP ends its flow.
func (b *Broker) storeCompLocked(s *Session, pid uint16, seq uint64) {
	if seq == 0 || !s.disk.saved {
		return
	}
	b.write(func(bt *store.Batch) { bt.ClearInflight(s.id, pid) })
}

// storeQoS2In adds the inbound QoS 2 packet id of a persistent session to
// pb (made when nil), so PUBREC leaves only once the id is durable and a
// PUBREL after a restart still finds it. Caller holds s.mu.
func (b *Broker) storeQoS2In(s *Session, pb *pubBatch, pid uint16) *pubBatch {
	if !b.persistent(s) || !s.disk.saved {
		return pb
	}
	if pb == nil {
		pb = new(pubBatch)
	}
	pb.b.AddQoS2In(s.id, pid)
	return pb
}

// ackQueue holds a connection's acknowledgements behind one that waits for
// the store, so they leave in the order their packets arrived. Guarded by
// the session lock.
type ackQueue struct {
	q []*pendingAck
}

type pendingAck struct {
	t      packets.Type
	pid    uint16
	code   packets.ReasonCode
	reason string
	ready  bool  // its store write is durable (or there was none)
	waits  int8  // of the store write and the other nodes' confirmation, how many are outstanding
	held   bool  // backpressure holds it until subscribers have room (backpressure.go)
	err    error // the store write it waited for failed
}

// ackAfter sends an acknowledgement once pb (nil: nothing) is durable and
// fw (nil: nothing) confirmed, and after every acknowledgement queued
// before it. Reader goroutine.
func (c *client) ackAfter(pb *pubBatch, fw *forwardWait, t packets.Type, pid uint16, code packets.ReasonCode, reason string) {
	if pb == nil && fw == nil && c.ackNow(t, pid, code, reason) {
		return // nothing to wait for: the path of every publish without a store
	}
	c.queueAck(pb, fw, t, pid, code, reason, false)
}

// queueAck puts an acknowledgement at the tail of c's ordered ack queue
// and adds the store write of pb (nil: none) it waits for to the read
// batch's commit, and waits for the other nodes to confirm fw (nil:
// nothing forwarded that needs it); held ones also wait for sendAck.
// Reader goroutine.
func (c *client) queueAck(pb *pubBatch, fw *forwardWait, t packets.Type, pid uint16, code packets.ReasonCode, reason string, held bool) *pendingAck {
	s := c.sess
	a := &pendingAck{t: t, pid: pid, code: code, reason: reason, ready: pb == nil && fw == nil, held: held}
	if pb != nil {
		a.waits++
	}
	if fw != nil {
		a.waits++
	}
	s.mu.Lock()
	if c.acks == nil {
		c.acks = new(ackQueue)
	}
	c.acks.q = append(c.acks.q, a)
	if a.ready && !a.held {
		c.flushAcksLocked() // what it queued behind may have gone meanwhile
	}
	s.mu.Unlock()
	if pb != nil {
		c.deferCommit(pb, a) // committed at the end of the read batch
	}
	if fw != nil {
		fw.then(c, a)
	}
	return a
}

// ackReady marks one wait of a done (or failed) and sends every ready
// acknowledgement at the head of the queue.
func (c *client) ackReady(a *pendingAck, err error) {
	s := c.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	c.waitDoneLocked(a, err)
	c.flushAcksLocked()
}

// waitDoneLocked counts one of a's waits (store commit, other nodes'
// confirmation) done, with its error; a is ready when none is left.
// Caller holds the session lock.
func (c *client) waitDoneLocked(a *pendingAck, err error) {
	if a.err == nil {
		a.err = err
	}
	if a.waits--; a.waits <= 0 {
		a.ready = true
	}
}

// flushAcksLocked sends the acknowledgements at the head of the queue that
// wait for nothing more. Caller holds the session lock.
func (c *client) flushAcksLocked() {
	q := c.acks.q
	for len(q) > 0 && q[0].ready && !q[0].held {
		c.sendPendingAck(q[0])
		q[0] = nil
		q = q[1:]
	}
	if len(q) == 0 {
		q = c.acks.q[:0]
	}
	c.acks.q = q
	c.wakeWriterLocked()
}

// sendPendingAck sends a, or refuses the packet it answers when its store
// write failed: MQTT 5 hears 0x97 (quota exceeded) in PUBACK or PUBREC;
// 3.1.1, which has no negative acknowledgement, and a PUBCOMP whose id
// could not be released are answered by closing the connection, so the
// client sends again rather than count it as delivered. Caller holds the
// session lock.
func (c *client) sendPendingAck(a *pendingAck) {
	if a.err == nil {
		c.appendAck(a.t, a.pid, a.code, a.reason)
		return
	}
	if !errors.Is(a.err, ErrForwardUnconfirmed) { // the cluster counts those
		c.b.stats.storeRefused.Add(1)
	}
	if a.t == packets.PUBREC {
		delete(c.sess.inQoS2, a.pid) // not received: a resend is routed again
	}
	if c.version == packets.V5 && a.t != packets.PUBCOMP {
		if errors.Is(a.err, ErrForwardUnconfirmed) {
			c.appendAck(a.t, a.pid, packets.UnspecifiedError, "other nodes did not confirm the message")
			return
		}
		c.appendAck(a.t, a.pid, packets.QuotaExceeded, "the broker could not store the message")
		return
	}
	c.b.log.Warn("closing the connection: a message it sent could not be stored", "client_id", c.info.ClientID)
	c.conn.Close() // the reader ends, and finish tears the rest down
}

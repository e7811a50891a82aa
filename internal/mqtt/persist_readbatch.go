// One store commit per read batch: the store writes of the QoS 1/2
// PUBLISHes (and PUBRELs) a reader handles from one read of a connection
// are gathered and committed together when the batch ends, where the
// reader writes what it owes (writer_inline.go), and the acknowledgements
// they wait for are all released by that commit's one callback. A
// publisher keeping many messages in flight sends them in few reads, and
// a commit of its own for each (a store batch, the write log's lock, a
// Pebble batch and a callback) cost more than the writes themselves.
//
// Nothing is acknowledged earlier than before: each acknowledgement still
// waits for the commit that holds its writes, and leaves through the
// connection's ordered ack queue. A refused commit refuses exactly the
// packets whose writes it held. The batch is bounded by the read buffer
// (what one read brings), and it is committed before the reader waits for
// anything (the points where it writes what it owes), so no wait of the
// reader depends on a commit it holds back.

package mqtt

import "github.com/mqttd/mqttd/internal/store"

// readBatch is what a reader's current read batch has to commit.
type readBatch struct {
	pbs  []*pubBatch   // in the order their packets arrived
	acks []*pendingAck // the acknowledgements waiting for them
}

// deferCommit adds pb, which a waits for, to the read batch's commit.
// Reader goroutine.
func (c *client) deferCommit(pb *pubBatch, a *pendingAck) {
	rb := c.rb
	if rb == nil {
		rb = new(readBatch)
		c.rb = rb
	}
	rb.pbs = append(rb.pbs, pb)
	rb.acks = append(rb.acks, a)
}

// owing says whether the reader has output or a commit to hand on before
// it waits. Reader goroutine.
func (c *client) owing() bool {
	return len(c.owes) > 0 || (c.rb != nil && len(c.rb.pbs) > 0)
}

// commitRead commits the read batch's store writes and releases its
// acknowledgements once they are durable (or refused). Reader goroutine.
func (c *client) commitRead() {
	rb := c.rb
	if rb == nil || len(rb.pbs) == 0 {
		return
	}
	c.rb = nil // the callback owns rb from here
	c.b.commitPubBatches(rb.pbs, func(err error) { c.acksReady(rb.acks, err) })
}

// commitPubBatches commits the store writes of pbs as one batch, in their
// order, and calls done once it is durable (or refused).
func (b *Broker) commitPubBatches(pbs []*pubBatch, done func(error)) {
	l := &b.wlog
	l.mu.Lock()
	defer l.mu.Unlock()
	// The pending writes go first (commitLocked), then every packet's in
	// arrival order, so each session's queue takes them in that order.
	bt := &store.Batch{Ops: getOps()}
	if l.pending.Len() > 0 {
		putOps(bt.Ops)
		bt.Ops = l.takePending()
	}
	for _, pb := range pbs {
		pb.dropUnstored() // see commitBatch
		bt.Ops = append(bt.Ops, pb.b.Ops...)
		if len(pb.ds) > 0 {
			bt.Enqueue(messageRecord(pb.msg), pb.ds)
		}
	}
	b.disk.CommitAsync(bt, func(err error) {
		for _, pb := range pbs {
			b.committed(pb, err)
		}
		putFanouts(pbs)
		putOps(bt.Ops)
		done(err)
	})
}

// acksReady marks the acknowledgements of one commit durable (or failed)
// and sends every ready one at the head of the queue.
func (c *client) acksReady(as []*pendingAck, err error) {
	s := c.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range as {
		c.waitDoneLocked(a, err)
	}
	c.flushAcksLocked()
}

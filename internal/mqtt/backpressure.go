// Backpressure instead of loss: a QoS 1/2 message routed to an online
// subscriber whose queue is full is queued all the same (a soft overrun)
// and its publisher's acknowledgement (PUBACK, PUBREC) is held back until
// that subscriber has room again. The publisher's in-flight window then
// fills and it waits, so an acknowledged message is never dropped for an
// online subscriber. Holding acknowledgements rather than stopping the
// publisher's reader keeps its acknowledgements of what it receives
// flowing: a client publishing to itself, or two clients publishing to
// each other, drain each other while held. Only a publisher holding
// limits.max-inbound-qos2 acknowledgements (the Receive Maximum MQTT 5
// clients are told, which a 3.1.1 client need not know) has its reading
// stopped too.
//
// A subscriber that keeps publishers held longer than
// limits.slow-subscriber-timeout is disconnected (MQTT 5: DISCONNECT 0x97);
// its persistent session then queues offline under max-queued, where a
// drop is counted and logged as before.

package mqtt

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// errSlowSubscriber ends a subscriber that held publishers back longer
// than limits.slow-subscriber-timeout.
var errSlowSubscriber = &protoError{packets.QuotaExceeded, "slow subscriber: queue over max-queued longer than slow-subscriber-timeout"}

// flowControl is a publishing connection's backpressure state: the
// sessions the PUBLISH being routed overran, and the acknowledgements held
// back, in the order they must go out ([MQTT-4.6.0-2], [MQTT-4.6.0-3]).
type flowControl struct {
	by   *client
	over []*Session // filled while routing one PUBLISH (queueOnline)

	mu        sync.Mutex
	held      []heldAck
	releasing bool          // a releaseLoop is running
	since     time.Time     // when acknowledgements began being held
	n         atomic.Int32  // len(held), for the reader's lock-free look
	room      chan struct{} // a session this publisher waits for may have room
	space     chan struct{} // held acknowledgements were released
}

// heldAck is one PUBACK or PUBREC held back until the sessions its message
// overran have room. The acknowledgement itself waits in the client's
// ordered ack queue (persist_publish.go), marked held, so one queue keeps
// the order of acknowledgements waiting for room and for the store alike.
type heldAck struct {
	ack *pendingAck
	on  []*Session
}

// behindWatch is one episode of a session keeping publishers waiting: it
// ends when the session has room, or its connection ends or is cut.
type behindWatch struct {
	timer   *time.Timer // slow-subscriber-timeout; nil when disabled
	stopCtx func() bool // the hook on the subscriber connection's end
}

// flowFor returns c's flow control state, made at its first QoS 1/2
// PUBLISH. Reader goroutine only.
func (c *client) flowFor() *flowControl {
	if c.flow == nil {
		c.flow = &flowControl{by: c, room: make(chan struct{}, 1), space: make(chan struct{}, 1)}
	}
	return c.flow
}

// poke leaves a wake-up token on ch unless one is waiting already: it
// never blocks, so it may run under any lock.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// queueFits reports whether d fits s's queue bounds. Caller holds s.mu.
func (b *Broker) queueFits(s *Session, d *delivery) bool {
	return s.queue.len() < b.limits.MaxQueued && s.queue.bytes+d.size() <= b.limits.MaxQueuedBytes
}

// queueOnline queues d for s, whose connection is attached or which a new
// connection is taking over. When the queue is full, a QoS 1/2 message
// from a client publish is queued past the bound and the publisher is made
// to wait for s (overrun); anything else is dropped as enqueue drops it.
// It reports whether d was queued. Caller holds s.mu.
func (b *Broker) queueOnline(s *Session, r *routed, d delivery) bool {
	if b.queueFits(s, &d) {
		s.queue.push(d)
		return true
	}
	if b.mayOverrunLocked(s, r, &d) {
		s.queue.push(d)
		return true
	}
	return b.enqueue(s, d)
}

// mayOverrunLocked decides whether d, which does not fit s's queue (in
// memory or, for a persistent session, in the store), may go past the
// bound: a QoS 1/2 message from a client publish, for an online session,
// not shared (or shared and no member had room). Then the publisher is
// made to wait for s. Caller holds s.mu.
func (b *Broker) mayOverrunLocked(s *Session, r *routed, d *delivery) bool {
	c := s.client
	online := s.resuming || c != nil && c.ctx.Err() == nil
	if d.qos == 0 || r.hold == nil || (d.group != "" && !d.overrun) || !online {
		return false
	}
	b.stats.queueOverruns.Add(1)
	if !slices.Contains(r.hold.over, s) {
		r.hold.over = append(r.hold.over, s)
	}
	b.addWaiterLocked(s, r.hold)
	return true
}

// roomLocked reports whether publishers waiting for s may go on: s has
// drained to three quarters of its bounds (so one acknowledgement does
// not release them only to hold them again at once), or its connection
// is gone or being cut. Caller holds s.mu.
func (b *Broker) roomLocked(s *Session) bool {
	c := s.client
	if c == nil || c.ctx.Err() != nil {
		return true
	}
	l := &b.limits
	maxN, maxB := l.MaxQueued-l.MaxQueued/4, l.MaxQueuedBytes-l.MaxQueuedBytes/4
	if b.persistent(s) && (s.disk.stored > maxN || s.disk.bytes > maxB) {
		return false // its queue is in the store (persist_publish.go)
	}
	return s.queue.len() <= maxN && s.queue.bytes <= maxB
}

// addWaiterLocked makes f's publisher wait for s, and starts watching how
// long s keeps publishers waiting. Caller holds s.mu.
func (b *Broker) addWaiterLocked(s *Session, f *flowControl) {
	if !slices.Contains(s.waiters, f.by) {
		s.waiters = append(s.waiters, f.by)
	}
	b.watchBehindLocked(s)
}

// watchBehindLocked starts watching how long s keeps its waiters waiting,
// unless a watch runs already or s has no connection to watch (it is
// being resumed: attachLocked starts the watch). Caller holds s.mu.
func (b *Broker) watchBehindLocked(s *Session) {
	if s.behind != nil || s.client == nil {
		return
	}
	sub := s.client
	w := &behindWatch{}
	if t := b.limits.SlowSubscriberTimeout; t > 0 {
		w.timer = time.AfterFunc(t, func() { b.slowTimeout(s, sub, w) })
	}
	// The connection ending (closed, taken over, kicked, the broker
	// shutting down) releases the publishers at once.
	w.stopCtx = context.AfterFunc(sub.ctx, func() { b.releaseWaiters(s) })
	s.behind = w
}

// takeWaitersLocked ends s's waiting episode and returns the publishers to
// tell. Caller holds s.mu.
func takeWaitersLocked(s *Session) []*client {
	ws := s.waiters
	s.waiters = nil
	if w := s.behind; w != nil {
		if w.timer != nil {
			w.timer.Stop()
		}
		w.stopCtx()
		s.behind = nil
	}
	return ws
}

// signalRoomLocked tells the publishers waiting for s that it has room,
// once it has. It only pokes channels, so it may run under s.mu (the
// queue shrinks on the acknowledgement and pump paths).
func (b *Broker) signalRoomLocked(s *Session) {
	if len(s.waiters) > 0 && b.roomLocked(s) {
		for _, p := range takeWaitersLocked(s) {
			poke(p.flow.room)
		}
	}
}

// releaseWaiters tells every publisher waiting for s to look again: its
// connection ended.
func (b *Broker) releaseWaiters(s *Session) {
	s.mu.Lock()
	ws := takeWaitersLocked(s)
	s.mu.Unlock()
	for _, p := range ws {
		poke(p.flow.room)
	}
}

// slowTimeout runs when s has kept publishers waiting for
// slow-subscriber-timeout: if it still has no room, its connection sub is
// cut and the publishers go on.
func (b *Broker) slowTimeout(s *Session, sub *client, w *behindWatch) {
	s.mu.Lock()
	if s.behind != w {
		s.mu.Unlock()
		return // the episode ended meanwhile
	}
	cut := s.client == sub && !b.roomLocked(s)
	if cut {
		sub.slowCut.Store(true)
	}
	queued := s.queue.len()
	ws := takeWaitersLocked(s)
	s.mu.Unlock()
	if cut {
		b.stats.slowSubsCut.Add(1)
		b.log.Warn("slow subscriber disconnected: it held publishers back too long",
			"client_id", s.id, "queued", queued, "max_queued", b.limits.MaxQueued,
			"slow_subscriber_timeout", b.limits.SlowSubscriberTimeout, "publishers_waiting", len(ws))
		sub.conn.SetReadDeadline(time.Unix(1, 0)) // wakes its reader, which ends the connection
		sub.cancel()
	}
	for _, p := range ws {
		poke(p.flow.room)
	}
}

// ackPublish sends the PUBACK or PUBREC of the PUBLISH just routed, or
// holds it back when the message overran a subscriber's queue or an
// earlier acknowledgement is held (they go out in order). With
// max-inbound-qos2 acknowledgements held it stops reading from the client
// until some are released. Reader goroutine.
func (c *client) ackPublish(pb *pubBatch, fw *forwardWait, t packets.Type, pid uint16, code packets.ReasonCode, reason string) {
	f := c.flow
	if f == nil || (len(f.over) == 0 && f.n.Load() == 0) {
		c.ackAfter(pb, fw, t, pid, code, reason)
		return
	}
	h := heldAck{ack: c.queueAck(pb, fw, t, pid, code, reason, true)}
	if len(f.over) > 0 {
		h.on = slices.Clone(f.over)
		f.over = f.over[:0]
	}
	c.b.stats.acksHeld.Add(1)
	f.mu.Lock()
	f.held = append(f.held, h)
	n := len(f.held)
	f.n.Store(int32(n))
	if !f.releasing {
		f.releasing = true
		f.since = time.Now()
		c.b.stats.publishersHeld.Add(1)
		go c.releaseLoop(f)
	}
	f.mu.Unlock()
	poke(f.room) // the loop looks at the new one too
	if n >= c.b.limits.MaxInboundQoS2 {
		c.waitHeldBelowBound(f)
	}
}

// sendAck lets an acknowledgement that is no longer held go out (once the
// store write it may wait for is durable): the one place a PUBACK or PUBREC
// of an inbound PUBLISH leaves the flow control.
func (c *client) sendAck(h *heldAck) {
	s := c.sess
	s.mu.Lock()
	h.ack.held = false
	c.flushAcksLocked()
	s.mu.Unlock()
}

// waitHeldBelowBound stops the reader while the client has
// max-inbound-qos2 acknowledgements held: TCP flow control then slows a
// client that does not wait for them. The connection ending releases it.
func (c *client) waitHeldBelowBound(f *flowControl) {
	c.b.stats.readPauses.Add(1)
	if c.owing() {
		c.flushOwed() // the output of the batch so far does not wait with it
	}
	for int(f.n.Load()) >= c.b.limits.MaxInboundQoS2 {
		select {
		case <-f.space:
		case <-c.ctx.Done():
			return
		}
	}
}

// releaseLoop sends held acknowledgements as the sessions they wait for
// get room, and exits once none is held or the connection ends.
func (c *client) releaseLoop(f *flowControl) {
	for {
		if c.releaseHeld(f) {
			return
		}
		select {
		case <-f.room:
		case <-c.ctx.Done():
			// The connection is ending: what is held is never sent (the
			// client sends its unacknowledged messages again when it
			// resumes, and a QoS 2 one is not routed twice).
			f.mu.Lock()
			f.held = nil
			f.n.Store(0)
			f.releasing = false
			c.b.stats.heldNanos.Add(int64(time.Since(f.since)))
			f.mu.Unlock()
			poke(f.space)
			return
		}
	}
}

// releaseHeld sends the held acknowledgements at the head whose sessions
// have room, in order. It reports true, with the loop's end recorded, when
// none is left.
func (c *client) releaseHeld(f *flowControl) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ready []*Session // sessions seen with room in this pass
	i := 0
	for ; i < len(f.held); i++ {
		if !c.b.mayRelease(f, f.held[i].on, &ready) {
			break
		}
	}
	if i > 0 {
		for k := range f.held[:i] {
			c.sendAck(&f.held[k]) // under f.mu: in order, and before the reader sees none held
		}
		f.held = append(f.held[:0], f.held[i:]...)
		clear(f.held[len(f.held):cap(f.held)])
		f.n.Store(int32(len(f.held)))
		poke(f.space)
	}
	if len(f.held) > 0 {
		return false
	}
	f.releasing = false
	c.b.stats.heldNanos.Add(int64(time.Since(f.since)))
	return true
}

// mayRelease reports whether every session in on has room; one that has
// not gets f's publisher back among its waiters, so its room wakes the
// loop again. ready caches the sessions found with room. Caller holds f.mu.
func (b *Broker) mayRelease(f *flowControl, on []*Session, ready *[]*Session) bool {
	for _, s := range on {
		if slices.Contains(*ready, s) {
			continue
		}
		s.mu.Lock()
		ok := b.roomLocked(s)
		if !ok {
			b.addWaiterLocked(s, f)
		}
		s.mu.Unlock()
		if !ok {
			return false
		}
		*ready = append(*ready, s)
	}
	return true
}

// The session queue and the inflight window: queueing deliveries that cannot
// go out yet, and pumping them into the write buffer as the window opens
// (under the session lock, or on the writer goroutine when each one waits
// for a receive check).

package mqtt

import "time"

// sendInflight assigns a packet id, encodes the delivery and records it in
// the window. A delivery that has expired or is too large for the client is
// dropped as if it had completed ([MQTT5-3.1.2-25]). Caller holds s.mu.
func (b *Broker) sendInflight(s *Session, c *client, d delivery) bool {
	pid := s.nextPacketID()
	if !c.appendDelivery(&d, pid, false) {
		b.dropStoredLocked(s, 0, &d)
		return false
	}
	s.inflight.push(s.window, inflightEntry{pid: pid, state: awaitAck, d: d})
	b.storeSentLocked(s, pid, &d)
	return true
}

// sendRouted is sendInflight for a message on its way through route. A
// clean session's window keeps no copy of the message: the session ends
// with its connection, so nothing in its window is ever sent again
// ([MQTT-4.4.0-1] resends only on a resumed session), and the PUBLISH is
// encoded straight from the routed bytes. The copy is kept where the
// message may go out again: a persistent session's window (resent on
// reconnect), and a shared subscription's delivery, which goes to another
// member of its group when this one leaves with it unacknowledged. A
// session turns clean (an MQTT 5 DISCONNECT setting its expiry to 0) but
// never back, so a window without copies is never resent. Caller holds s.mu.
func (b *Broker) sendRouted(s *Session, c *client, r *routed, d delivery) bool {
	if !s.clean || d.group != "" {
		d.msg = r.message()
		return b.sendInflight(s, c, d)
	}
	pid := s.nextPacketID()
	if !c.appendPublish(r.topic, r.payload, r.props, r.created(), d.qos, pid, d.retain, false, d.subIDs) {
		return false // expired or too large: dropped as if completed
	}
	s.inflight.push(s.window, inflightEntry{pid: pid, state: awaitAck, d: d})
	return true
}

// enqueue adds d to s's queue unless it is full, and reports whether it
// did. The drop policy: the new message is the one dropped (the queue keeps
// its order), counted, and for QoS 1/2 logged at most once a minute per
// session. A shared-subscription message is not counted here: offerShared
// offers it to another member first. An online subscriber's queue goes
// through queueOnline, which holds the publisher back instead.
func (b *Broker) enqueue(s *Session, d delivery) bool {
	if !b.queueFits(s, &d) {
		if d.group != "" {
			return false
		}
		if d.qos == 0 {
			b.stats.droppedQoS0.Add(1)
			return false
		}
		b.stats.droppedQueued.Add(1)
		if now := time.Now(); now.Sub(s.dropLogged) > time.Minute {
			s.dropLogged = now
			b.log.Warn("session queue full: dropping QoS 1/2 messages",
				"client_id", s.id, "max_queued", b.limits.MaxQueued, "max_queued_bytes", b.limits.MaxQueuedBytes,
				"queued", s.queue.len(), "queued_bytes", s.queue.bytes, "topic", d.msg.Topic)
		}
		return false
	}
	s.queue.push(d)
	return true
}

// pumpLocked moves queued deliveries into the window of the attached
// connection. With a topic checker the writer does this (pumpChecked,
// deliverQueuedChecked), since each delivery waits for a receive check
// first. own says the caller is the connection's reader goroutine, which
// then writes what was sent itself (wakeOwnLocked). Caller holds s.mu.
func (b *Broker) pumpLocked(s *Session, own bool) {
	b.pumpQueueLocked(s, own)
	b.signalRoomLocked(s)
}

// pumpQueueLocked is pumpLocked without the room signal. Caller holds s.mu.
func (b *Broker) pumpQueueLocked(s *Session, own bool) {
	c := s.client
	if c == nil || s.queue.len() == 0 {
		return
	}
	if b.hooks.Topics != nil {
		c.wakeWriterLocked()
		return
	}
	sent := false
	for s.queue.len() > 0 {
		d := s.queue.peek()
		if d.qos > 0 && s.inflight.full(s.window) {
			break
		}
		dd := s.queue.pop()
		if dd.qos == 0 {
			sent = c.appendDelivery(&dd, 0, false) || sent
		} else {
			sent = b.sendInflight(s, c, dd) || sent
		}
	}
	switch {
	case sent && own:
		c.wakeOwnLocked()
	case sent:
		c.wakeWriterLocked()
	}
}

// pumpable reports whether the head of s's queue may go out now.
func (b *Broker) pumpable(s *Session) bool {
	return s.queue.len() > 0 && (s.queue.peek().qos == 0 || !s.inflight.full(s.window))
}

// pumpChecked runs the receive check for each queued delivery, outside the
// session lock, and sends the ones allowed: the deliverQueuedChecked mode.
// Runs on c's writer goroutine; c.checking tells publishers a check is
// under way.
func (c *client) pumpChecked() {
	b := c.b
	s := c.sess
	for {
		s.mu.Lock()
		b.signalRoomLocked(s) // what was taken off the queue may make room
		if s.client != c || !b.pumpable(s) {
			s.mu.Unlock()
			return
		}
		d := s.queue.pop()
		if receiveGranted(&c.info, d.cover) || grantAllows(&c.info, ActionReceive, d.msg.Topic) {
			// The receiver's grants decide it: no check to wait for, so
			// it goes out as it would with no checker.
			if d.qos == 0 {
				c.appendDelivery(&d, 0, false)
			} else {
				b.sendInflight(s, c, d)
			}
			s.mu.Unlock()
			continue
		}
		c.checking = true
		s.mu.Unlock()

		res := b.hooks.Topics.CheckTopic(c.ctx, &c.info, TopicRequest{Action: ActionReceive, Topic: d.msg.Topic, QoS: d.qos, Retain: d.retain, InlineMissed: d.inlineMissed})
		s.mu.Lock()
		c.checking = false
		decided := c.ctx.Err() == nil // else the connection is ending: the answer may not be the checker's
		if decided && !res.Allow {
			b.dropStoredLocked(s, 0, &d)
			s.mu.Unlock()
			b.logDenied(&c.info, "receive", d.msg.Topic, res)
			if d.group != "" {
				b.handBackShared(s, d) // another member may be allowed it
			}
			continue
		}
		switch {
		case s.client != c || !decided:
			if d.qos > 0 && !s.clean {
				// The connection went away meanwhile: back to the head,
				// ahead of anything queued since, and not subject to the
				// bound (a publisher may have filled the slot meanwhile).
				s.queue.pushFront(d)
			}
			s.mu.Unlock()
			return
		case d.qos == 0:
			c.appendDelivery(&d, 0, false)
		default:
			b.sendInflight(s, c, d)
		}
		s.mu.Unlock()
	}
}

package mqtt

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// match is one subscribing session found for a routed message.
type match struct {
	s   *Session
	qos byte
}

// route delivers r to every session subscribed to its topic, once per
// session at the highest QoS of its matching subscriptions. scratch is the
// caller's reusable match slice, returned for the next call: routing
// allocates nothing for QoS 0 and one shared copy of the message for QoS 1/2.
func (b *Broker) route(r *routed, scratch []match) []match {
	ms := scratch[:0]
	b.subs.Match(r.topic, func(s *Session, sub subscription) {
		ms = append(ms, match{s, sub.qos})
	})
	if len(ms) > 1 {
		// Overlapping subscriptions of one client: one copy, highest QoS.
		slices.SortFunc(ms, func(a, b match) int { return cmp.Compare(a.s.seq, b.s.seq) })
		w := 0
		for _, m := range ms[1:] {
			if m.s == ms[w].s {
				ms[w].qos = max(ms[w].qos, m.qos)
				continue
			}
			w++
			ms[w] = m
		}
		clear(ms[w+1:])
		ms = ms[:w+1]
	}
	for _, m := range ms {
		// Delivered QoS is the lower of the publish's and the subscription's.
		b.deliver(m.s, r, min(r.qos, m.qos), false)
	}
	clear(ms)
	return ms[:0]
}

// deliver hands one message to one session: straight into the attached
// connection's write buffer when the window allows, else into the session's
// queue (bounded by MaxQueued).
func (b *Broker) deliver(s *Session, r *routed, qos byte, retain bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.client
	switch {
	case c == nil:
		// Offline: a persistent session keeps QoS 1/2 for its return.
		if qos > 0 && !s.clean {
			b.enqueue(s, delivery{msg: r.message(), qos: qos, retain: retain})
			if b.evMask.Has(EventRetainedMessage) {
				b.emit(&Event{Type: EventRetainedMessage, Topic: r.topic, QoS: qos, Message: r.message(), TargetID: s.id})
			}
		}
	case b.hooks.Topics != nil:
		// Receive checks run on the subscriber's writer goroutine so a slow
		// answer holds back only this subscriber.
		b.enqueue(s, delivery{msg: r.message(), qos: qos, retain: retain})
		c.kickLocked()
	case qos == 0:
		if len(c.out) >= b.limits.MaxOutboundBytes {
			b.stats.droppedQoS0.Add(1)
			return
		}
		c.appendPublish(r.topic, r.payload, 0, 0, retain, false)
		c.kickLocked()
	case s.queue.len() == 0 && !s.inflight.full(b.limits.MaxInflight):
		b.sendInflight(s, c, delivery{msg: r.message(), qos: qos, retain: retain})
		c.kickLocked()
	default:
		b.enqueue(s, delivery{msg: r.message(), qos: qos, retain: retain})
	}
}

// sendInflight assigns a packet id, records the delivery in the window and
// encodes it. Caller holds s.mu.
func (b *Broker) sendInflight(s *Session, c *client, d delivery) {
	pid := s.nextPacketID()
	s.inflight.push(b.limits.MaxInflight, inflightEntry{pid: pid, state: awaitAck, d: d})
	c.appendPublish(d.msg.Topic, d.msg.Payload, d.qos, pid, d.retain, false)
}

// enqueue adds d to s's queue unless it is full. The drop policy: the new
// message is the one dropped (the queue keeps its order), counted, and for
// QoS 1/2 logged at most once a minute per session.
func (b *Broker) enqueue(s *Session, d delivery) {
	if s.queue.len() >= b.limits.MaxQueued {
		if d.qos == 0 {
			b.stats.droppedQoS0.Add(1)
			return
		}
		b.stats.droppedQueued.Add(1)
		if now := time.Now(); now.Sub(s.dropLogged) > time.Minute {
			s.dropLogged = now
			b.log.Warn("session queue full: dropping QoS 1/2 messages",
				"client_id", s.id, "max_queued", b.limits.MaxQueued, "topic", d.msg.Topic)
		}
		return
	}
	s.queue.push(d)
}

// pumpLocked moves queued deliveries into the window of the attached
// connection. With a topic checker the writer does this (pumpChecked),
// since each delivery waits for a receive check first. Caller holds s.mu.
func (b *Broker) pumpLocked(s *Session) {
	c := s.client
	if c == nil || s.queue.len() == 0 {
		return
	}
	if b.hooks.Topics != nil {
		c.kickLocked()
		return
	}
	sent := false
	for s.queue.len() > 0 {
		d := s.queue.peek()
		if d.qos > 0 && s.inflight.full(b.limits.MaxInflight) {
			break
		}
		dd := s.queue.pop()
		if dd.qos == 0 {
			c.appendPublish(dd.msg.Topic, dd.msg.Payload, 0, 0, dd.retain, false)
		} else {
			b.sendInflight(s, c, dd)
		}
		sent = true
	}
	if sent {
		c.kickLocked()
	}
}

// pumpable reports whether the head of s's queue may go out now.
func (b *Broker) pumpable(s *Session) bool {
	return s.queue.len() > 0 && (s.queue.peek().qos == 0 || !s.inflight.full(b.limits.MaxInflight))
}

// pumpChecked runs the receive check for each queued delivery, outside the
// session lock, and sends the ones allowed. Runs on c's writer goroutine.
func (c *client) pumpChecked() {
	b := c.b
	s := c.sess
	for {
		s.mu.Lock()
		if s.client != c || !b.pumpable(s) {
			s.mu.Unlock()
			return
		}
		d := s.queue.pop()
		s.mu.Unlock()

		res := b.hooks.Topics.CheckTopic(c.ctx, &c.info, TopicRequest{Action: ActionReceive, Topic: d.msg.Topic, QoS: d.qos, Retain: d.retain})
		if !res.Allow {
			continue
		}
		s.mu.Lock()
		switch {
		case s.client != c:
			if d.qos > 0 && !s.clean {
				b.enqueue(s, d) // the connection went away meanwhile
			}
		case d.qos == 0:
			c.appendPublish(d.msg.Topic, d.msg.Payload, 0, 0, d.retain, false)
		default:
			b.sendInflight(s, c, d)
		}
		s.mu.Unlock()
	}
}

// appendPublish encodes a PUBLISH into the write buffer. Caller holds s.mu.
func (c *client) appendPublish(topic string, payload []byte, qos byte, pid uint16, retain, dup bool) {
	p := packets.Publish{Topic: topic, Payload: payload, QoS: qos, PacketID: pid, Retain: retain, Dup: dup}
	mark := len(c.out)
	c.out, _ = p.Append(c.out, c.version)
	c.outMsgs++
	c.outPkts++
	if c.b.evMask.Has(EventPacketSent) {
		c.b.emitSent(&c.info, c.out[mark:], c.version)
	}
}

// appendAck encodes PUBACK, PUBREC, PUBREL or PUBCOMP. Caller holds s.mu.
func (c *client) appendAck(t packets.Type, pid uint16) {
	mark := len(c.out)
	switch t {
	case packets.PUBACK:
		p := packets.Puback{PacketID: pid}
		c.out, _ = p.Append(c.out, c.version)
	case packets.PUBREC:
		p := packets.Pubrec{PacketID: pid}
		c.out, _ = p.Append(c.out, c.version)
	case packets.PUBREL:
		p := packets.Pubrel{PacketID: pid}
		c.out, _ = p.Append(c.out, c.version)
	case packets.PUBCOMP:
		p := packets.Pubcomp{PacketID: pid}
		c.out, _ = p.Append(c.out, c.version)
	}
	c.outPkts++
	if c.b.evMask.Has(EventPacketSent) {
		c.b.emitSent(&c.info, c.out[mark:], c.version)
	}
}

// appendSimple encodes a packet with no variable header (PINGRESP).
func (c *client) appendSimple(t packets.Type) {
	c.out = append(c.out, byte(t)<<4, 0)
	c.outPkts++
	if c.b.evMask.Has(EventPacketSent) {
		c.b.emitSent(&c.info, c.out[len(c.out)-2:], c.version)
	}
}

// setRetained stores or clears the retained message for r's topic
// ([MQTT-3.3.1-5]; [MQTT-3.3.1-10] an empty payload removes it).
func (b *Broker) setRetained(r *routed, from *ClientInfo) {
	if len(r.payload) == 0 {
		b.retain.Delete(r.topic)
	} else {
		b.retain.Set(strings.Clone(r.topic), r.message())
	}
	if b.evMask.Has(EventRetainedMessage) {
		b.emit(&Event{Type: EventRetainedMessage, Client: from, Topic: r.topic, QoS: r.qos, Message: r.message()})
	}
}

// publishWill routes a will as if its client had published it.
func (b *Broker) publishWill(m *Message) {
	if isSysTopic(m.Topic) {
		b.stats.droppedSys.Add(1)
		return
	}
	m.Created = time.Now()
	r := routedFrom(m)
	if m.Retain {
		b.setRetained(&r, nil)
	}
	b.route(&r, nil)
}

// emitSent reports an encoded outbound packet to the event sink.
func (b *Broker) emitSent(ci *ClientInfo, raw []byte, v packets.Version) {
	if !b.evMask.Has(EventPacketSent) {
		return
	}
	if pk := decodeCopy(raw, v); pk != nil {
		b.emit(&Event{Type: EventPacketSent, Client: ci, Packet: pk})
	}
}

// emitReceived reports an inbound packet to the event sink.
func (b *Broker) emitReceived(ci *ClientInfo, fh packets.FixedHeader, body []byte, v packets.Version) {
	if pk, err := packets.Decode(fh, body, v); err == nil {
		b.emit(&Event{Type: EventPacketReceived, Client: ci, Packet: pk})
	}
}

// decodeCopy decodes a whole encoded packet; only the event path uses it,
// so the hot path never boxes a packet into an interface.
func decodeCopy(raw []byte, v packets.Version) packets.Packet {
	fh, n, err := packets.DecodeFixedHeader(raw)
	if err != nil {
		return nil
	}
	pk, err := packets.Decode(fh, raw[n:n+fh.Remaining], v)
	if err != nil {
		return nil
	}
	return pk
}

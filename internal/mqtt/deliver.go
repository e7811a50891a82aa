package mqtt

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// match is one subscription found for a routed message.
type match struct {
	s   *Session
	sub subscription
}

// route delivers r to every session subscribed to its topic, once per
// session at the highest QoS of its matching subscriptions
// ([MQTT-3.3.5-1]), and to one member of each matching shared subscription
// group. scratch is the caller's reusable match slice, returned for the next
// call. It reports how many sessions the message was delivered to. Routing
// allocates nothing for QoS 0 and one shared copy of the message for QoS 1/2.
func (b *Broker) route(r *routed, scratch []match) ([]match, int) {
	ms := scratch[:0]
	b.subs.Match(r.topic, func(s *Session, sub subscription) {
		ms = append(ms, match{s, sub})
	})
	if len(ms) > 1 {
		slices.SortFunc(ms, func(a, b match) int { return cmp.Compare(a.s.seq, b.s.seq) })
	}
	n := 0
	for i := 0; i < len(ms); {
		j := i + 1
		for j < len(ms) && ms[j].s == ms[i].s {
			j++
		}
		if b.deliverMatches(r, ms[i:j]) {
			n++
		}
		i = j
	}
	clear(ms)
	if b.shared.Len() > 0 {
		n = b.routeShared(r, n)
	}
	return ms[:0], n
}

// deliverMatches merges one session's matching subscriptions into a single
// delivery: highest QoS, RETAIN kept if any asked Retain As Published, every
// Subscription Identifier ([MQTT-3.3.4-3]).
func (b *Broker) deliverMatches(r *routed, run []match) bool {
	s := run[0].s
	if len(run) == 1 && run[0].sub.opts == 0 && run[0].sub.subID == 0 {
		// The common case: one plain subscription.
		b.deliver(s, r, delivery{qos: min(r.qos, run[0].sub.qos)})
		return true
	}
	var d delivery
	found := false
	for _, m := range run {
		// [MQTT-3.8.3-3] No Local: not to the client that published it.
		if m.sub.noLocal() && r.from == s.id {
			continue
		}
		found = true
		d.qos = max(d.qos, m.sub.qos)
		d.retain = d.retain || (m.sub.rap() && r.retain)
		if m.sub.subID != 0 {
			d.subIDs = append(d.subIDs, m.sub.subID)
		}
	}
	if !found {
		return false
	}
	// Delivered QoS is the lower of the publish's and the subscription's.
	d.qos = min(r.qos, d.qos)
	b.deliver(s, r, d)
	return true
}

// deliver hands one message to one session: straight into the attached
// connection's write buffer when the window allows, else into the session's
// queue (bounded by MaxQueued).
func (b *Broker) deliver(s *Session, r *routed, d delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.client
	if c != nil && b.hooks.Topics != nil {
		switch b.receiveNow(s, c, r, &d) {
		case checkDenied:
			return
		case checkLater:
			// Receive checks that may wait run on the subscriber's writer
			// goroutine, so a slow answer holds back only this subscriber.
			d.msg = r.message()
			b.enqueue(s, d)
			c.kickLocked()
			return
		}
	}
	switch {
	case c == nil:
		// Offline: a persistent session keeps QoS 1/2 for its return.
		if d.qos > 0 && !s.clean {
			d.msg = r.message()
			b.enqueue(s, d)
			if b.evMask().Has(EventRetainedMessage) {
				b.emit(&Event{Type: EventRetainedMessage, Topic: r.topic, QoS: d.qos, Message: d.msg, TargetID: s.id})
			}
		}
	case d.qos == 0:
		if len(c.out) >= b.limits.MaxOutboundBytes {
			b.stats.droppedQoS0.Add(1)
			return
		}
		if c.appendPublish(r.topic, r.payload, r.props, r.created(), 0, 0, d.retain, false, d.subIDs) {
			c.kickLocked()
		}
	case s.queue.len() == 0 && !s.inflight.full(s.window):
		d.msg = r.message()
		if b.sendInflight(s, c, d) {
			c.kickLocked()
		}
	default:
		d.msg = r.message()
		b.enqueue(s, d)
	}
}

// A receive check decided in line, or left for the writer goroutine.
const (
	checkAllowed = iota
	checkDenied
	checkLater
)

// receiveNow asks the checker for an answer it can give at once. Only when
// nothing for this subscriber is queued or being checked: a message
// decided in line must not overtake one still waiting for its check.
// Caller holds s.mu.
func (b *Broker) receiveNow(s *Session, c *client, r *routed, d *delivery) int {
	if b.topicsNow == nil || c.checking || s.queue.len() > 0 {
		return checkLater
	}
	res, ok := b.topicsNow.CheckTopicNow(&c.info, TopicRequest{Action: ActionReceive, Topic: r.topic, QoS: d.qos, Retain: d.retain})
	switch {
	case !ok:
		return checkLater
	case !res.Allow:
		return checkDenied
	}
	return checkAllowed
}

// sendInflight assigns a packet id, encodes the delivery and records it in
// the window. A delivery that has expired or is too large for the client is
// dropped as if it had completed ([MQTT-3.1.2-25]). Caller holds s.mu.
func (b *Broker) sendInflight(s *Session, c *client, d delivery) bool {
	pid := s.nextPacketID()
	if !c.appendDelivery(&d, pid, false) {
		return false
	}
	s.inflight.push(s.window, inflightEntry{pid: pid, state: awaitAck, d: d})
	return true
}

// appendDelivery encodes a stored delivery. Caller holds s.mu.
func (c *client) appendDelivery(d *delivery, pid uint16, dup bool) bool {
	m := d.msg
	return c.appendPublish(m.Topic, m.Payload, m.Props, m.Created, d.qos, pid, d.retain, dup, d.subIDs)
}

// appendPublish encodes a PUBLISH into the write buffer. props are the
// publisher's MQTT 5 properties (nil for none) and created is when the
// message entered the broker (zero: just now), for Message Expiry. It
// encodes nothing and reports false when the message has expired or the
// packet would exceed the client's Maximum Packet Size. Caller holds s.mu.
func (c *client) appendPublish(topic string, payload []byte, props *packets.Properties, created time.Time,
	qos byte, pid uint16, retain, dup bool, subIDs []uint32) bool {
	mark := len(c.out)
	if props != nil || (len(subIDs) > 0 && c.version == packets.V5) {
		var ok bool
		if c.out, ok = c.appendWithProps(topic, payload, props, created, qos, pid, retain, dup, subIDs); !ok {
			return false
		}
	} else {
		c.out, _ = packets.AppendPublish(c.out, c.version, topic, payload, qos, pid, retain, dup, nil)
	}
	if c.maxOut > 0 && len(c.out)-mark > c.maxOut {
		c.out = c.out[:mark]
		c.b.stats.droppedTooLarge.Add(1)
		return false
	}
	c.outMsgs++
	c.outPkts++
	if c.b.evMask().Has(EventPacketSent) {
		c.b.emitSent(&c.info, c.out[mark:], c.version)
	}
	return true
}

// appendWithProps is appendPublish's path for messages with properties (or
// Subscription Identifiers to add); apart so that the plain path never pays
// for zeroing a Properties value.
func (c *client) appendWithProps(topic string, payload []byte, props *packets.Properties, created time.Time,
	qos byte, pid uint16, retain, dup bool, subIDs []uint32) ([]byte, bool) {
	var out packets.Properties
	if props != nil {
		if props.Has(packets.PropMessageExpiry) {
			// [MQTT-3.3.2-5] an expired message is not delivered; the
			// interval sent on is what is left of it ([MQTT-3.3.2-6]).
			left := int64(props.MessageExpiry)
			if !created.IsZero() {
				left -= int64(time.Since(created) / time.Second)
			}
			if left <= 0 {
				c.b.stats.droppedExpired.Add(1)
				return c.out, false
			}
			out = *props
			out.MessageExpiry = uint32(left)
		} else {
			out = *props
		}
		// A topic alias belongs to the publisher's own connection; the
		// Subscription Identifiers are the receiver's, set below.
		out.Clear(packets.PropTopicAlias)
		out.Clear(packets.PropSubscriptionID)
	}
	if len(subIDs) > 0 {
		out.SubscriptionIDs = subIDs
	}
	buf, _ := packets.AppendPublish(c.out, c.version, topic, payload, qos, pid, retain, dup, &out)
	return buf, true
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
	if sent {
		c.kickLocked()
	}
}

// pumpable reports whether the head of s's queue may go out now.
func (b *Broker) pumpable(s *Session) bool {
	return s.queue.len() > 0 && (s.queue.peek().qos == 0 || !s.inflight.full(s.window))
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
		c.checking = true
		s.mu.Unlock()

		res := b.hooks.Topics.CheckTopic(c.ctx, &c.info, TopicRequest{Action: ActionReceive, Topic: d.msg.Topic, QoS: d.qos, Retain: d.retain})
		s.mu.Lock()
		c.checking = false
		if !res.Allow {
			s.mu.Unlock()
			continue
		}
		switch {
		case s.client != c:
			if d.qos > 0 && !s.clean {
				b.enqueue(s, d) // the connection went away meanwhile
			}
		case d.qos == 0:
			c.appendDelivery(&d, 0, false)
		default:
			b.sendInflight(s, c, d)
		}
		s.mu.Unlock()
	}
}

// appendAck encodes PUBACK, PUBREC, PUBREL or PUBCOMP. code and reason are
// MQTT 5's (3.1.1 encodes neither); the reason string goes only to clients
// that asked for problem information ([MQTT-3.1.2-29]). One case per type
// rather than appendControl: boxing the ack in a packets.Packet would
// allocate on the QoS 1/2 hot path. Caller holds s.mu.
func (c *client) appendAck(t packets.Type, pid uint16, code packets.ReasonCode, reason string) {
	if !c.problemInfo {
		reason = ""
	}
	mark := len(c.out)
	c.out = appendAckPacket(c.out, c.version, t, pid, code, reason)
	if reason != "" && c.maxOut > 0 && len(c.out)-mark > c.maxOut {
		// [MQTT-3.4.2-2] and friends: no reason string that would take
		// the packet past the client's Maximum Packet Size.
		c.out = appendAckPacket(c.out[:mark], c.version, t, pid, code, "")
	}
	c.outPkts++
	if c.b.evMask().Has(EventPacketSent) {
		c.b.emitSent(&c.info, c.out[mark:], c.version)
	}
}

func appendAckPacket(dst []byte, v packets.Version, t packets.Type, pid uint16, code packets.ReasonCode, reason string) []byte {
	if code == packets.Success && reason == "" {
		// The common ack, 4 bytes in both versions (MQTT 5 leaves out a
		// success code with no properties, 3.4.2.1); PUBREL's flags are 0010.
		var flags byte
		if t == packets.PUBREL {
			flags = 0x02
		}
		return append(dst, byte(t)<<4|flags, 2, byte(pid>>8), byte(pid))
	}
	var props packets.Properties
	props.ReasonString = reason
	switch t {
	case packets.PUBACK:
		p := packets.Puback{PacketID: pid, ReasonCode: code, Props: props}
		dst, _ = p.Append(dst, v)
	case packets.PUBREC:
		p := packets.Pubrec{PacketID: pid, ReasonCode: code, Props: props}
		dst, _ = p.Append(dst, v)
	case packets.PUBREL:
		p := packets.Pubrel{PacketID: pid, ReasonCode: code, Props: props}
		dst, _ = p.Append(dst, v)
	case packets.PUBCOMP:
		p := packets.Pubcomp{PacketID: pid, ReasonCode: code, Props: props}
		dst, _ = p.Append(dst, v)
	}
	return dst
}

// appendControl encodes a control packet that is not on the message path
// (CONNACK, SUBACK, UNSUBACK, AUTH, DISCONNECT). Caller holds s.mu.
func (c *client) appendControl(p packets.Packet) {
	mark := len(c.out)
	c.out, _ = p.Append(c.out, c.version)
	if c.maxOut > 0 && len(c.out)-mark > c.maxOut && stripProblemInfo(p) {
		c.out, _ = p.Append(c.out[:mark], c.version)
	}
	c.outPkts++
	if c.b.evMask().Has(EventPacketSent) {
		c.b.emitSent(&c.info, c.out[mark:], c.version)
	}
}

// stripProblemInfo drops the reason string and user properties of a control
// packet, which the server must leave out rather than exceed the client's
// Maximum Packet Size ([MQTT-3.1.2-25], e.g. [MQTT-3.2.2-19]). It reports
// whether there was anything to drop.
func stripProblemInfo(p packets.Packet) bool {
	var props *packets.Properties
	switch p := p.(type) {
	case *packets.Connack:
		props = &p.Props
	case *packets.Suback:
		props = &p.Props
	case *packets.Unsuback:
		props = &p.Props
	case *packets.Disconnect:
		props = &p.Props
	case *packets.Auth:
		props = &p.Props
	default:
		return false
	}
	had := props.Has(packets.PropReasonString) || props.Has(packets.PropUser)
	props.Clear(packets.PropReasonString)
	props.Clear(packets.PropUser)
	return had
}

// appendSimple encodes a packet with no variable header (PINGRESP).
func (c *client) appendSimple(t packets.Type) {
	c.out = append(c.out, byte(t)<<4, 0)
	c.outPkts++
	if c.b.evMask().Has(EventPacketSent) {
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
	if b.evMask().Has(EventRetainedMessage) {
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
	if !b.evMask().Has(EventPacketSent) {
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

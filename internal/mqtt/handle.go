package mqtt

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

var (
	errSecondConnect = errors.New("second CONNECT")
	errServerPacket  = errors.New("client sent a packet only a server may send")
	errTooManyQoS2   = errors.New("too many QoS 2 messages awaiting PUBREL")
)

// handle dispatches one inbound packet of a connected client.
func (c *client) handle(fh packets.FixedHeader, body []byte) error {
	if c.b.evMask.Has(EventPacketReceived) {
		c.b.emitReceived(&c.info, fh, body, c.version)
	}
	switch fh.Type {
	case packets.PUBLISH:
		return c.onPublish(fh, body)
	case packets.PUBACK:
		var p packets.Puback
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		c.onAck(p.PacketID, packets.PUBACK)
	case packets.PUBREC:
		var p packets.Pubrec
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		c.onAck(p.PacketID, packets.PUBREC)
	case packets.PUBREL:
		var p packets.Pubrel
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		c.onPubrel(p.PacketID)
	case packets.PUBCOMP:
		var p packets.Pubcomp
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		c.onAck(p.PacketID, packets.PUBCOMP)
	case packets.SUBSCRIBE:
		return c.onSubscribe(fh, body)
	case packets.UNSUBSCRIBE:
		return c.onUnsubscribe(fh, body)
	case packets.PINGREQ:
		var p packets.Pingreq
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		// [MQTT-3.12.4-1] answer PINGREQ with PINGRESP.
		c.send(func() { c.appendSimple(packets.PINGRESP) })
	case packets.DISCONNECT:
		var p packets.Disconnect
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		// [MQTT-3.14.4-3] a DISCONNECT discards the will.
		c.graceful = true
	case packets.CONNECT:
		// [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
		return errSecondConnect
	default:
		return fmt.Errorf("%w: %v", errServerPacket, fh.Type)
	}
	return nil
}

// send runs fn (which appends to the write buffer) under the session lock
// and wakes the writer.
func (c *client) send(fn func()) {
	s := c.sess
	s.mu.Lock()
	fn()
	c.kickLocked()
	s.mu.Unlock()
}

func (c *client) onPublish(fh packets.FixedHeader, body []byte) error {
	b := c.b
	if c.pub == nil {
		c.pub = new(packets.Publish)
	}
	p := c.pub
	if err := p.Decode(fh, body, c.version); err != nil {
		return err
	}
	c.msgsIn++
	if b.evMask.Has(EventMessageReceived) {
		b.emit(&Event{Type: EventMessageReceived, Client: &c.info, Topic: p.Topic, QoS: p.QoS,
			Message: &Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, From: c.info.ClientID}})
	}
	route := true
	if isSysTopic(p.Topic) {
		// $SYS belongs to the broker: a client's publish there is
		// acknowledged (3.1.1 has no way to refuse it) and dropped.
		b.stats.droppedSys.Add(1)
		route = false
	} else if b.hooks.Topics != nil {
		res := b.hooks.Topics.CheckTopic(c.ctx, &c.info, TopicRequest{Action: ActionPublish, Topic: p.Topic, QoS: p.QoS, Retain: p.Retain})
		if !res.Allow {
			// Denied before it is acknowledged, routed or retained; 3.1.1
			// can only acknowledge and drop.
			b.stats.droppedDenied.Add(1)
			route = false
		}
	}
	switch p.QoS {
	case 0:
		if route {
			c.publish(p)
		}
	case 1:
		// Route first: by the time PUBACK leaves, the message is in every
		// subscriber's queue.
		if route {
			c.publish(p)
		}
		c.send(func() { c.appendAck(packets.PUBACK, p.PacketID) })
	case 2:
		// Exactly once: the packet id is remembered until PUBREL, and a
		// resent PUBLISH with that id is acknowledged without routing it again
		// ([MQTT-4.3.3-2], method B: deliver on receipt, keep the id).
		s := c.sess
		s.mu.Lock()
		_, dup := s.inQoS2[p.PacketID]
		if !dup {
			if len(s.inQoS2) >= b.limits.MaxInboundQoS2 {
				s.mu.Unlock()
				return errTooManyQoS2
			}
			if s.inQoS2 == nil {
				s.inQoS2 = make(map[uint16]struct{})
			}
			s.inQoS2[p.PacketID] = struct{}{}
		}
		s.mu.Unlock()
		if route && !dup {
			c.publish(p)
		}
		c.send(func() { c.appendAck(packets.PUBREC, p.PacketID) })
	}
	return nil
}

// isSysTopic reports whether topic is in the broker's own $SYS tree (the
// whole first level: "$SYSTEM/x" is an ordinary $ topic).
func isSysTopic(topic string) bool {
	return topic == "$SYS" || strings.HasPrefix(topic, "$SYS/")
}

// publish stores (when retained) and routes an accepted inbound message.
func (c *client) publish(p *packets.Publish) {
	b := c.b
	r := routed{topic: p.Topic, payload: p.Payload, qos: p.QoS, retain: p.Retain, from: c.info.ClientID}
	if b.evMask.Has(EventMessageBroadcast) {
		b.emit(&Event{Type: EventMessageBroadcast, Client: &c.info, Topic: p.Topic, QoS: p.QoS,
			Message: &Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, From: c.info.ClientID}})
	}
	if p.Retain {
		b.setRetained(&r, &c.info)
	}
	c.matches = b.route(&r, c.matches)
}

func (c *client) onPubrel(pid uint16) {
	s := c.sess
	s.mu.Lock()
	delete(s.inQoS2, pid)
	// [MQTT-4.3.3-2] PUBCOMP even for an id we no longer hold: the client
	// may be retrying after we already completed it.
	c.appendAck(packets.PUBCOMP, pid)
	c.kickLocked()
	s.mu.Unlock()
}

// onAck advances an outbound QoS 1/2 flow.
func (c *client) onAck(pid uint16, t packets.Type) {
	b := c.b
	s := c.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.inflight.find(pid)
	switch t {
	case packets.PUBACK:
		if e == nil || e.d.qos != 1 {
			return
		}
		s.inflight.done(e)
	case packets.PUBREC:
		if e != nil && e.d.qos == 2 && e.state == awaitAck {
			e.state = awaitComp
			e.d.msg = nil // [MQTT-4.3.3-1] the message is delivered; only the id remains
		} else if e == nil {
			return
		}
		c.appendAck(packets.PUBREL, pid)
		c.kickLocked()
		return
	case packets.PUBCOMP:
		if e == nil || e.state != awaitComp {
			return
		}
		s.inflight.done(e)
	}
	b.pumpLocked(s)
}

func (c *client) onSubscribe(fh packets.FixedHeader, body []byte) error {
	b := c.b
	var p packets.Subscribe
	if err := p.Decode(fh, body, c.version); err != nil {
		return err
	}
	s := c.sess
	codes := make([]packets.ReasonCode, len(p.Subscriptions))
	for i, sub := range p.Subscriptions {
		codes[i] = packets.SubackFailure
		if !packets.ValidTopicFilter(sub.Filter) {
			continue
		}
		if b.hooks.Topics != nil {
			res := b.hooks.Topics.CheckTopic(c.ctx, &c.info, TopicRequest{Action: ActionSubscribe, Topic: sub.Filter, QoS: sub.QoS})
			if !res.Allow {
				continue
			}
		}
		qos := min(sub.QoS, 2)
		filter := strings.Clone(sub.Filter)
		s.mu.Lock()
		if s.client == c {
			// [MQTT-3.8.4-3] a subscription to an existing filter replaces it.
			s.subs[filter] = subscription{qos: qos}
			b.subs.Subscribe(filter, s, subscription{qos: qos})
			codes[i] = packets.ReasonCode(qos)
		}
		s.mu.Unlock()
	}
	// [MQTT-3.8.4-1] SUBACK with the same packet id, one code per filter
	// in order ([MQTT-3.8.4-5]).
	s.mu.Lock()
	ack := packets.Suback{PacketID: p.PacketID, ReasonCodes: codes}
	mark := len(c.out)
	c.out, _ = ack.Append(c.out, c.version)
	c.outPkts++
	if b.evMask.Has(EventPacketSent) {
		b.emitSent(&c.info, c.out[mark:], c.version)
	}
	c.kickLocked()
	s.mu.Unlock()

	for i, sub := range p.Subscriptions {
		if codes[i] == packets.SubackFailure {
			continue
		}
		b.emit(&Event{Type: EventClientSubscribed, Client: &c.info, Topic: sub.Filter, QoS: sub.QoS})
		// [MQTT-3.3.1-6] retained messages matching a new subscription are
		// sent with RETAIN set ([MQTT-3.3.1-8]).
		granted := byte(codes[i])
		b.retain.Match(sub.Filter, func(_ string, m *Message) {
			r := routedFrom(m)
			b.deliver(s, &r, min(m.QoS, granted), true)
		})
	}
	return nil
}

func (c *client) onUnsubscribe(fh packets.FixedHeader, body []byte) error {
	b := c.b
	var p packets.Unsubscribe
	if err := p.Decode(fh, body, c.version); err != nil {
		return err
	}
	s := c.sess
	s.mu.Lock()
	for _, f := range p.Filters {
		if _, ok := s.subs[f]; ok {
			delete(s.subs, f)
			b.subs.Unsubscribe(f, s)
		}
	}
	// [MQTT-3.10.4-4] UNSUBACK even when nothing matched.
	mark := len(c.out)
	ack := packets.Unsuback{PacketID: p.PacketID}
	c.out, _ = ack.Append(c.out, c.version)
	c.outPkts++
	if b.evMask.Has(EventPacketSent) {
		b.emitSent(&c.info, c.out[mark:], c.version)
	}
	c.kickLocked()
	s.mu.Unlock()
	for _, f := range p.Filters {
		b.emit(&Event{Type: EventClientUnsubscribed, Client: &c.info, Topic: f})
	}
	return nil
}

// Inbound PUBLISH: checks, the topic check, routing, and its PUBACK/PUBREC (QoS 1/2).

package mqtt

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// receivedEvent is the room a connection's broker_message_received is
// built in. The sink keeps nothing of an event (EventSink), so one per
// connection serves every message, where a fresh Event and Message cost
// two allocations per PUBLISH.
type receivedEvent struct {
	ev  Event
	msg Message
}

// emitMessageReceived reports an inbound PUBLISH as broker_message_received
// (the packet itself is emitPacketReceived's, mqtt_packet_received).
func (c *client) emitMessageReceived(p *packets.Publish) {
	r := c.received
	if r == nil {
		r = new(receivedEvent)
		c.received = r
	}
	r.msg = Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, From: c.info.ClientID}
	r.ev = Event{Type: EventMessageReceived, Client: &c.info, Topic: p.Topic, QoS: p.QoS, Message: &r.msg}
	c.b.emit(&r.ev) // what it points to stays alive with the connection anyway
}

// onPublish handles an inbound PUBLISH: decode it, check it against what the
// server offers, report it, decide whether it is allowed, then route and
// acknowledge it as its QoS asks. It is the broker's hot path: the steps are
// plain calls, and the packet is decoded into the connection's own Publish.
func (c *client) onPublish(fh packets.FixedHeader, body []byte) error {
	if c.pub == nil {
		c.pub = new(packets.Publish)
	}
	p := c.pub
	if err := p.DecodeSeen(fh, body, c.version, &c.routes.named); err != nil {
		return err
	}
	c.msgsIn++
	setAlias, err := c.checkPublish(p) // the alias is stored once the publish is allowed
	if err != nil {
		return err
	}
	if c.b.evMask().Has(EventMessageReceived) {
		c.emitMessageReceived(p)
	}
	if p.Retain && c.owing() {
		c.flushOwed() // storing a retained message may wait on the cluster
	}
	code, reason, err := c.admitPublish(p)
	if err != nil {
		if err == errUndecided {
			return nil
		}
		return err
	}
	if setAlias != 0 {
		c.storeAlias(setAlias, p.Topic, code == packets.Success)
	}
	switch p.QoS {
	case 0:
		if code == packets.Success {
			_, pb, _ := c.publish(p)
			c.b.commitBatch(pb, nil) // a retained change
		}
	case 1:
		// Route first: by the time PUBACK leaves, the message is in every
		// subscriber's queue (and, for persistent ones, in the store).
		var pb *pubBatch
		var fw *forwardWait
		if code == packets.Success {
			var n int
			n, pb, fw = c.publish(p)
			if c.version == packets.V5 && c.b.noMatching(n) {
				code = packets.NoMatchingSubscribers
			}
		}
		c.ackPublish(pb, fw, packets.PUBACK, p.PacketID, code, reason)
	case 2:
		return c.receiveQoS2(p, code, reason)
	}
	return nil
}

// errUndecided is admitPublish's answer when the topic check did not
// complete because the connection is ending (taken over, closed, broker
// shutting down): whatever it answered, the message is neither routed nor
// acknowledged, and the connection's own end reports why.
var errUndecided = errors.New("publish not decided: the connection is ending")

// checkPublish refuses a PUBLISH that asks for what the server does not
// offer or breaks an MQTT 5 rule (a Subscription Identifier from a client, a
// bad Topic Alias), resolving its alias. It returns the alias to set.
func (c *client) checkPublish(p *packets.Publish) (setAlias uint16, err error) {
	if f := &c.b.opts.Features; p.QoS > 0 || p.Retain {
		switch {
		case p.QoS > f.maxQoS():
			return 0, errQoSNotOffered // [MQTT5-3.2.2-11]
		case p.Retain && f.NoRetain:
			return 0, errNoRetain // [MQTT5-3.2.2-14]
		}
	}
	if c.version != packets.V5 {
		return 0, nil
	}
	if len(p.Props.SubscriptionIDs) > 0 {
		return 0, errClientSubID // [MQTT5-3.3.4-6]
	}
	return c.resolveAlias(p)
}

// admitPublish decides whether an inbound PUBLISH is routed: the code (and
// reason) its acknowledgement carries, Success when it is. An error ends
// the connection, except errUndecided.
func (c *client) admitPublish(p *packets.Publish) (code packets.ReasonCode, reason string, err error) {
	b := c.b
	v5 := c.version == packets.V5
	switch {
	case isSysTopic(p.Topic):
		// $SYS belongs to the broker: a client's publish there is dropped
		// (3.1.1 can only acknowledge it; MQTT 5 hears "not authorized").
		b.stats.droppedSys.Add(1)
		return packets.NotAuthorized, "", nil
	case v5 && p.Props.PayloadFormat == 1 && !utf8.Valid(p.Payload):
		// 5.0 §3.3.2.3.2: the payload is said to be UTF-8 and is not.
		return packets.PayloadFormatInvalid, "", nil
	case b.hooks.Topics != nil && !c.publishGranted(p.Topic):
		req := TopicRequest{Action: ActionPublish, Topic: p.Topic, QoS: p.QoS, Retain: p.Retain}
		var res TopicResult
		answered := false
		if len(c.owes) > 0 && b.topicsNow != nil {
			// Output of this read batch is owed (wakeByLocked): a check
			// answered at once keeps it waiting for the batch's end...
			res, answered = b.topicsNow.CheckTopicNow(&c.info, req)
			req.InlineMissed = !answered
		}
		if !answered {
			if c.owing() {
				c.flushOwed() // ...one that may wait on a plugin does not
			}
			res = b.hooks.Topics.CheckTopic(c.ctx, &c.info, req)
		}
		if c.ctx.Err() != nil {
			return 0, "", errUndecided
		}
		if !res.Allow {
			b.logDenied(&c.info, "publish", p.Topic, res)
			// Denied before it is acknowledged, routed or retained.
			b.stats.droppedDenied.Add(1)
			if !v5 && b.opts.DisconnectDeniedPublish {
				// 3.1.1 has no negative PUBACK: the operator chose to
				// tell the client by closing rather than by silence.
				return 0, "", errPubDenied
			}
			return packets.DenyCode(packets.PUBACK, res.ReasonCode), res.Reason, nil
		}
	}
	return c.admitRetained(p)
}

// receiveQoS2 routes and PUBRECs a QoS 2 PUBLISH exactly once: the packet id
// is remembered until PUBREL, and a resent PUBLISH with that id is
// acknowledged without routing it again ([MQTT-4.3.3-2], method B: deliver
// on receipt, keep the id).
func (c *client) receiveQoS2(p *packets.Publish, code packets.ReasonCode, reason string) error {
	s := c.sess
	s.mu.Lock()
	_, dup := s.inQoS2[p.PacketID]
	if !dup && code == packets.Success {
		// [MQTT5-3.3.4-7] no more than our Receive Maximum at once.
		if len(s.inQoS2) >= c.b.limits.MaxInboundQoS2 {
			s.mu.Unlock()
			return errTooManyQoS2
		}
		if s.inQoS2 == nil {
			s.inQoS2 = make(map[uint16]struct{})
		}
		s.inQoS2[p.PacketID] = struct{}{}
	}
	s.mu.Unlock()
	var pb *pubBatch
	var fw *forwardWait
	if code == packets.Success && !dup {
		var n int
		n, pb, fw = c.publish(p)
		if c.version == packets.V5 && c.b.noMatching(n) {
			code = packets.NoMatchingSubscribers
		}
		s.mu.Lock()
		pb = c.b.storeQoS2In(s, pb, p.PacketID)
		s.mu.Unlock()
	}
	c.ackPublish(pb, fw, packets.PUBREC, p.PacketID, code, reason)
	return nil
}

// resolveAlias applies an MQTT 5 Topic Alias: a PUBLISH with an alias only
// uses it; one with a topic and an alias sets it ([MQTT5-3.3.2-12]), which
// resolveAlias leaves to the caller (it returns the alias to set): an alias
// is stored only once its PUBLISH is allowed, so denied publishes cannot
// fill the alias table.
func (c *client) resolveAlias(p *packets.Publish) (set uint16, err error) {
	if !p.Props.Has(packets.PropTopicAlias) {
		return 0, nil
	}
	a := p.Props.TopicAlias
	if a == 0 || a > c.b.limits.TopicAliasMaximum {
		return 0, errAliasRange // [MQTT5-3.3.2-8], [MQTT5-3.3.2-9]
	}
	if p.Topic != "" {
		return a, nil
	}
	if int(a) >= len(c.aliases) || c.aliases[a] == "" {
		return 0, errUnknownAlias
	}
	p.Topic = c.aliases[a]
	return 0, nil
}

// storeAlias maps alias a to topic for the rest of the connection when its
// PUBLISH was allowed. When it was not, the alias is unset rather than left
// on its old topic: the client believes it now names topic, and a later
// PUBLISH by alias alone must not go to the old one (it is a protocol error
// instead, 0x82).
func (c *client) storeAlias(a uint16, topic string, allowed bool) {
	if c.aliases == nil {
		if !allowed {
			return
		}
		c.aliases = make([]string, int(c.b.limits.TopicAliasMaximum)+1)
	}
	switch {
	case !allowed:
		c.aliases[a] = ""
	case c.aliases[a] != topic:
		c.aliases[a] = strings.Clone(topic)
	}
}

// isSysTopic reports whether topic is in the broker's own $SYS tree (the
// whole first level: "$SYSTEM/x" is an ordinary $ topic).
func isSysTopic(topic string) bool {
	return topic == "$SYS" || strings.HasPrefix(topic, "$SYS/")
}

// publish stores (when retained) and routes an accepted inbound message. It
// returns the number of sessions it was delivered to, what the store must
// hold before it is acknowledged (nil: nothing), and the other nodes'
// confirmation it must wait for (nil: none).
func (c *client) publish(p *packets.Publish) (int, *pubBatch, *forwardWait) {
	b := c.b
	r := routed{topic: p.Topic, payload: p.Payload, qos: p.QoS, retain: p.Retain, from: c.info.ClientID, persist: b.disk != nil, by: c,
		at: c.r.last} // the read's clock: one time.Now per read, not per message
	if c.version == packets.V5 && forwardable(&p.Props) {
		r.props = &p.Props
	}
	if p.QoS > 0 {
		r.hold = c.flowFor()
	}
	if b.evMask().Has(EventMessageBroadcast) {
		b.emit(&Event{Type: EventMessageBroadcast, Client: &c.info, Topic: p.Topic, QoS: p.QoS,
			Message: &Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, From: c.info.ClientID}})
	}
	if p.Retain {
		b.setRetained(&r, &c.info)
	}
	var n int
	n = b.routeFrom(c, &r)
	fw := b.forwardPublished(&r)
	return n, r.pb, fw
}

// forwardable reports whether a PUBLISH carries properties that travel with
// the message to its subscribers ([MQTT5-3.3.2-17] and friends).
func forwardable(p *packets.Properties) bool {
	return p.Has(packets.PropPayloadFormat) || p.Has(packets.PropMessageExpiry) || p.Has(packets.PropContentType) ||
		p.Has(packets.PropResponseTopic) || p.Has(packets.PropCorrelationData) || len(p.User) > 0
}

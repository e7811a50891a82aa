// Encoding outbound packets into a client's write buffer: PUBLISH, the
// QoS 1/2 acks and the control packets, each held to the client's Maximum
// Packet Size and reported to the event sink when it asks for sent packets.

package mqtt

import (
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// appendDelivery encodes a stored delivery. Caller holds s.mu.
func (c *client) appendDelivery(d *delivery, pid uint16, dup bool) bool {
	m := d.msg
	return c.appendPublish(m.Topic, m.Payload, m.Props, m.Created, d.qos, pid, d.retain, dup, d.subIDs)
}

// appendPublish encodes a PUBLISH into the write buffer. props are the
// publisher's MQTT 5 properties (nil for none) and created is when the
// message entered the broker (zero: just now), for Message Expiry. It
// encodes nothing and reports false when the message has expired or the
// packet would exceed the client's Maximum Packet Size. A client that
// accepts topic aliases gets the topic by alias where it can. Caller holds
// s.mu.
func (c *client) appendPublish(topic string, payload []byte, props *packets.Properties, created time.Time,
	qos byte, pid uint16, retain, dup bool, subIDs []uint32) bool {
	mark := len(c.out)
	var alias uint16
	var known bool
	if c.aliasMax > 0 && len(topic) >= aliasMinTopic {
		alias, known = c.pickAlias(topic)
	}
	if props == nil && alias == 0 && (len(subIDs) == 0 || c.version != packets.V5) {
		c.out, _ = packets.AppendPublish(c.out, c.version, topic, payload, qos, pid, retain, dup, nil)
	} else {
		name := topic
		if known {
			name = "" // the client maps the alias back to the topic
		}
		var ok bool
		if c.out, ok = c.appendWithProps(name, payload, props, created, qos, pid, retain, dup, subIDs, alias); !ok {
			return false
		}
	}
	if c.maxOut > 0 && len(c.out)-mark > c.maxOut {
		c.out = c.out[:mark]
		// A new alias adds 3 bytes: without it the packet may still fit.
		if alias == 0 || known || !c.appendWithoutAlias(topic, payload, props, created, qos, pid, retain, dup, subIDs) ||
			len(c.out)-mark > c.maxOut {
			c.out = c.out[:mark]
			c.b.stats.droppedTooLarge.Add(1)
			return false
		}
		alias = 0
	}
	if alias != 0 {
		c.outAliases.commit(topic, alias, known)
	}
	c.outMsgs++
	c.outPkts++
	if c.b.evMask().Has(EventPacketSent) {
		c.b.emitPacketSent(&c.info, c.out[mark:], c.version)
	}
	return true
}

// appendWithoutAlias encodes the PUBLISH again with its topic and no alias.
func (c *client) appendWithoutAlias(topic string, payload []byte, props *packets.Properties, created time.Time,
	qos byte, pid uint16, retain, dup bool, subIDs []uint32) bool {
	var ok bool
	c.out, ok = c.appendWithProps(topic, payload, props, created, qos, pid, retain, dup, subIDs, 0)
	return ok
}

// appendWithProps is appendPublish's path for messages with properties (or
// Subscription Identifiers or a Topic Alias to add); apart so that the
// plain path never pays for zeroing a Properties value.
func (c *client) appendWithProps(topic string, payload []byte, props *packets.Properties, created time.Time,
	qos byte, pid uint16, retain, dup bool, subIDs []uint32, alias uint16) ([]byte, bool) {
	var out packets.Properties
	if props != nil {
		if props.Has(packets.PropMessageExpiry) {
			// [MQTT5-3.3.2-5] an expired message is not delivered; the
			// interval sent on is what is left of it ([MQTT5-3.3.2-6]).
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
	out.TopicAlias = alias
	buf, _ := packets.AppendPublish(c.out, c.version, topic, payload, qos, pid, retain, dup, &out)
	return buf, true
}

// appendAck encodes PUBACK, PUBREC, PUBREL or PUBCOMP. code and reason are
// MQTT 5's (3.1.1 encodes neither); the reason string goes only to clients
// that asked for problem information ([MQTT5-3.1.2-29]). One case per type
// rather than appendControl: boxing the ack in a packets.Packet would
// allocate on the QoS 1/2 hot path. Caller holds s.mu.
func (c *client) appendAck(t packets.Type, pid uint16, code packets.ReasonCode, reason string) {
	if !c.problemInfo {
		reason = ""
	}
	mark := len(c.out)
	c.out = appendAckPacket(c.out, c.version, t, pid, code, reason)
	if reason != "" && c.maxOut > 0 && len(c.out)-mark > c.maxOut {
		// [MQTT5-3.4.2-2] and friends: no reason string that would take
		// the packet past the client's Maximum Packet Size.
		c.out = appendAckPacket(c.out[:mark], c.version, t, pid, code, "")
	}
	c.outPkts++
	if c.b.evMask().Has(EventPacketSent) {
		c.b.emitPacketSent(&c.info, c.out[mark:], c.version)
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
		c.b.emitPacketSent(&c.info, c.out[mark:], c.version)
	}
}

// stripProblemInfo drops the reason string and user properties of a control
// packet, which the server must leave out rather than exceed the client's
// Maximum Packet Size ([MQTT5-3.1.2-24], e.g. [MQTT5-3.2.2-19]). It reports
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
		c.b.emitPacketSent(&c.info, c.out[len(c.out)-2:], c.version)
	}
}

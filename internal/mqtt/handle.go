package mqtt

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// protoError ends a connection for a protocol reason; MQTT 5 clients are
// told Code in a DISCONNECT first.
type protoError struct {
	Code packets.ReasonCode
	Msg  string
}

func (e *protoError) Error() string { return e.Msg }

var (
	errSecondConnect = &protoError{packets.ProtocolError, "second CONNECT"}
	errTooManyQoS2   = &protoError{packets.ReceiveMaxExceeded, "too many QoS 2 messages awaiting PUBREL"}
	errClientSubID   = &protoError{packets.ProtocolError, "PUBLISH from a client carries a Subscription Identifier"}
	errUnknownAlias  = &protoError{packets.ProtocolError, "PUBLISH uses a topic alias never set"}
	errAliasRange    = &protoError{packets.TopicAliasInvalid, "topic alias out of range"}
	errExpiryFrom0   = &protoError{packets.ProtocolError, "DISCONNECT sets a session expiry on a session that had none"}
	errQoSNotOffered = &protoError{packets.QoSNotSupported, "PUBLISH above the server's maximum QoS"}
	errNoRetain      = &protoError{packets.RetainNotSupported, "retained PUBLISH while retain is not available"}
	errNoSubIDs      = &protoError{packets.SubIDsNotSupported, "SUBSCRIBE with a Subscription Identifier while they are not available"}
	errPubDenied     = &protoError{packets.NotAuthorized, "PUBLISH denied by the topic check (topic-check.deny-publish: disconnect)"}
)

// handle dispatches one inbound packet of a connected client.
func (c *client) handle(fh packets.FixedHeader, body []byte) error {
	if c.b.evMask().Has(EventPacketReceived) {
		c.b.emitPacketReceived(&c.info, fh, body, c.version)
	}
	switch fh.Type {
	case packets.PUBLISH:
		return c.onPublish(fh, body)
	case packets.PUBACK:
		var p packets.Puback
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		c.onAck(p.PacketID, packets.PUBACK, p.ReasonCode)
	case packets.PUBREC:
		var p packets.Pubrec
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		c.onAck(p.PacketID, packets.PUBREC, p.ReasonCode)
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
		c.onAck(p.PacketID, packets.PUBCOMP, p.ReasonCode)
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
		return c.onDisconnect(&p)
	case packets.AUTH:
		var p packets.Auth
		if err := p.Decode(fh, body, c.version); err != nil {
			return err
		}
		return c.onAuth(&p)
	case packets.CONNECT:
		// [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
		return errSecondConnect
	default:
		return &protoError{packets.ProtocolError, fmt.Sprintf("client sent %v, which only a server may send", fh.Type)}
	}
	return nil
}

// send runs fn (which appends to the write buffer) under the session lock
// and wakes the writer.
func (c *client) send(fn func()) {
	s := c.sess
	s.mu.Lock()
	fn()
	c.wakeWriterLocked()
	s.mu.Unlock()
}

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
	v5 := c.version == packets.V5
	if f := &b.opts.Features; p.QoS > 0 || p.Retain {
		switch {
		case p.QoS > f.maxQoS():
			return errQoSNotOffered // [MQTT5-3.2.2-11]
		case p.Retain && f.NoRetain:
			return errNoRetain // [MQTT5-3.2.2-14]
		}
	}
	var setAlias uint16 // stored once the publish is allowed
	if v5 {
		if len(p.Props.SubscriptionIDs) > 0 {
			return errClientSubID // [MQTT5-3.3.4-6]
		}
		var err error
		if setAlias, err = c.resolveAlias(p); err != nil {
			return err
		}
	}
	if b.evMask().Has(EventMessageReceived) {
		c.emitMessageReceived(p)
	}
	code, reason := packets.Success, ""
	switch {
	case isSysTopic(p.Topic):
		// $SYS belongs to the broker: a client's publish there is dropped
		// (3.1.1 can only acknowledge it; MQTT 5 hears "not authorized").
		b.stats.droppedSys.Add(1)
		code = packets.NotAuthorized
	case v5 && p.Props.PayloadFormat == 1 && !utf8.Valid(p.Payload):
		// 5.0 §3.3.2.3.2: the payload is said to be UTF-8 and is not.
		code = packets.PayloadFormatInvalid
	case b.hooks.Topics != nil:
		res := b.hooks.Topics.CheckTopic(c.ctx, &c.info, TopicRequest{Action: ActionPublish, Topic: p.Topic, QoS: p.QoS, Retain: p.Retain})
		if c.ctx.Err() != nil {
			// The check did not complete: the connection is ending (taken
			// over, closed, broker shutting down). Whatever it answered,
			// the message is neither routed nor acknowledged.
			return nil
		}
		if !res.Allow {
			b.logDenied(&c.info, "publish", p.Topic, res)
			// Denied before it is acknowledged, routed or retained.
			b.stats.droppedDenied.Add(1)
			if !v5 && b.opts.DisconnectDeniedPublish {
				// 3.1.1 has no negative PUBACK: the operator chose to
				// tell the client by closing rather than by silence.
				return errPubDenied
			}
			code, reason = packets.DenyCode(packets.PUBACK, res.ReasonCode), res.Reason
		}
	}
	if setAlias != 0 {
		c.storeAlias(setAlias, p.Topic, code == packets.Success)
	}
	switch p.QoS {
	case 0:
		if code == packets.Success {
			c.publish(p)
		}
	case 1:
		// Route first: by the time PUBACK leaves, the message is in every
		// subscriber's queue.
		if code == packets.Success && c.publish(p) == 0 && v5 {
			code = packets.NoMatchingSubscribers
		}
		c.send(func() { c.appendAck(packets.PUBACK, p.PacketID, code, reason) })
	case 2:
		// Exactly once: the packet id is remembered until PUBREL, and a
		// resent PUBLISH with that id is acknowledged without routing it again
		// ([MQTT-4.3.3-2], method B: deliver on receipt, keep the id).
		s := c.sess
		s.mu.Lock()
		_, dup := s.inQoS2[p.PacketID]
		if !dup && code == packets.Success {
			// [MQTT5-3.3.4-7] no more than our Receive Maximum at once.
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
		if code == packets.Success && !dup && c.publish(p) == 0 && v5 {
			code = packets.NoMatchingSubscribers
		}
		c.send(func() { c.appendAck(packets.PUBREC, p.PacketID, code, reason) })
	}
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
// returns the number of sessions it was delivered to.
func (c *client) publish(p *packets.Publish) int {
	b := c.b
	r := routed{topic: p.Topic, payload: p.Payload, qos: p.QoS, retain: p.Retain, from: c.info.ClientID}
	if c.version == packets.V5 && forwardable(&p.Props) {
		r.props = &p.Props
	}
	if b.evMask().Has(EventMessageBroadcast) {
		b.emit(&Event{Type: EventMessageBroadcast, Client: &c.info, Topic: p.Topic, QoS: p.QoS,
			Message: &Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, From: c.info.ClientID}})
	}
	if p.Retain {
		b.setRetained(&r, &c.info)
	}
	var n int
	c.matches, n = b.route(&r, c.matches)
	return n
}

// forwardable reports whether a PUBLISH carries properties that travel with
// the message to its subscribers ([MQTT5-3.3.2-17] and friends).
func forwardable(p *packets.Properties) bool {
	return p.Has(packets.PropPayloadFormat) || p.Has(packets.PropMessageExpiry) || p.Has(packets.PropContentType) ||
		p.Has(packets.PropResponseTopic) || p.Has(packets.PropCorrelationData) || len(p.User) > 0
}

func (c *client) onPubrel(pid uint16) {
	s := c.sess
	s.mu.Lock()
	code := packets.Success
	if _, ok := s.inQoS2[pid]; !ok {
		code = packets.PacketIDNotFound
	}
	delete(s.inQoS2, pid)
	// [MQTT-4.3.3-2] PUBCOMP even for an id we no longer hold: the client
	// may be retrying after we already completed it.
	c.appendAck(packets.PUBCOMP, pid, code, "")
	c.wakeWriterLocked()
	s.mu.Unlock()
}

// onAck advances an outbound QoS 1/2 flow.
func (c *client) onAck(pid uint16, t packets.Type, code packets.ReasonCode) {
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
		switch {
		case e != nil && e.d.qos == 2 && e.state == awaitAck && code >= 0x80:
			// [MQTT5-4.3.3-4], [MQTT5-4.4.0-2] the client refused the message: the flow ends.
			s.inflight.done(e)
		case e != nil && e.d.qos == 2 && e.state == awaitAck:
			e.state = awaitComp
			e.d.msg = nil // [MQTT-4.3.3-1] the message is delivered; only the id remains
			fallthrough
		case e != nil && e.state == awaitComp:
			c.appendAck(packets.PUBREL, pid, 0, "")
			c.wakeWriterLocked()
			return
		default:
			if c.version == packets.V5 {
				c.appendAck(packets.PUBREL, pid, packets.PacketIDNotFound, "")
				c.wakeWriterLocked()
			}
			return
		}
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
	v5 := c.version == packets.V5
	var subID uint32
	if len(p.Props.SubscriptionIDs) > 0 {
		if b.opts.Features.NoSubscriptionIDs {
			return errNoSubIDs
		}
		subID = p.Props.SubscriptionIDs[0]
	}
	f := &b.opts.Features
	s := c.sess
	codes := make([]packets.ReasonCode, len(p.Subscriptions))
	isNew := make([]bool, len(p.Subscriptions))
	var reason string
	for i, sub := range p.Subscriptions {
		codes[i] = packets.SubackFailure
		group, inner, ok := parseShared(sub.Filter)
		if !ok {
			if v5 {
				codes[i] = packets.TopicFilterInvalid
			}
			continue
		}
		if off := c.unavailable(f, group != "", inner); off != 0 {
			if v5 {
				codes[i] = off
			}
			continue
		}
		if b.hooks.Topics != nil {
			res := b.hooks.Topics.CheckTopic(c.ctx, &c.info, TopicRequest{Action: ActionSubscribe, Topic: sub.Filter, QoS: sub.QoS})
			if c.ctx.Err() != nil {
				continue // not decided: the connection is ending
			}
			if !res.Allow {
				b.logDenied(&c.info, "subscribe", sub.Filter, res)
				if v5 {
					codes[i], reason = packets.DenyCode(packets.SUBACK, res.ReasonCode), res.Reason
				}
				continue
			}
		}
		val := subscription{qos: min(sub.QoS, f.maxQoS()), subID: subID}
		if sub.NoLocal {
			val.opts |= subNoLocal
		}
		if sub.RetainAsPublished {
			val.opts |= subRAP
		}
		// The filter is owned memory, and so are the share group and the
		// inner filter cut from it: sub.Filter aliases the read buffer,
		// which the next packet overwrites.
		filter := strings.Clone(sub.Filter)
		group, inner, _ = parseShared(filter)
		s.mu.Lock()
		if s.client == c {
			_, existed := s.subs[filter]
			// [MQTT-3.8.4-3] a subscription to an existing filter replaces it.
			s.subs[filter] = val
			if group != "" {
				b.subscribeShared(s, group, inner, shareSub{val, filter}, existed)
			} else {
				b.subs.Subscribe(filter, s, val)
			}
			codes[i] = packets.ReasonCode(val.qos)
			isNew[i] = !existed
		}
		s.mu.Unlock()
	}
	// [MQTT-3.8.4-1] SUBACK with the same packet id, one code per filter
	// in order ([MQTT-3.8.4-5]).
	// [MQTT-3.3.1-6] retained messages matching a new subscription are sent
	// with RETAIN set ([MQTT-3.3.1-8]), as Retain Handling allows
	// ([MQTT5-3.3.1-9] to [MQTT5-3.3.1-11]); none for a shared subscription. The snapshot is
	// taken before SUBACK goes out: a message published after the client
	// has seen its SUBACK reaches it live, not a second time as retained.
	retained := make([][]*Message, len(p.Subscriptions))
	for i, sub := range p.Subscriptions {
		if codes[i] >= 0x80 || strings.HasPrefix(sub.Filter, sharePrefix) ||
			sub.RetainHandling == 2 || (sub.RetainHandling == 1 && !isNew[i]) {
			continue
		}
		b.retain.Match(sub.Filter, func(_ string, m *Message) { retained[i] = append(retained[i], m) })
	}
	s.mu.Lock()
	ack := packets.Suback{PacketID: p.PacketID, ReasonCodes: codes}
	if c.problemInfo {
		ack.Props.ReasonString = reason
	}
	c.appendControl(&ack)
	c.wakeWriterLocked()
	s.mu.Unlock()

	for i, sub := range p.Subscriptions {
		if codes[i] >= 0x80 {
			continue
		}
		b.emit(&Event{Type: EventClientSubscribed, Client: &c.info, Topic: sub.Filter, QoS: sub.QoS})
		var ids []uint32
		if subID != 0 {
			ids = []uint32{subID}
		}
		for _, m := range retained[i] {
			r := routedFrom(m)
			b.deliver(s, &r, delivery{qos: min(m.QoS, byte(codes[i])), retain: true, subIDs: ids})
		}
	}
	return nil
}

// unavailable is the MQTT 5 reason a subscription is refused because its
// kind is switched off (Features), or 0.
func (c *client) unavailable(f *Features, shared bool, filter string) packets.ReasonCode {
	switch {
	case shared && f.NoSharedSubs:
		return packets.SharedSubsNotSupported
	case f.NoWildcardSubs && strings.ContainsAny(filter, "+#"):
		return packets.WildcardSubsNotSupported
	}
	return 0
}

func (c *client) onUnsubscribe(fh packets.FixedHeader, body []byte) error {
	b := c.b
	var p packets.Unsubscribe
	if err := p.Decode(fh, body, c.version); err != nil {
		return err
	}
	s := c.sess
	s.mu.Lock()
	var codes []packets.ReasonCode
	if c.version == packets.V5 {
		codes = make([]packets.ReasonCode, len(p.Filters))
	}
	for i, f := range p.Filters {
		if _, ok := s.subs[f]; ok {
			delete(s.subs, f)
			b.unsubscribe(s, f)
		} else if codes != nil {
			codes[i] = packets.NoSubscriptionExisted
		}
	}
	// [MQTT-3.10.4-5] UNSUBACK even when nothing matched.
	c.appendControl(&packets.Unsuback{PacketID: p.PacketID, ReasonCodes: codes})
	c.wakeWriterLocked()
	s.mu.Unlock()
	for _, f := range p.Filters {
		b.emit(&Event{Type: EventClientUnsubscribed, Client: &c.info, Topic: f})
	}
	return nil
}

// onDisconnect ends the connection at the client's request. [MQTT-3.14.4-3]
// DISCONNECT discards the will, except MQTT 5's "disconnect with will".
func (c *client) onDisconnect(p *packets.Disconnect) error {
	c.graceful = true
	if c.version != packets.V5 {
		return nil
	}
	if p.Props.Has(packets.PropSessionExpiry) {
		s := c.sess
		s.mu.Lock()
		if s.expiry == 0 && p.Props.SessionExpiry != 0 {
			s.mu.Unlock()
			return errExpiryFrom0 // 5.0 §3.14.2.2.2
		}
		s.expiry = capExpiry(p.Props.SessionExpiry, c.b.limits.SessionExpiry)
		s.clean = s.expiry == 0
		s.mu.Unlock()
	}
	if p.ReasonCode == packets.DisconnectWithWill {
		c.keepWill = true
	}
	return nil
}

// onAuth runs an MQTT 5 re-authentication ([MQTT5-4.12.1-1]): the client
// starts it with AUTH 0x19 and the same method as at CONNECT.
func (c *client) onAuth(p *packets.Auth) error {
	ex, ok := c.b.hooks.Auth.(AuthExchanger)
	switch {
	case !ok || c.authMethod == "" || p.Props.AuthMethod != c.authMethod:
		return &protoError{packets.ProtocolError, "AUTH without the connection's authentication method"}
	case p.ReasonCode == packets.ReAuthenticate && !c.reauthing:
		c.reauthing = true
	case p.ReasonCode == packets.ContinueAuthentication && c.reauthing:
	default:
		return &protoError{packets.ProtocolError, fmt.Sprintf("unexpected AUTH %v", p.ReasonCode)}
	}
	st := ex.AuthStep(c.ctx, &c.info, c.authMethod, p.Props.AuthData, true)
	code := packets.ContinueAuthentication
	if !st.Continue {
		c.reauthing = false
		if !st.Result.Allow {
			c.b.stats.authRejected.Add(1)
			return &protoError{packets.DenyCode(packets.DISCONNECT, st.Result.ReasonCode), "re-authentication failed: " + st.Result.Reason}
		}
		code = packets.Success
	}
	out := &packets.Auth{ReasonCode: code}
	out.Props.AuthMethod = c.authMethod
	out.Props.AuthData = st.Data
	c.send(func() { c.appendControl(out) })
	return nil
}

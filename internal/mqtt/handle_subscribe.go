// SUBSCRIBE and UNSUBSCRIBE: checking filters, changing subscriptions, retained messages for new ones.

package mqtt

import (
	"strings"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// onSubscribe handles SUBSCRIBE: decode it, check and add each filter,
// snapshot the retained messages new subscriptions receive, answer SUBACK,
// then report the subscriptions and send those retained messages.
func (c *client) onSubscribe(fh packets.FixedHeader, body []byte) error {
	var p packets.Subscribe
	if err := p.Decode(fh, body, c.version); err != nil {
		return err
	}
	var subID uint32
	if len(p.Props.SubscriptionIDs) > 0 {
		if c.b.opts.Features.NoSubscriptionIDs {
			return errNoSubIDs
		}
		subID = p.Props.SubscriptionIDs[0]
	}
	codes := make([]packets.ReasonCode, len(p.Subscriptions))
	isNew := make([]bool, len(p.Subscriptions))
	var reason string
	for i := range p.Subscriptions {
		sub := &p.Subscriptions[i]
		codes[i] = packets.SubackFailure
		if c.checkFilter(sub, &codes[i], &reason) {
			codes[i], isNew[i] = c.addSubscription(sub, subID)
		}
	}
	c.b.clusterSubscribed()
	retained := c.retainedFor(&p, codes, isNew)
	c.b.saveSubscriptions(c)
	c.sendSuback(p.PacketID, codes, reason)
	c.subscribed(&p, codes, subID, retained)
	return nil
}

// checkFilter reports whether a filter may be subscribed to: it is valid,
// its kind is available, and the topic check allows it. When not, an MQTT 5
// client's code (and reason) say why; 3.1.1 keeps the plain failure.
func (c *client) checkFilter(sub *packets.Subscription, code *packets.ReasonCode, reason *string) bool {
	b := c.b
	v5 := c.version == packets.V5
	group, inner, ok := parseShared(sub.Filter)
	if !ok {
		if v5 {
			*code = packets.TopicFilterInvalid
		}
		return false
	}
	if off := c.unavailable(&b.opts.Features, group != "", inner); off != 0 {
		if v5 {
			*code = off
		}
		return false
	}
	if b.hooks.Topics == nil {
		return true
	}
	res := b.hooks.Topics.CheckTopic(c.ctx, &c.info, TopicRequest{Action: ActionSubscribe, Topic: sub.Filter, QoS: sub.QoS})
	if c.ctx.Err() != nil {
		return false // not decided: the connection is ending
	}
	if !res.Allow {
		b.logDenied(&c.info, "subscribe", sub.Filter, res)
		if v5 {
			*code, *reason = packets.DenyCode(packets.SUBACK, res.ReasonCode), res.Reason
		}
		return false
	}
	return true
}

// addSubscription adds (or replaces) an allowed subscription in the
// session and the router. It returns the granted QoS as the SUBACK code and
// whether the filter is new to the session; the plain failure when the
// session is no longer this connection's.
func (c *client) addSubscription(sub *packets.Subscription, subID uint32) (packets.ReasonCode, bool) {
	b := c.b
	s := c.sess
	val := subscription{qos: min(sub.QoS, b.opts.Features.maxQoS()), subID: subID}
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
	group, inner, _ := parseShared(filter)
	if group == "" {
		val.cover = c.info.Login().receiveCover(filter)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != c {
		return packets.SubackFailure, false
	}
	_, existed := s.subs[filter]
	// [MQTT-3.8.4-3] a subscription to an existing filter replaces it.
	s.subs[filter] = val
	if group != "" {
		b.subscribeShared(s, group, inner, shareSub{val, filter}, existed)
		if !existed {
			b.interest(filter, true)
		}
	} else {
		if b.subs.Subscribe(filter, s, val) {
			b.interest(filter, true)
		}
	}
	return packets.ReasonCode(val.qos), !existed
}

// retainedFor snapshots, per filter, the retained messages its new
// subscription receives. [MQTT-3.3.1-6] retained messages matching a new
// subscription are sent with RETAIN set ([MQTT-3.3.1-8]), as Retain
// Handling allows ([MQTT5-3.3.1-9] to [MQTT5-3.3.1-11]); none for a shared
// subscription. The snapshot is taken before SUBACK goes out: a message
// published after the client has seen its SUBACK reaches it live, not a
// second time as retained.
func (c *client) retainedFor(p *packets.Subscribe, codes []packets.ReasonCode, isNew []bool) [][]*Message {
	retained := make([][]*Message, len(p.Subscriptions))
	for i, sub := range p.Subscriptions {
		if codes[i] >= 0x80 || strings.HasPrefix(sub.Filter, sharePrefix) ||
			sub.RetainHandling == 2 || (sub.RetainHandling == 1 && !isNew[i]) {
			continue
		}
		c.b.retain.Match(sub.Filter, func(_ string, m *Message) { retained[i] = append(retained[i], m) })
	}
	return retained
}

// sendSuback answers SUBSCRIBE: [MQTT-3.8.4-1] SUBACK with the same packet
// id, one code per filter in order ([MQTT-3.8.4-5]).
func (c *client) sendSuback(pid uint16, codes []packets.ReasonCode, reason string) {
	s := c.sess
	s.mu.Lock()
	ack := packets.Suback{PacketID: pid, ReasonCodes: codes}
	if c.problemInfo {
		ack.Props.ReasonString = reason
	}
	c.appendControl(&ack)
	c.wakeWriterLocked()
	s.mu.Unlock()
}

// subscribed reports each granted subscription and delivers its retained
// messages, at most at the granted QoS.
func (c *client) subscribed(p *packets.Subscribe, codes []packets.ReasonCode, subID uint32, retained [][]*Message) {
	b := c.b
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
			b.deliver(c.sess, &r, delivery{qos: min(m.QoS, byte(codes[i])), retain: true, subIDs: ids})
		}
	}
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
	if s.client == c && s.disk.saved {
		b.saveSessionLocked(s)
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

// Routing a message to its subscribers and delivering it to each: into the
// write buffer, the inflight window or the session queue.

package mqtt

import (
	"cmp"
	"slices"
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

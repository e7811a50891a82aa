// Routing a message to its subscribers and delivering it to each: into the
// write buffer, the inflight window or the session queue, in one of three
// delivery modes (deliveryMode).

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

// routeCache is what a publishing client's last topic matched, kept while
// the subscription tree has not changed: a device or a benchmark publisher
// sends to the same topic again and again, and the walk down the tree (its
// read lock shared with every other publisher) is then done once.
type routeCache struct {
	topic []byte // a copy: the routed topic may alias the read buffer
	gen   uint64
	ms    []match // sorted by session, as route needs them; nil: none kept

	// Two more answers a repeating publisher would otherwise pay for on
	// every PUBLISH: named is the last topic name the decoder validated
	// (Publish.DecodeSeen), keeps the cluster's last Keeps answer.
	named []byte
	keeps KeepMemo
}

// routeFrom is route for a message its client published: the matches come
// from the client's routeCache when its topic and the tree's generation are
// the ones it was made for.
func (b *Broker) routeFrom(c *client, r *routed) int {
	rc := &c.routes
	gen := b.subs.Gen() // before the walk: a change during it invalidates the result
	if rc.ms == nil || rc.gen != gen || string(rc.topic) != r.topic {
		clear(rc.ms)
		ms := b.matchTopic(r.topic, rc.ms[:0])
		if ms == nil {
			ms = []match{}
		}
		// The buffer is reused: a client that changes topic on every
		// publish allocates nothing once it holds its longest topic.
		rc.topic = append(rc.topic[:0], r.topic...)
		rc.ms, rc.gen = ms, gen
	}
	n := b.deliverAll(r, rc.ms)
	if b.shared.Len() > 0 && b.sharesLocally(r) {
		n = b.routeShared(r, n)
	}
	return n
}

// forget drops the route cache (an idle connection holds no session
// pointers for it).
func (rc *routeCache) forget() {
	*rc = routeCache{}
}

// matchTopic appends the subscriptions matching topic to ms, ordered by
// session so that one session's subscriptions are adjacent.
func (b *Broker) matchTopic(topic string, ms []match) []match {
	b.subs.Match(topic, func(s *Session, sub subscription) {
		ms = append(ms, match{s, sub})
	})
	if len(ms) > 1 {
		slices.SortFunc(ms, func(a, b match) int { return cmp.Compare(a.s.seq, b.s.seq) })
	}
	return ms
}

// deliverAll delivers r once to each session in ms (ordered by session) and
// says to how many it went.
func (b *Broker) deliverAll(r *routed, ms []match) int {
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
	return n
}

// route delivers r to every session subscribed to its topic, once per
// session at the highest QoS of its matching subscriptions
// ([MQTT-3.3.5-1], [MQTT5-3.3.4-2]), and to one member of each matching
// shared subscription group. scratch is the caller's reusable match slice, returned for the next
// call. It reports how many sessions the message was delivered to. Routing
// allocates nothing for QoS 0 and one shared copy of the message for QoS 1/2.
func (b *Broker) route(r *routed, scratch []match) ([]match, int) {
	ms := b.matchTopic(r.topic, scratch[:0])
	n := b.deliverAll(r, ms)
	clear(ms)
	if b.shared.Len() > 0 && b.sharesLocally(r) {
		n = b.routeShared(r, n)
	}
	return ms[:0], n
}

// deliverMatches merges one session's matching subscriptions into a single
// delivery: highest QoS, RETAIN kept if any asked Retain As Published, every
// Subscription Identifier ([MQTT5-3.3.4-3]).
func (b *Broker) deliverMatches(r *routed, run []match) bool {
	s := run[0].s
	if len(run) == 1 && run[0].sub.opts == 0 && run[0].sub.subID == 0 {
		// The common case: one plain subscription.
		b.deliver(s, r, delivery{qos: min(r.qos, run[0].sub.qos), cover: run[0].sub.cover})
		return true
	}
	var d delivery
	found := false
	for _, m := range run {
		// [MQTT5-3.8.3-3] No Local: not to the client that published it.
		if m.sub.noLocal() && r.from == s.id {
			continue
		}
		found = true
		d.qos = max(d.qos, m.sub.qos)
		d.retain = d.retain || (m.sub.rap() && r.retain)
		if m.sub.cover != nil {
			// The topic matches this filter, which the grants cover.
			d.cover = m.sub.cover
		}
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

// deliveryMode is how deliver hands one message to one session. It is
// chosen in one place, deliveryModeFor, under the session lock.
type deliveryMode uint8

const (
	// deliverDirect: no topic checker is configured, or the session has no
	// connection to check for. The message goes straight into the client's
	// write buffer (QoS 0, or QoS 1/2 while the inflight window has room),
	// else into the session queue; an offline persistent session queues
	// QoS 1/2 for its return. Nothing waits.
	deliverDirect deliveryMode = iota

	// deliverCheckedInline: a receive the subscriber's own grants allow
	// (grantAllows) is not put to the topic checker at all; else a checker
	// that can answer at once (TopicCheckerNow, e.g. from its cache) is
	// asked in line, on the publisher's goroutine. Allowed, the message
	// goes on as deliverDirect; denied, it is dropped (for a shared
	// subscription: offered to another member of the group); when the
	// checker cannot answer at once, it is queued as deliverQueuedChecked.
	deliverCheckedInline

	// deliverQueuedChecked: the message is queued, and the subscriber's
	// writer goroutine runs the receive check (pumpChecked) and sends it if
	// allowed, so a slow answer holds back only this subscriber. Chosen when
	// the checker cannot answer at once, or when something for this
	// subscriber is already queued or being checked: a message decided in
	// line must not overtake one still waiting for its check.
	deliverQueuedChecked
)

// deliveryModeFor chooses how a message for s is delivered, c being its
// attached connection (nil when offline). Caller holds s.mu.
func (b *Broker) deliveryModeFor(s *Session, c *client) deliveryMode {
	switch {
	case c == nil || b.hooks.Topics == nil:
		return deliverDirect
	case c.checking || s.queue.len() > 0:
		return deliverQueuedChecked
	}
	return deliverCheckedInline
}

// deliver hands one message to one session in the mode deliveryModeFor
// chooses. Unless delivered, a shared subscription offers it to another
// member.
func (b *Broker) deliver(s *Session, r *routed, d delivery) deliverResult {
	s.mu.Lock()
	if r.persist && d.qos > 0 && d.seq == 0 && b.persistent(s) {
		// A persistent session's QoS 1/2 goes through the store (which
		// decides again, under its own locking). Asked here first so that
		// a clean session's delivery takes the lock once, not twice.
		s.mu.Unlock()
		if res, took := b.deferToStore(s, r, d); took {
			return res
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	c := s.client
	mode := b.deliveryModeFor(s, c)
	if mode == deliverCheckedInline && !receiveGranted(&c.info, d.cover) && !grantAllows(&c.info, ActionReceive, r.topic) {
		mode = deliverQueuedChecked // unless the checker answers at once
		if b.topicsNow != nil {
			res, ok := b.topicsNow.CheckTopicNow(&c.info, TopicRequest{Action: ActionReceive, Topic: r.topic, QoS: d.qos, Retain: d.retain})
			switch {
			case !ok:
				d.inlineMissed = true
			case !res.Allow:
				b.logDenied(&c.info, "receive", r.topic, res)
				return deliverDenied
			default:
				mode = deliverCheckedInline
			}
		}
	}
	if mode == deliverQueuedChecked {
		d.msg = r.message()
		queued := b.queueOnline(s, r, d)
		c.wakeWriterLocked()
		return b.queuedResult(queued, d)
	}
	// deliverDirect, or checked in line and allowed.
	switch {
	case c == nil:
		// Offline: a persistent session keeps QoS 1/2 for its return.
		if d.qos > 0 && !s.clean {
			d.msg = r.message()
			// Within max-queued; past it only while a new connection is
			// taking the session over (mayOverrunLocked).
			if !b.queueOnline(s, r, d) {
				return b.queuedResult(false, d)
			}
			if b.evMask().Has(EventRetainedMessage) {
				b.emit(&Event{Type: EventRetainedMessage, Topic: r.topic, QoS: d.qos, Message: d.msg, TargetID: s.id})
			}
		}
	case d.qos == 0:
		if len(c.out) >= b.limits.MaxOutboundBytes {
			b.stats.droppedQoS0.Add(1)
			return delivered
		}
		if c.appendPublish(r.topic, r.payload, r.props, r.created(), 0, 0, d.retain, false, d.subIDs) {
			c.wakeByLocked(r.by)
		}
	case s.queue.len() == 0 && !s.inflight.full(s.window):
		if b.sendRouted(s, c, r, d) {
			c.wakeByLocked(r.by)
		}
	default:
		d.msg = r.message()
		return b.queuedResult(b.queueOnline(s, r, d), d)
	}
	return delivered
}

// deliverResult is what deliver did with a message.
type deliverResult uint8

const (
	delivered     deliverResult = iota // sent, queued, or (not shared) dropped and counted
	deliverDenied                      // a receive check answered in line denied it
	deliverNoRoom                      // shared: the session's queue could not take it
)

// queuedResult is deliver's answer once d was queued or not: a message of
// a shared subscription that found no room goes to another member.
func (b *Broker) queuedResult(queued bool, d delivery) deliverResult {
	if queued || d.group == "" {
		return delivered
	}
	return deliverNoRoom
}

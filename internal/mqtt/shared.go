package mqtt

import (
	"cmp"
	"slices"
	"strings"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Shared subscriptions, $share/{group}/{filter} (MQTT 5 §4.8.2; 3.1.1
// clients may use them too). Each matching message goes to one member of
// each group.
//
// Balancing: round robin per shared subscription over the members whose
// connection is up; when none is, round robin over all of them (a persistent
// member's session queues it). When a member's connection ends with
// messages of a group still unacknowledged or queued, they are redelivered
// to another member, so a crashed consumer does not sit on its share.

const sharePrefix = "$share/"

// shareKey identifies one member of one group in the shared tree.
type shareKey struct {
	s     *Session
	group string
}

// shareSub is a member's subscription; id names the shared subscription
// (its full "$share/group/filter"), which is what messages are balanced over.
type shareSub struct {
	sub subscription
	id  string
}

// shareRound is the round-robin state of one shared subscription: kept
// while it has members, so subscribe / unsubscribe rounds leave nothing.
type shareRound struct {
	next    uint64 // position of the next pick
	members int    // sessions subscribed to it
}

// subscribeShared adds (or, when existed, replaces) s's membership of the
// shared subscription id ("$share/group/inner"). group, inner and id must
// be owned strings. Caller holds s.mu.
func (b *Broker) subscribeShared(s *Session, group, inner string, v shareSub, existed bool) {
	b.shared.Subscribe(inner, shareKey{s, group}, v)
	if existed {
		return
	}
	b.shareMu.Lock()
	rr := b.shareRR[v.id]
	if rr == nil {
		rr = &shareRound{}
		b.shareRR[v.id] = rr
	}
	rr.members++
	b.shareMu.Unlock()
}

// unsubscribeShared removes s's membership of the shared subscription id,
// and the subscription's round-robin state with its last member. Caller
// holds s.mu.
func (b *Broker) unsubscribeShared(s *Session, group, inner, id string) {
	b.shared.Unsubscribe(inner, shareKey{s, group})
	b.shareMu.Lock()
	if rr := b.shareRR[id]; rr != nil {
		if rr.members--; rr.members <= 0 {
			delete(b.shareRR, id)
		}
	}
	b.shareMu.Unlock()
}

// shareMatch is one member found for a routed message.
type shareMatch struct {
	s *Session
	shareSub
}

// parseShared splits a subscribe filter. For "$share/g/f" it returns
// ("g", "f", true); for a plain filter ("", filter, valid).
func parseShared(filter string) (group, inner string, ok bool) {
	if !strings.HasPrefix(filter, sharePrefix) {
		return "", filter, packets.ValidTopicFilter(filter)
	}
	rest := filter[len(sharePrefix):]
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return "", "", false // [MQTT-4.8.2-1] a share name of at least one character, then a filter
	}
	group, inner = rest[:i], rest[i+1:]
	// [MQTT-4.8.2-2] the share name has no wildcards.
	if strings.ContainsAny(group, "+#") || !packets.ValidTopicFilter(inner) {
		return "", "", false
	}
	return group, inner, true
}

// routeShared delivers r to one member of every shared subscription whose
// filter matches. n counts deliveries so far; the new total is returned.
func (b *Broker) routeShared(r *routed, n int) int {
	var ms []shareMatch
	b.shared.Match(r.topic, func(k shareKey, v shareSub) {
		ms = append(ms, shareMatch{k.s, v})
	})
	slices.SortFunc(ms, func(a, b shareMatch) int {
		return cmp.Or(strings.Compare(a.id, b.id), cmp.Compare(a.s.seq, b.s.seq))
	})
	for i := 0; i < len(ms); {
		j := i + 1
		for j < len(ms) && ms[j].id == ms[i].id {
			j++
		}
		m := b.pickMember(ms[i:j])
		d := delivery{qos: min(r.qos, m.sub.qos), retain: m.sub.rap() && r.retain, group: m.id}
		if m.sub.subID != 0 {
			d.subIDs = []uint32{m.sub.subID}
		}
		b.deliver(m.s, r, d)
		n++
		i = j
	}
	return n
}

// pickMember chooses the next member of one shared subscription, preferring
// connected ones.
func (b *Broker) pickMember(members []shareMatch) shareMatch {
	var next uint64
	b.shareMu.Lock()
	if rr := b.shareRR[members[0].id]; rr != nil { // nil: the last member just left
		next = rr.next
		rr.next++
	}
	b.shareMu.Unlock()
	start := int(next % uint64(len(members)))
	for k := range members {
		m := members[(start+k)%len(members)]
		m.s.mu.Lock()
		up := m.s.client != nil
		m.s.mu.Unlock()
		if up {
			return m
		}
	}
	return members[start]
}

// takeShared removes from s the deliveries it got through shared
// subscriptions and has not completed. Caller holds s.mu.
func (s *Session) takeShared() []delivery {
	var out []delivery
	s.inflight.retire(func(e *inflightEntry) bool {
		// A QoS 2 message past PUBREC is delivered: only its id remains.
		if e.d.group != "" && e.state == awaitAck {
			out = append(out, e.d)
			return true
		}
		return false
	})
	if s.queue.len() > 0 {
		var keep []delivery
		for s.queue.len() > 0 {
			d := s.queue.pop()
			if d.group != "" {
				out = append(out, d)
			} else {
				keep = append(keep, d)
			}
		}
		for _, d := range keep {
			s.queue.push(d)
		}
	}
	return out
}

// redeliverShared hands deliveries a departed member held to other members
// of the same group; with no other member left they are dropped (counted
// as queue-full drops: nobody can take them).
func (b *Broker) redeliverShared(from *Session, ds []delivery) {
	var ms []shareMatch
	for _, d := range ds {
		ms = ms[:0]
		b.shared.Match(d.msg.Topic, func(k shareKey, v shareSub) {
			if v.id == d.group && k.s != from {
				ms = append(ms, shareMatch{k.s, v})
			}
		})
		if len(ms) == 0 {
			b.stats.droppedQueued.Add(1)
			continue
		}
		slices.SortFunc(ms, func(a, b shareMatch) int { return cmp.Compare(a.s.seq, b.s.seq) })
		m := b.pickMember(ms)
		r := routedFrom(d.msg)
		b.deliver(m.s, &r, delivery{qos: min(d.msg.QoS, m.sub.qos), retain: d.retain, group: d.group})
	}
}

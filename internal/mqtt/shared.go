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
		return "", "", false // [MQTT5-4.8.2-1] a share name of at least one character, then a filter
	}
	group, inner = rest[:i], rest[i+1:]
	// [MQTT5-4.8.2-2] the share name has no wildcards.
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
		if b.offerShared(r, ms[i:j], b.shareStart(ms[i].id, j-i), nil) {
			n++
		}
		i = j
	}
	return n
}

// shareStart advances the round robin of the shared subscription id and
// returns where, among its n members, this message's offer starts.
func (b *Broker) shareStart(id string, n int) int {
	var next uint64
	b.shareMu.Lock()
	if rr := b.shareRR[id]; rr != nil { // nil: the last member just left
		next = rr.next
		rr.next++
	}
	b.shareMu.Unlock()
	return int(next % uint64(n))
}

// shareRefusals is the set of members (Session.seq) whose receive check
// denied one message of a group. Never changed once attached to a
// delivery: extending it copies.
type shareRefusals struct{ seqs []uint64 }

// offerShared gives r to one member of one shared subscription: members are
// its members sorted by seq (without those that refused r already, listed
// in refused), tried in round-robin order from start, connected members
// before offline ones (a persistent offline member's session queues it). A
// member whose receive check denies it in line is passed over; a denial
// found later on the member's writer hands it back (handBackShared). A
// member whose queue is full is passed over too; when every member's is,
// a client's QoS 1/2 message goes past the bound of the first connected
// one, holding its publisher back (queueOnline). Each member is tried at
// most once more; when none takes it, the message is dropped for the
// group, counted. It reports whether a member took it.
func (b *Broker) offerShared(r *routed, members []shareMatch, start int, refused []uint64) bool {
	took, noRoom := b.tryShared(r, members, start, refused)
	switch {
	case took:
	case noRoom && r.qos == 0:
		b.stats.droppedQoS0.Add(1)
	case noRoom:
		b.stats.droppedQueued.Add(1)
	default:
		b.stats.droppedShare.Add(1)
	}
	return took
}

// tryShared is offerShared without counting a message no member took:
// the caller may still find a member elsewhere. noRoom says some member's
// queue was full.
func (b *Broker) tryShared(r *routed, members []shareMatch, start int, refused []uint64) (took, noRoom bool) {
	var full []shareMatch // connected members whose queue was full
	offer := func(m shareMatch, overrun bool) deliverResult {
		d := delivery{qos: min(r.qos, m.sub.qos), retain: m.sub.rap() && r.retain, group: m.id, overrun: overrun}
		if m.sub.subID != 0 {
			d.subIDs = []uint32{m.sub.subID}
		}
		if len(refused) > 0 {
			d.refused = &shareRefusals{refused}
		}
		return b.deliver(m.s, r, d)
	}
	for _, online := range [2]bool{true, false} {
		for k := range members {
			m := members[(start+k)%len(members)]
			if m.s.online() != online {
				continue
			}
			switch offer(m, false) {
			case delivered:
				return true, noRoom
			case deliverNoRoom:
				noRoom = true
				if online {
					full = append(full, m)
				}
			default:
				refused = append(refused[:len(refused):len(refused)], m.s.seq)
			}
		}
	}
	if r.hold != nil {
		for _, m := range full {
			if offer(m, true) == delivered {
				return true, noRoom
			}
		}
	}
	return false, noRoom
}

// online reports whether s has a connection attached.
func (s *Session) online() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client != nil
}

// handBackShared offers d, which from's receive check denied on from's
// writer, to the members of d.group that have not refused it yet, starting
// with the one after from: the asynchronous half of offerShared. Called
// without locks.
func (b *Broker) handBackShared(from *Session, d delivery) {
	var refused []uint64
	if d.refused != nil {
		refused = slices.Clone(d.refused.seqs)
	}
	refused = append(refused, from.seq)
	var ms []shareMatch
	b.shared.Match(d.msg.Topic, func(k shareKey, v shareSub) {
		if v.id == d.group && !slices.Contains(refused, k.s.seq) {
			ms = append(ms, shareMatch{k.s, v})
		}
	})
	if len(ms) == 0 {
		b.stats.droppedShare.Add(1)
		return
	}
	slices.SortFunc(ms, func(a, b shareMatch) int { return cmp.Compare(a.s.seq, b.s.seq) })
	start := 0
	if i := slices.IndexFunc(ms, func(m shareMatch) bool { return m.s.seq > from.seq }); i >= 0 {
		start = i
	}
	r := routedFrom(d.msg)
	b.offerShared(&r, ms, start, refused)
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
// of the same group, as a new message for each: connected members first,
// on this node, then (in a cluster) on other nodes, then offline persistent
// members, here then elsewhere. With no other member anywhere, a
// persistent from keeps them (queued again for its return); otherwise they
// are dropped, counted as queue-full drops. A copy for a persistent member
// is in the store before from's stored copy is removed: a crash in between
// leaves the message twice, never nowhere.
func (b *Broker) redeliverShared(from *Session, ds []delivery) {
	b.redeliverFrom(from, ds, false)
}

// redeliverFrom is redeliverShared; stored says that ds are in from's
// stored queue and not in its memory (a session loaded from the store), so
// one that no other member takes stays where it is.
func (b *Broker) redeliverFrom(from *Session, ds []delivery, stored bool) {
	sc, _ := b.opts.Cluster.(SharedCluster)
	var ms []shareMatch
	for _, d := range ds {
		ms = ms[:0]
		b.shared.Match(d.msg.Topic, func(k shareKey, v shareSub) {
			if v.id == d.group && k.s != from {
				ms = append(ms, shareMatch{k.s, v})
			}
		})
		slices.SortFunc(ms, func(a, b shareMatch) int { return cmp.Compare(a.s.seq, b.s.seq) })
		took := b.offerSharedHere(d.msg, ms, d.group, true) ||
			sc != nil && sc.HandShared(d.msg, d.group, true) ||
			b.offerSharedHere(d.msg, ms, d.group, false) ||
			sc != nil && sc.HandShared(d.msg, d.group, false)
		if !took && stored {
			continue
		}
		if !took && from != nil && b.keepsShared(from) {
			sub, ok := from.sharedSub(d.group)
			took = ok && b.offerSharedHere(d.msg, []shareMatch{{from, sub}}, d.group, false)
		}
		if !took {
			b.stats.droppedQueued.Add(1)
		}
		if from != nil {
			b.handedOff(from, &d)
		}
	}
}

// keepsShared reports whether from, which a shared delivery is being taken
// from, can queue it again: persistent, and still this node's session of
// its client id (it may have resumed meanwhile: it then gets it at once).
func (b *Broker) keepsShared(s *Session) bool {
	b.connMu.Lock()
	cur, ok := b.store.Get(s.id)
	b.connMu.Unlock()
	if !ok || cur != s {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.clean && !s.movedAway
}

// sharedSub returns s's membership of the shared subscription id.
func (s *Session) sharedSub(id string) (shareSub, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.subs[id]
	return shareSub{sub, id}, ok
}

// offerSharedHere offers m to one of members (those of the shared
// subscription id on this node), only the connected ones when online, and
// waits until a persistent member's copy is in the store. It reports
// whether a member took it; one that was not taken is not counted.
func (b *Broker) offerSharedHere(m *Message, members []shareMatch, id string, online bool) bool {
	if online {
		members = slices.DeleteFunc(slices.Clone(members), func(m shareMatch) bool { return !m.s.online() })
	}
	if len(members) == 0 {
		return false
	}
	r := routedFrom(m)
	r.persist = b.disk != nil
	took, _ := b.tryShared(&r, members, b.shareStart(id, len(members)), nil)
	if r.pb != nil {
		done := make(chan error, 1)
		b.commitBatch(r.pb, func(err error) { done <- err })
		if err := <-done; err != nil {
			return false
		}
	}
	return took
}

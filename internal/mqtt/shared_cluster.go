// Shared subscriptions in a cluster: a group's members may be on several
// nodes. The cluster picks a node per message (RouteShared); what a member
// leaving held goes to another member, on another node if need be
// (SharedCluster).

package mqtt

import (
	"cmp"
	"slices"
	"strings"
)

// SharedCluster is implemented by a Cluster whose shared subscriptions
// span nodes: a member's unacknowledged messages go to members on other
// nodes when it leaves and none here can take them.
type SharedCluster interface {
	// HandShared offers m to a member of the shared subscription id
	// ("$share/group/filter") on another node, only a connected one when
	// online. It reports whether one took it: handed to its connection,
	// or in the store for a persistent session. It is called without
	// broker locks and may wait for other nodes (bounded).
	HandShared(m *Message, id string, online bool) bool
}

// RouteShared offers a message to one member, on this node, of the shared
// subscription id ("$share/group/filter"), which the cluster chose this node
// for; only to a connected one when online. A QoS 1/2 copy for a persistent
// member is written to the store first, as a local publish's is. It
// reports whether a member took it; done, if not nil, is called once a
// taken copy is durable, with the store's error (not at all when no member
// took it). A message nobody took is not counted: the cluster may find a
// member elsewhere (SharedDropped counts it when it does not).
func (b *Broker) RouteShared(m *Message, id string, online bool, done func(error)) bool {
	if b.closing.Load() {
		return false
	}
	var ms []shareMatch
	b.shared.Match(m.Topic, func(k shareKey, v shareSub) {
		if v.id == id {
			ms = append(ms, shareMatch{k.s, v})
		}
	})
	if online {
		// Not in Match: the tree's lock is not held with a session's.
		ms = slices.DeleteFunc(ms, func(m shareMatch) bool { return !m.s.online() })
	}
	if len(ms) == 0 {
		return false
	}
	slices.SortFunc(ms, func(a, b shareMatch) int { return cmp.Compare(a.s.seq, b.s.seq) })
	r := routedFrom(m)
	r.persist = b.disk != nil
	took, _ := b.tryShared(&r, ms, b.shareStart(id, len(ms)), nil)
	if !took {
		done = nil
	}
	if r.pb != nil {
		b.commitBatch(r.pb, done)
	} else if done != nil {
		done(nil)
	}
	return took
}

// SharedDropped counts a shared subscription's message that no member on
// any node took.
func (b *Broker) SharedDropped() { b.stats.droppedShare.Add(1) }

// redeliverAdopted hands the shared-subscription deliveries stored for the
// session clientID, just adopted from a node that is gone (its connection
// ended with that node), to other members of their groups, as when a
// member's connection ends here. Those no other member takes stay queued
// for it.
func (b *Broker) redeliverAdopted(clientID string) {
	b.connMu.Lock()
	s, ok := b.store.Get(clientID)
	b.connMu.Unlock()
	if !ok || !s.hasShared() {
		return
	}
	var ds []delivery
	var from uint64
	for {
		qs, err := b.disk.Scan(clientID, from, storePage)
		if err != nil {
			b.storeFailed(err, "read queue", clientID)
			break
		}
		for i := range qs {
			q := &qs[i]
			from = q.Seq + 1
			if q.Group == "" {
				continue
			}
			if m, err := messageFrom(q.Msg); err == nil {
				ds = append(ds, delivery{msg: m, qos: q.QoS, retain: q.Retain, subIDs: q.SubIDs, group: q.Group, seq: q.Seq})
			}
		}
		if len(qs) < storePage {
			break
		}
	}
	if len(ds) > 0 {
		b.redeliverFrom(s, ds, true)
	}
}

// hasShared reports whether s is a member of a shared subscription.
func (s *Session) hasShared() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for f := range s.subs {
		if strings.HasPrefix(f, sharePrefix) {
			return true
		}
	}
	return false
}

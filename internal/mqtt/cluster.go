// The seam to a cluster: what the broker tells the other nodes (publishes,
// interest in topics, client ids it takes on), and the entry points through
// which what they send arrives here. Without Options.Cluster every call is a
// nil check.

package mqtt

import (
	"cmp"
	"slices"
	"strings"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Cluster links the broker to the other nodes of a cluster. Its methods are
// called on connection goroutines, some under a session's lock: Forward,
// Interest and Release must not call back into the broker synchronously.
type Cluster interface {
	// Forward hands a message this node accepted to the nodes interested in
	// its topic. A retained one is stored for every node before Forward
	// returns, so it is visible everywhere once the publisher has its
	// acknowledgement. The arguments may alias a read buffer: Forward copies
	// what it keeps.
	Forward(topic string, payload []byte, qos byte, retain bool, from string, props *packets.Properties)
	// Interest reports that a session of this node subscribed to filter
	// (add) or no longer does: once per session and filter, plain or shared
	// ("$share/group/filter"). The cluster counts them.
	Interest(filter string, add bool)
	// Subscribed runs before a SUBACK: the interest just added is in effect
	// at the other nodes, and retained messages they stored are known here.
	Subscribed()
	// Claim makes this node the owner of clientID before its CONNACK; a
	// connection with that id on another node is closed.
	Claim(clientID string)
	// Release says the session of clientID ended on this node.
	Release(clientID string)
}

// forward passes a message routed here to the cluster; $SYS stays per node.
func (b *Broker) forward(r *routed) {
	if c := b.opts.Cluster; c != nil && !isSysTopic(r.topic) {
		c.Forward(r.topic, r.payload, r.qos, r.retain, r.from, r.props)
	}
}

// interest reports a plain filter gained or lost on this node.
func (b *Broker) interest(filter string, add bool) {
	if c := b.opts.Cluster; c != nil {
		c.Interest(filter, add)
	}
}

func (b *Broker) clusterSubscribed() {
	if c := b.opts.Cluster; c != nil {
		c.Subscribed()
	}
}

func (b *Broker) claim(clientID string) {
	if c := b.opts.Cluster; c != nil {
		c.Claim(clientID)
	}
}

func (b *Broker) release(clientID string) {
	if c := b.opts.Cluster; c != nil {
		c.Release(clientID)
	}
}

// sharesLocally reports whether route offers r to the shared subscriptions
// itself. In a cluster the groups span nodes: Forward hands every message to
// the cluster, which picks one member node per group and calls RouteShared
// there. $SYS stays per node.
func (b *Broker) sharesLocally(r *routed) bool {
	return b.opts.Cluster == nil || isSysTopic(r.topic)
}

// RouteShared offers a message to one member, on this node, of the shared
// subscription id ("$share/group/filter"), which the cluster chose this node
// for. It reports whether a member took it.
func (b *Broker) RouteShared(m *Message, id string) bool {
	if b.closing.Load() {
		return false
	}
	r := routedFrom(m)
	var ms []shareMatch
	b.shared.Match(r.topic, func(k shareKey, v shareSub) {
		if v.id == id {
			ms = append(ms, shareMatch{k.s, v})
		}
	})
	if len(ms) == 0 {
		return false
	}
	slices.SortFunc(ms, func(a, b shareMatch) int { return cmp.Compare(a.s.seq, b.s.seq) })
	return b.offerShared(&r, ms, b.shareStart(id, len(ms)), nil)
}

// RouteRemote delivers a message another node accepted to this node's
// plain subscribers, as route does, without storing it as retained (the
// cluster keeps retained messages) and without forwarding it again. Shared
// subscriptions get it through RouteShared. It returns the number of sessions reached.
func (b *Broker) RouteRemote(m *Message) int {
	if b.closing.Load() {
		return 0
	}
	r := routedFrom(m)
	var ms []match
	b.subs.Match(r.topic, func(s *Session, sub subscription) { ms = append(ms, match{s, sub}) })
	if len(ms) > 1 {
		slices.SortFunc(ms, func(a, b match) int { return cmp.Compare(a.s.seq, b.s.seq) })
	}
	n := 0
	for i := 0; i < len(ms); {
		j := i + 1
		for j < len(ms) && ms[j].s == ms[i].s {
			j++
		}
		if b.deliverMatches(&r, ms[i:j]) {
			n++
		}
		i = j
	}
	return n
}

// ApplyRetained sets (m non-nil) or clears the retained message of topic as
// another node stored it.
func (b *Broker) ApplyRetained(topic string, m *Message) {
	if m == nil {
		b.retain.Delete(topic)
		return
	}
	b.retain.Set(strings.Clone(topic), m)
}

// TakenOverRemotely closes the connection of clientID on this node because a
// client with that id connected to another node (MQTT 5: DISCONNECT 0x8E),
// and discards its session here: the node that took it over owns it now.
// It reports whether a session was found.
func (b *Broker) TakenOverRemotely(clientID string) bool {
	b.connMu.Lock()
	s, ok := b.store.Get(clientID)
	if !ok {
		b.connMu.Unlock()
		return false
	}
	s.mu.Lock()
	prev := s.client
	s.client = nil
	orphans := s.takeShared()
	s.mu.Unlock()
	if prev != nil {
		b.stats.takeovers.Add(1)
		prev.closeTakenOver()
	}
	will := b.discardSession(s)
	b.connMu.Unlock()
	if len(orphans) > 0 {
		b.redeliverShared(nil, orphans)
	}
	b.publishWill(will)
	return true
}

// HasSession reports whether clientID has a session on this node. It waits
// for a CONNECT being attached, so it answers after any takeover in progress.
func (b *Broker) HasSession(clientID string) bool {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	_, ok := b.store.Get(clientID)
	return ok
}

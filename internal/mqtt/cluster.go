// The seam to a cluster: what the broker tells the other nodes (publishes,
// interest in topics, client ids it takes on), and the entry points through
// which what they send arrives here. Without Options.Cluster every call is a
// nil check.

package mqtt

import (
	"errors"
	"strings"
	"sync"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Cluster links the broker to the other nodes of a cluster. Its methods are
// called on connection goroutines, some under a session's lock: Forward,
// Interest and Release must not call back into the broker synchronously.
type Cluster interface {
	// Forward hands a message this node accepted to the nodes interested in
	// its topic. A retained one was given to StoreRetained first. The
	// arguments may alias a read buffer: Forward copies what it keeps.
	// done, when not nil (a client's QoS 1/2 publish), is called once, maybe
	// before Forward returns, when the nodes known to subscribe to the
	// topic confirmed they have it (in their store, for persistent
	// sessions), with an error when they did not in time: the publisher's
	// acknowledgement waits for it. It must not block. memo, when not nil,
	// is the publishing connection's KeepMemo that Keeps was just given for
	// this message.
	Forward(topic string, payload []byte, qos byte, retain bool, from string, props *packets.Properties, memo *KeepMemo, done func(error))
	// Keeps reports whether a message on topic stays on this node: no
	// other node and no shared group is known to want it, so Forward would
	// send it nowhere. A client's publish asks first: one of QoS 1/2 that
	// stays costs neither a wait nor its allocations. memo, when not nil,
	// is the publishing connection's KeepMemo, owned by its reader: the
	// cluster may answer from it and keep its answer there.
	Keeps(topic string, memo *KeepMemo) bool
	// StoreRetained stores a retained message (an empty payload clears the
	// topic) for every node, and applies it here, before it is routed: it
	// is visible everywhere once the publisher has its acknowledgement. An
	// error means no other node will see it; the broker then refuses a
	// client's publish. The arguments may alias a read buffer.
	StoreRetained(topic string, payload []byte, qos byte, from string, props *packets.Properties) error
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
	// TakeOver is Claim when the nodes share the store (SharedStore): the
	// node that held clientID closes its connection and, unless discard
	// (a clean start), lets its session go, leaving it in the store, before
	// TakeOver returns. handedOver says that node held a persistent
	// session and published or cancelled its will itself. An error means
	// that node is alive but did not answer in time: the CONNECT is
	// refused. It is called without broker locks and calls back HandOver
	// on the other node.
	TakeOver(clientID string, discard bool) (handedOver bool, err error)
}

// forward passes a message the broker itself published (a will, one from
// the admin API) to the cluster, storing it first when retained: nobody
// waits for an acknowledgement, so a failure is only counted and logged by
// the cluster. $SYS stays per node.
func (b *Broker) forward(r *routed) {
	if r.retain {
		b.shareRetained(r.topic, r.payload, r.qos, r.from, r.props)
	}
	if c := b.opts.Cluster; c != nil && !isSysTopic(r.topic) {
		c.Forward(r.topic, r.payload, r.qos, r.retain, r.from, r.props, nil, nil)
	}
}

// forwardPublished passes a client's message to the cluster; a retained
// one was stored by admitRetained. For QoS 1/2 it returns what the
// acknowledgement waits for: the nodes subscribed to the topic having the
// message, so that a node dying after the PUBACK does not lose it.
func (b *Broker) forwardPublished(r *routed) *forwardWait {
	c := b.opts.Cluster
	if c == nil || isSysTopic(r.topic) {
		return nil
	}
	var memo *KeepMemo
	if r.by != nil {
		memo = &r.by.routes.keeps
	}
	// Asked for QoS 0 too: from the connection's memo, a repeating
	// publisher's topic that stays here costs a comparison, where Forward
	// would walk the cluster's table again to find it wanted by none.
	if c.Keeps(r.topic, memo) {
		return nil // acknowledged as on a single node
	}
	if r.qos == 0 {
		c.Forward(r.topic, r.payload, r.qos, r.retain, r.from, r.props, memo, nil)
		return nil
	}
	fw := new(forwardWait)
	c.Forward(r.topic, r.payload, r.qos, r.retain, r.from, r.props, memo, fw.complete)
	return fw
}

// KeepMemo is one connection's last Keeps answer, kept for the Cluster,
// which alone reads and writes its fields. A publisher repeating one topic
// then costs the cluster a comparison instead of a walk of what the other
// nodes subscribe to, for as long as that has not changed (Gen: the
// cluster's own generation of it, read before the walk so that a change
// during it invalidates the answer).
type KeepMemo struct {
	Topic []byte // a copy: the topic asked about may alias a read buffer
	Gen   uint64
	Keeps bool
	Set   bool // Topic, Gen and Keeps hold an answer
	// Extra is the Cluster's, kept with the answer (Forward is given the
	// memo too): what else it found out about Topic at Gen.
	Extra any
}

// ErrForwardUnconfirmed is what a Cluster passes to Forward's done when
// the nodes subscribed to the topic did not confirm the message: its
// publisher is refused (MQTT 5: 0x80; 3.1.1: the connection is closed) and
// sends it again.
var ErrForwardUnconfirmed = errors.New("cluster: other nodes did not confirm the message")

// forwardWait is the cluster's answer for one forwarded QoS 1/2 message,
// which may come before or after its acknowledgement is queued.
type forwardWait struct {
	mu   sync.Mutex
	done bool
	err  error
	c    *client // and a: the acknowledgement that waits (then)
	a    *pendingAck
}

func (f *forwardWait) complete(err error) {
	f.mu.Lock()
	if f.done {
		f.mu.Unlock()
		return
	}
	f.done, f.err = true, err
	c, a := f.c, f.a
	f.mu.Unlock()
	if c != nil {
		c.ackReady(a, err)
	}
}

// then marks one wait of c's acknowledgement a done with the answer (a
// closure per message cost an allocation), now if it came already.
func (f *forwardWait) then(c *client, a *pendingAck) {
	f.mu.Lock()
	if f.done {
		f.mu.Unlock()
		c.ackReady(a, f.err)
		return
	}
	f.c, f.a = c, a
	f.mu.Unlock()
}

func (b *Broker) shareRetained(topic string, payload []byte, qos byte, from string, props *packets.Properties) error {
	if c := b.opts.Cluster; c != nil && !isSysTopic(topic) {
		return c.StoreRetained(topic, payload, qos, from, props)
	}
	return nil
}

// errRetainNotStored closes a 3.1.1 connection whose retained PUBLISH the
// cluster could not store: 3.1.1 has no negative acknowledgement, and a
// positive one would promise a retained message the other nodes never see.
var errRetainNotStored = &protoError{packets.UnspecifiedError, "retained PUBLISH not stored in the cluster"}

// admitRetained stores an allowed retained PUBLISH for the cluster before it
// is routed or acknowledged. When that fails the message is refused:
// neither routed nor retained here, and MQTT 5 hears 0x80 (a QoS 0 one is
// dropped), 3.1.1 loses its connection. The cluster counts and logs it.
func (c *client) admitRetained(p *packets.Publish) (packets.ReasonCode, string, error) {
	if !p.Retain || c.b.opts.Cluster == nil {
		return packets.Success, "", nil
	}
	var props *packets.Properties
	if c.version == packets.V5 && forwardable(&p.Props) {
		props = &p.Props
	}
	err := c.b.shareRetained(p.Topic, p.Payload, p.QoS, c.info.ClientID, props)
	if err == nil {
		return packets.Success, "", nil
	}
	if c.version != packets.V5 {
		return 0, "", errRetainNotStored
	}
	return packets.UnspecifiedError, "retained message not stored in the cluster", nil
}

// noMatching reports whether an MQTT 5 PUBACK or PUBREC may say "no
// matching subscribers" (0x10) for a message that reached n sessions here.
// In a cluster it never does: subscribers on other nodes, and shared
// subscriptions, are not counted on this node.
func (b *Broker) noMatching(n int) bool { return n == 0 && b.opts.Cluster == nil }

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

// routeRemote delivers a message another node accepted to this node's
// plain subscribers, as route does, without storing it as retained (the
// cluster keeps retained messages) and without forwarding it again. Shared
// subscriptions get it through RouteShared. A QoS 1/2 delivery to a
// persistent session is written to the store, as a local publish's is
// (left in r.pb for the caller to commit): it is then in the session's
// stored queue, wherever the session is resumed.
func (b *Broker) routeRemote(r *routed, scratch []match) ([]match, int) {
	ms := b.matchTopic(r.topic, scratch[:0])
	n := b.deliverAll(r, ms)
	clear(ms)
	return ms[:0], n
}

// RemoteBatch routes the messages another node sent in one batch
// (routeRemote) and commits what they write to the store in one
// commit (a commit per message cost more than its writes). Nil when the
// broker is closing: nothing is routed, and nobody answers.
func (b *Broker) RemoteBatch() *RemoteBatch {
	if b.closing.Load() {
		return nil
	}
	return &RemoteBatch{b: b}
}

// RemoteBatch is a batch of messages from another node being routed. One
// goroutine uses it.
type RemoteBatch struct {
	b   *Broker
	pbs []*pubBatch
	ms  []match // routeRemote's scratch, reused for every message
}

// Route delivers m to this node's plain subscribers (routeRemote); its
// store writes wait for Commit. It returns the sessions reached.
func (rb *RemoteBatch) Route(m *Message) int {
	b := rb.b
	r := routedFrom(m)
	r.persist = b.disk != nil
	var n int
	rb.ms, n = b.routeRemote(&r, rb.ms)
	if r.pb != nil {
		rb.pbs = append(rb.pbs, r.pb)
	}
	return n
}

// Commit commits what the routed messages wrote to the store, in the
// order they were routed, and calls done once it is durable (at once when
// they wrote nothing), with the store's error.
func (rb *RemoteBatch) Commit(done func(error)) {
	if len(rb.pbs) == 0 {
		done(nil)
		return
	}
	pbs := rb.pbs
	rb.pbs = nil
	rb.b.commitPubBatches(pbs, done)
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

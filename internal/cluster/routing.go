package cluster

import (
	"encoding/json"
	"hash/maphash"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/mqtt/topics"
)

// maxSubject keeps a subject well inside NATS's default control line
// (4 KiB): a longer one would make the server close the connection.
const maxSubject = 3500

// router carries messages between nodes. Each distinct filter subscribed
// on this node is one interest, counted by the broker (Interest is called
// on the first and last subscription only) and held as one or two NATS
// subscriptions. Overlapping filters ("a/+" and "a/#") make NATS deliver a
// message once per matching subscription; the message is routed only from
// its canonical interest, the lowest-numbered one whose filter matches the
// topic by MQTT's rules, so it reaches the broker once.
type router struct {
	n       *Node
	mu      sync.Mutex
	filters map[string]*interest
	canon   *topics.Tree[uint64, struct{}]
	nextID  uint64
	sent    atomic.Uint64 // subscriptions sent to NATS
	flushed atomic.Uint64 // of those, how many NATS confirmed

	peers     *peerTable
	seq       uint64        // of this node's last announcement; under mu
	rejoined  bool          // the Rejoined mark was announced; under mu
	except    []string      // its Except; under mu
	announced atomic.Uint64 // seq, once published

	// The plain subscriptions are channel subscriptions: NATS's read loop
	// puts their messages on one of the inboxes (picked by subject, so a
	// subject's messages keep their order), and one goroutine per inbox
	// routes them. An asynchronous subscription per filter would cost a
	// goroutine and a pending list each: 100 k filters, a third of a
	// gigabyte. plain maps a subscription to its interest and counter.
	inbox []chan *nats.Msg
	seed  maphash.Seed
	plain sync.Map // *nats.Subscription → *plainSub
}

type interest struct {
	id    uint64
	count int // sessions of this node subscribed to the filter
	subs  []*nats.Subscription
	// done counts, per plain subscription, the messages it has finished
	// routing, so a handover can wait for those already received (drain).
	done []*atomic.Int64
}

// plainSub is one NATS subscription of a plain filter.
type plainSub struct {
	id   uint64 // its interest's
	done atomic.Int64
}

func newRouter(n *Node) *router {
	r := &router{n: n, filters: make(map[string]*interest), canon: topics.NewTree[uint64, struct{}](),
		peers: newPeerTable(n), seed: maphash.MakeSeed()}
	r.inbox = make([]chan *nats.Msg, max(2, runtime.GOMAXPROCS(0)))
	for i := range r.inbox {
		r.inbox[i] = make(chan *nats.Msg, n.opts.ReceiveQueue)
	}
	return r
}

// dispatch routes the messages of one inbox until the node closes.
func (r *router) dispatch(inbox chan *nats.Msg) {
	defer r.n.wg.Done()
	// The answers for the batches this goroutine routed and committed
	// itself (no store write to wait for), sent once the inbox is empty
	// (or after maxInlineAnswers batches): one message for all of them,
	// from here, with no hand-off to the node's answering goroutine.
	owed := newAnswers()
	var buf []byte
	batches := 0
	for {
		if batches > 0 && (len(inbox) == 0 || batches >= maxInlineAnswers) {
			buf = owed.sendOwed(r.n.nc, buf)
			batches = 0
		}
		select {
		case <-r.n.ctx.Done():
			return
		case m := <-inbox:
			batches++
			v, ok := r.plain.Load(m.Sub)
			if !ok {
				// Subscribed just now (interest stores it under mu, after
				// NATS may have delivered already), or unsubscribed since:
				// then an id no interest has, so nobody here routes it, as
				// the filter is gone.
				r.mu.Lock()
				v, ok = r.plain.Load(m.Sub)
				r.mu.Unlock()
			}
			if !ok {
				r.receive(0, m, owed)
				continue
			}
			ps := v.(*plainSub)
			r.receive(ps.id, m, owed)
			ps.done.Add(1)
		}
	}
}

// Interest implements mqtt.Cluster.
func (n *Node) Interest(filter string, add bool) { n.routes.interest(filter, add) }

func (r *router) interest(filter string, add bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.filters[filter]
	switch {
	case add && in != nil:
		in.count++
	case add:
		r.nextID++
		in = &interest{id: r.nextID, count: 1}
		r.filters[filter] = in
		if group, inner, ok := sharedFilter(filter); ok {
			in.subs = r.subscribeShared(filter, group, inner)
			// Shared groups are served through NATS, this node's members
			// too: a message for one always goes there.
			r.peers.subscribe(inner, peerFilter{r.n.opts.Name, filter})
		} else {
			in.subs, in.done = r.subscribePlain(filter, in.id)
			r.canon.Subscribe(filter, in.id, struct{}{})
		}
		r.sent.Add(1)
		r.announce(filter, true)
	case in != nil:
		if in.count--; in.count > 0 {
			return
		}
		for _, s := range in.subs {
			s.Unsubscribe()
			r.plain.Delete(s)
		}
		delete(r.filters, filter)
		r.canon.Unsubscribe(filter, in.id)
		if _, inner, ok := sharedFilter(filter); ok {
			r.peers.unsubscribe(inner, peerFilter{r.n.opts.Name, filter})
		}
		r.announce(filter, false)
	}
}

// announce tells the other nodes that this node gained or lost filter; it
// goes out on the connection that carries the filter's NATS subscription,
// after it, so a node that has the announcement can rely on NATS having
// the subscription. Caller holds r.mu, which orders the announcements.
func (r *router) announce(filter string, add bool) {
	r.mark(announcement{Filter: filter, Add: add})
}

// beat sends a heartbeat: the last announcement's sequence number.
func (r *router) beat() {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.n
	data, _ := json.Marshal(announcement{Node: n.opts.Name, Epoch: n.instance, Seq: r.seq, Beat: true})
	n.nc.Publish(n.annSubject(), data)
}

// subscribePlain subscribes the subjects of a plain filter, each to its
// inbox.
func (r *router) subscribePlain(filter string, id uint64) ([]*nats.Subscription, []*atomic.Int64) {
	var subs []*nats.Subscription
	var dones []*atomic.Int64
	for _, s := range filterSubjects(filter) {
		subj := r.n.subject("m", s)
		ps := &plainSub{id: id}
		sub, err := r.n.nc.ChanSubscribe(subj, r.inbox[maphash.String(r.seed, subj)%uint64(len(r.inbox))])
		if err != nil {
			r.n.log.Warn("cluster: cannot subscribe; messages from other nodes will not reach this filter",
				"filter", filter, "err", err)
			continue
		}
		r.plain.Store(sub, ps)
		subs = append(subs, sub)
		dones = append(dones, &ps.done)
	}
	return subs, dones
}

// drain waits until the messages this node has received so far for the
// plain filters given have been routed, or until deadline: they wait in
// the inboxes, so a message that arrived before a handover request may not
// have reached the session yet when the request is served.
func (r *router) drain(filters []string, deadline time.Time) {
	type target struct {
		done *atomic.Int64
		want int64
	}
	var ts []target
	r.mu.Lock()
	for _, f := range filters {
		in := r.filters[f]
		if in == nil {
			continue
		}
		for i, sub := range in.subs {
			// What NATS put on the inbox so far: routed once done has it.
			if delivered, err := sub.Delivered(); err == nil {
				ts = append(ts, target{done: in.done[i], want: delivered})
			}
		}
	}
	r.mu.Unlock()
	for _, t := range ts {
		for t.done.Load() < t.want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
}

// maxInlineAnswers is how many batches a dispatch goroutine routes at
// most before it sends their answers, when its inbox does not empty: a
// backlog delays no confirmation by more than that much routing.
const maxInlineAnswers = 16

// receive routes a batch of messages from another node, once (see
// router), and answers it, when it asks, once all of it is routed and
// stored here: one store commit for the batch. An answer owed as soon as
// the commit returns (nothing to store) is left in owed, for the caller
// to send; one owed later goes through the node's answering goroutine.
func (r *router) receive(id uint64, m *nats.Msg, owed *answers) {
	b := r.n.broker.Load()
	if b == nil {
		return // not started: no answer, its publishers are refused
	}
	rb := b.RemoteBatch()
	if rb == nil {
		return // closing: no answer
	}
	var topic string // of the previous message: a batch has one topic
	mine, other := false, false
	err := eachEnvelope(m.Data, func(msg *mqtt.Message) {
		if msg.Topic != topic || topic == "" {
			topic = msg.Topic
			first := ^uint64(0)
			r.canon.Match(topic, func(k uint64, _ struct{}) { first = min(first, k) })
			// Not subscribed here any more: nothing to route, and the
			// answer says so. Another subscription's: it routes it, and
			// answers.
			mine = first == id
			other = other || first != ^uint64(0) && !mine
		}
		if mine {
			rb.Route(msg)
		}
	})
	if err != nil {
		r.n.stats.RemoteBad.Add(1)
		r.n.warnBad.warn(r.n.log, "cluster: dropped a malformed message from another node", "subject", m.Subject, "err", err)
	}
	reply := m.Reply
	if err != nil || other {
		reply = "" // malformed: no answer, its publishers are refused
	}
	if reply == "" {
		rb.Commit(func(error) {})
		return
	}
	// Whether the commit is done before Commit returns decides who
	// answers; under owed's lock, as a store's commit calls back from
	// its own goroutine, maybe before Commit returns.
	inline := true
	rb.Commit(func(err error) {
		if err != nil {
			return // a store error: no answer, the publishers are refused
		}
		owed.mu.Lock()
		here := inline && owed.oweLocked(reply, r.n.opts.Name)
		owed.mu.Unlock()
		if !here {
			r.n.confirm(reply)
		}
	})
	owed.mu.Lock()
	inline = false
	owed.mu.Unlock()
}

// forwardTargets reports, in one match of topic, whether a message on it
// must go to NATS (every message while some live peer's set is not known
// here, else one some filter of another node matches), and who must
// confirm it (subscribers calls this): the other nodes known to have a plain
// subscription matching it and the tokens of the matching shared groups;
// and whether a gone node whose sessions may not be adopted yet had one.
func (t *peerTable) forwardTargets(topic string, nodes []string) (_ []string, wanted, gone bool) {
	all := t.all.Load()
	if t.size.Load() == 0 {
		return nodes, all, false
	}
	nodes, wanted, gone = t.walkTargets(topic, nodes)
	return nodes, all || wanted, gone
}

// walkTargets is forwardTargets' walk of the want tree: wanted says some
// filter in it matches topic.
func (t *peerTable) walkTargets(topic string, nodes []string) (_ []string, wanted, gone bool) {
	var shared, orphaned []string
	t.want.Match(topic, func(k peerFilter, _ struct{}) {
		wanted = true
		switch {
		case strings.HasPrefix(k.node, orphanPrefix) && strings.HasPrefix(k.filter, sharePrefix):
			orphaned = append(orphaned, k.filter)
		case strings.HasPrefix(k.node, orphanPrefix):
			gone = true
		case strings.HasPrefix(k.filter, sharePrefix):
			if !slices.Contains(shared, k.filter) {
				shared = append(shared, k.filter)
			}
		case slices.Contains(nodes, k.node):
		default:
			nodes = append(nodes, k.node)
		}
	})
	for _, id := range orphaned {
		// A group a gone node had members of: another node's member can
		// take the message; with none, it waits for the adoption.
		if !slices.Contains(shared, id) {
			gone = true
		}
	}
	for _, id := range shared {
		nodes = append(nodes, t.shareToken(id))
	}
	return nodes, wanted, gone
}

// Forward implements mqtt.Cluster: a retained message is stored for every
// node first, then the message goes to the nodes interested in its topic,
// in a batch of its topic (outbox). One no other node wants (and no
// shared group) stays off NATS.
func (n *Node) Forward(topic string, payload []byte, qos byte, retain bool, from string, props *packets.Properties, memo *mqtt.KeepMemo, done func(error)) {
	var buf [4]string
	expect, wanted, gone := n.routes.peers.targetsMemo(topic, memo, buf[:0])
	if done != nil && gone {
		n.stats.ForwardUnconfirmed.Add(1)
		n.warnUnconfirmed.warn(n.log, "cluster: publish refused: a node that is gone subscribed to its topic, and its sessions may not be adopted yet",
			"topic", topic)
		done(mqtt.ErrForwardUnconfirmed)
		done = nil // sent all the same: nodes that have it keep it
	}
	if !wanted {
		n.stats.ForwardSkipped.Add(1)
		if done != nil {
			done(nil)
		}
		return
	}
	if done != nil && len(expect) == 0 {
		// No node or shared group is known to subscribe (a node not
		// synced yet takes it at most once).
		done(nil)
		done = nil
	}
	if err := n.out.add(topic, payload, qos, retain, from, props, expect, done); err != nil {
		n.stats.ForwardFailed.Add(1)
		n.warnForward.warn(n.log, "cluster: message not forwarded to other nodes", "topic", topic, "err", err)
		if done != nil {
			n.stats.ForwardUnconfirmed.Add(1)
			done(mqtt.ErrForwardUnconfirmed)
		}
		return
	}
	n.stats.Forwarded.Add(1) // now, not when its batch leaves: counted before the publisher's acknowledgement
}

// Keeps implements mqtt.Cluster: a message on topic goes nowhere else
// (forwardTargets would find it wanted by none), and is counted as kept off
// NATS. The answer may be stale by the time Forward runs, as Forward's own
// would be: a SUBACK elsewhere waits for this node to know of its filter.
// memo (the publishing connection's) spares a publisher that repeats its
// topic the walk of the peer table while that table has not changed.
func (n *Node) Keeps(topic string, memo *mqtt.KeepMemo) bool {
	if n.routes.peers.wantsMemo(topic, memo) {
		return false
	}
	n.stats.ForwardSkipped.Add(1)
	return true
}

// wantsMemo reports whether a message on topic must go to NATS, as
// forwardTargets does, without gathering whose answer it waits for: from m
// when m holds the answer for topic at the table's current generation,
// else found and kept in m (m may be nil).
// Only the walk is remembered: all is read on every call (it is what
// forwardTargets reads first too), and size is only a shortcut past an
// empty tree. So the generation that invalidates is the tree's: every
// filter another node announces, every one of a gone node (its orphans)
// and every shared group is in it, and it moves on each change.
func (t *peerTable) wantsMemo(topic string, m *mqtt.KeepMemo) bool {
	if t.all.Load() {
		return true
	}
	if t.size.Load() == 0 {
		return false
	}
	// The want tree's generation moves whenever what is walked here
	// changes: it holds the other nodes' filters, the orphans of gone
	// nodes and the shared groups. Read before the walk: a change during
	// it invalidates the answer.
	gen := t.want.Gen()
	if memoHolds(m, topic, gen) {
		return !m.Keeps
	}
	if m == nil {
		wanted := false
		t.want.Match(topic, func(peerFilter, struct{}) { wanted = true })
		return wanted
	}
	// The memo keeps whose answers a message on topic waits for, which
	// Forward needs next: found in the same walk, at the same generation,
	// and only when the memo is filled (a publisher's topic changes).
	nodes, wanted, gone := t.walkTargets(topic, nil)
	m.Topic = append(m.Topic[:0], topic...)
	m.Gen, m.Keeps, m.Set = gen, !wanted, true
	m.Extra = &memoTargets{nodes: nodes, gone: gone}
	return wanted
}

// memoHolds reports whether m holds the answer for topic at the want
// tree's generation gen: what both Keeps and Forward may take from it.
func memoHolds(m *mqtt.KeepMemo, topic string, gen uint64) bool {
	return m != nil && m.Set && m.Gen == gen && string(m.Topic) == topic
}

// memoTargets is what a KeepMemo keeps for Forward (Extra): forwardTargets'
// answer for the memo's topic at its generation.
type memoTargets struct {
	nodes []string // not to be appended to: Forward's callers share it
	gone  bool
}

// targetsMemo is forwardTargets(topic, nodes), answered from m (the memo
// Keeps was just given) while it holds the answer for topic at the want
// tree's current generation. all is read on every call, as forwardTargets
// reads it; a memo is only filled while the tree is not empty.
func (t *peerTable) targetsMemo(topic string, m *mqtt.KeepMemo, nodes []string) (_ []string, wanted, gone bool) {
	if t.size.Load() > 0 && memoHolds(m, topic, t.want.Gen()) && !m.Keeps {
		if mt, ok := m.Extra.(*memoTargets); ok {
			return mt.nodes, true, mt.gone
		}
	}
	return t.forwardTargets(topic, nodes)
}

// StoreRetained implements mqtt.Cluster.
func (n *Node) StoreRetained(topic string, payload []byte, qos byte, from string, props *packets.Properties) error {
	return n.retained.store(topic, payload, qos, from, time.Now(), props)
}

// Subscribed implements mqtt.Cluster: NATS has every subscription sent so
// far, and every other live node acknowledged the announcements of the
// filters added (so a message published elsewhere after the SUBACK reaches
// this node), and retained messages stored by other nodes are applied here.
func (n *Node) Subscribed() {
	r := n.routes
	// Three waits on NATS, each a round trip or more: in parallel.
	caught := make(chan struct{})
	go func() {
		defer close(caught)
		n.retained.catchUp()
	}()
	if sent := r.sent.Load(); r.flushed.Load() < sent {
		shared := make(chan error, 1)
		go func() { shared <- n.ncShared.FlushTimeout(opTimeout) }()
		err := n.nc.FlushTimeout(opTimeout)
		if e := <-shared; err == nil {
			err = e
		}
		if err != nil {
			n.log.Warn("cluster: NATS did not confirm new subscriptions", "err", err)
		} else {
			for f := r.flushed.Load(); f < sent && !r.flushed.CompareAndSwap(f, sent); f = r.flushed.Load() {
			}
		}
	}
	r.peers.await(r.announced.Load())
	<-caught
}

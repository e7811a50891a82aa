package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mqttd/mqttd/internal/mqtt/topics"
)

// Interest announcements let a node keep a message that no other node wants
// off NATS. Every node announces each distinct filter it gains or loses
// (plain and shared alike), numbered by a sequence that starts over with
// each process (its instance, the epoch), on one subject all nodes hear.
// Every node keeps the other nodes' filters in a topic tree, and Forward
// hands a message to NATS only when a filter of another node, or a shared
// subscription of any node (shared groups are served through NATS even on
// the publisher's node), matches its topic.
//
// A skipped message must never be one another node wanted: so a SUBACK
// waits until every other live node (per the node leases) acknowledged the
// announcement of the filters it added, and a node whose copy of a peer's
// set may be stale forwards everything until it has fetched that set
// again. A copy is stale when the peer is new or restarted (a new epoch in
// its lease or its messages), when a sequence number was skipped (a lost
// announcement; heartbeats carry the last number, so even the last one of a
// burst is not lost unnoticed), when the peer was silent for three
// heartbeats (3 s at least) or did not acknowledge an announcement in time, and after this
// node's connection to NATS dropped.

// peerFilter keys one filter of one node in the table.
type peerFilter struct{ node, filter string }

// announcement is a change of a node's interest, or a heartbeat (Beat:
// no change, Seq is its last announcement's). Two marks are numbered in
// the same sequence, so a node applies them after every change before
// them: Rejoined (the sender holds every session its name's earlier runs
// left: their filters are among those announced so far) and Bye (a clean
// shutdown: the filters left are its persistent sessions').
type announcement struct {
	Node     string `json:"n"`
	Epoch    string `json:"e"`
	Seq      uint64 `json:"s"`
	Filter   string `json:"f,omitempty"`
	Add      bool   `json:"a,omitempty"`
	Beat     bool   `json:"b,omitempty"`
	Rejoined bool   `json:"r,omitempty"`
	Bye      bool   `json:"bye,omitempty"`
	// Except, with Rejoined: earlier runs some of whose sessions another
	// node adopted, maybe not loaded yet: not vouched for.
	Except []string `json:"x,omitempty"`
}

// interestSet is a node's interest as of Seq, sent on request: a page of
// it when More (the next page starts after the last filter).
type interestSet struct {
	Node     string   `json:"n"`
	Epoch    string   `json:"e"`
	Seq      uint64   `json:"s"`
	Filters  []string `json:"f"`
	More     bool     `json:"more,omitempty"`
	Rejoined bool     `json:"r,omitempty"` // as of Seq (announcement)
	Except   []string `json:"x,omitempty"`
}

// interestAck acknowledges the announcements of epoch For up to Seq.
type interestAck struct {
	Node  string `json:"n"`
	Epoch string `json:"e"`
	For   string `json:"for"`
	Seq   uint64 `json:"s"`
}

// peer is what this node knows of another node's interest.
type peer struct {
	epoch    string
	seq      uint64              // last announcement applied
	synced   bool                // filters hold its set as of seq
	silent   bool                // did not acknowledge in time: not waited for until it answers a fetch
	fetching bool                // a fetch of its set is under way
	filters  map[string]struct{} // in the table's tree
	pending  []announcement      // received while not synced
	acked    uint64              // this node's announcements it acknowledged
	rejoined bool                // applied its Rejoined mark (announcement)
	except   []string            // the mark's Except
	lease    time.Time           // its lease entry was last seen written
	heard    time.Time           // last message of any kind from it
}

// peerTable holds the other nodes' interest.
type peerTable struct {
	n       *Node
	want    *topics.Tree[peerFilter, struct{}]
	all     atomic.Bool  // forward everything: some live peer's set is not known here
	size    atomic.Int64 // filters in want: none, and Forward need not look
	tick    time.Duration
	timeout time.Duration
	// awaiting counts the callers of await waiting now (tests look).
	awaiting atomic.Int32
	// Shared subscriptions (shared.go): their names in confirmations, by
	// id, and where the next hand-off to another node starts.
	tokens    sync.Map
	shareNext atomic.Uint64
	owed      *answers // under tokens, sent on ncShared

	mu    sync.Mutex
	peers map[string]*peer
	// orphans holds, per run of a node gone (or replaced by a new run of
	// its name), the filters it had, until every live node has finished
	// adopting (adopted), a later run of its name has taken its sessions
	// back (rejoined), or two leases passed.
	orphans map[runKey]*orphanSet
	reports map[string]adoptReport // each node's last adoption pass
	// ended holds, for two leases, the runs (epochs) that said Bye or were
	// replaced by a new run of their name: what they sent before that and
	// arrives late (the lease watch and the announcements are not ordered
	// with each other) is ignored, rather than taken for a newer run.
	ended  map[string]bool
	down   bool          // NATS connection lost: what peers did meanwhile is unknown
	ackCh  chan struct{} // closed and replaced when an acknowledgement arrives
	closed bool
	wg     sync.WaitGroup // fetches

	wmu   sync.Mutex // serialises (re)starting the lease watch
	w     jetstream.KeyWatcher
	wdone chan struct{}
}

func newPeerTable(n *Node) *peerTable {
	t := &peerTable{n: n, want: topics.NewTree[peerFilter, struct{}](), peers: make(map[string]*peer),
		orphans: make(map[runKey]*orphanSet), reports: make(map[string]adoptReport), ended: make(map[string]bool),
		ackCh: make(chan struct{}), owed: newAnswers(), tick: min(n.opts.NodeLease/3, time.Second), timeout: n.opts.InterestTimeout}
	t.all.Store(true) // until the peers are known
	return t
}

func (n *Node) annSubject() string  { return n.subject("interest") }
func (n *Node) ackSubject() string  { return n.subject("node", n.opts.Name, "interest", "ack") }
func (n *Node) fullSubject() string { return n.subject("node", n.opts.Name, "interest", "set") }

// listen subscribes to announcements, acknowledgements and requests for
// this node's set, then loads the node leases: all before this node's own
// lease is written, so a peer that sees the lease finds it answering.
func (t *peerTable) listen() error {
	nc := t.n.nc
	for subj, h := range map[string]nats.MsgHandler{t.n.annSubject(): t.onAnnounce, t.n.adoptedSubject(): t.onAdopted,
		t.n.ackSubject(): t.onAck, t.n.fullSubject(): t.n.routes.onSetRequest, t.n.shareSubject(): t.n.routes.onShareRequest} {
		sub, err := nc.Subscribe(subj, h)
		if err != nil {
			return err
		}
		// Announcements of a busy cluster come in bursts; a dropped one is
		// detected (and the set fetched again), but better not dropped.
		sub.SetPendingLimits(-1, -1)
	}
	if err := nc.FlushTimeout(opTimeout); err != nil {
		return err
	}
	t.n.wg.Add(1)
	go t.owed.loop(t.n, t.n.ncShared)
	loaded, err := t.watchLeases()
	if err != nil {
		return err
	}
	select {
	case <-loaded:
	case <-time.After(opTimeout):
		return errors.New("cluster: the node leases did not load")
	}
	t.mu.Lock()
	t.recomputeLocked(time.Now())
	t.mu.Unlock()
	return nil
}

// subscribers returns the other nodes known to have a plain subscription
// matching topic, the tokens (shareToken) of the shared subscriptions known
// on any node, this one included, whose filter matches it (the node that
// takes the message for one answers under its token), and whether a gone
// node whose sessions may not be adopted yet had a plain one
// (removeLocked).
func (t *peerTable) subscribers(topic string) (nodes []string, gone bool) {
	nodes, _, gone = t.forwardTargets(topic, nil)
	return nodes, gone
}

// sharers returns the other live nodes known to have members of the shared
// subscription id.
func (t *peerTable) sharers(id string) []string {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	var nodes []string
	for name, p := range t.peers {
		if _, ok := p.filters[id]; ok && t.live(p, now) {
			nodes = append(nodes, name)
		}
	}
	slices.Sort(nodes)
	return nodes
}

// treeFilter is what a filter matches: a shared one, its inner filter.
func treeFilter(filter string) string {
	if _, inner, ok := sharedFilter(filter); ok {
		return inner
	}
	return filter
}

// live reports whether p's lease was seen written, or p heard from,
// recently enough: a node still talking is live even if its lease entry
// lags.
func (t *peerTable) live(p *peer, now time.Time) bool {
	last := p.lease
	if p.heard.After(last) {
		last = p.heard
	}
	return now.Sub(last) <= t.n.opts.NodeLease+t.n.opts.NodeLease/2
}

// recomputeLocked sets all: forward everything while NATS is out of reach
// or some live peer's set is not known here.
func (t *peerTable) recomputeLocked(now time.Time) {
	all := t.down
	for _, p := range t.peers {
		if !p.synced && t.live(p, now) {
			all = true
		}
	}
	t.all.Store(all)
}

// peerLocked returns the peer named name, new (and not synced) if unknown.
func (t *peerTable) peerLocked(name string, now time.Time) *peer {
	p := t.peers[name]
	if p == nil {
		p = &peer{filters: make(map[string]struct{}), lease: now, heard: now}
		t.peers[name] = p
		t.all.Store(true)
	}
	return p
}

// epochLocked starts over with a new instance of p: its set is fetched
// afresh. all goes on first, so no message is skipped meanwhile. The old
// run's filters stay as orphans (orphanLocked): a run killed and restarted
// within a lease was never counted gone, and its persistent sessions are
// held nowhere until the new run (or a survivor) takes them.
func (t *peerTable) epochLocked(name string, p *peer, epoch string) {
	t.all.Store(true)
	t.orphanLocked(name, p)
	if p.epoch != "" {
		t.endLocked(p.epoch)
	}
	p.epoch, p.seq, p.synced, p.acked, p.rejoined, p.except = epoch, 0, false, 0, false, nil
	p.pending = slices.DeleteFunc(p.pending, func(a announcement) bool { return a.Epoch != epoch })
}

// subscribe and unsubscribe change want and keep size. The size grows
// before a filter is in the tree and shrinks after it left, so forwardTargets never
// skips the tree while it holds one.
func (t *peerTable) subscribe(filter string, k peerFilter) {
	t.size.Add(1)
	if !t.want.Subscribe(filter, k, struct{}{}) {
		t.size.Add(-1)
	}
}

func (t *peerTable) unsubscribe(filter string, k peerFilter) {
	if t.want.Unsubscribe(filter, k) {
		t.size.Add(-1)
	}
}

func (t *peerTable) unsyncLocked(p *peer) {
	t.all.Store(true)
	p.synced = false
}

func (t *peerTable) applyLocked(name string, p *peer, filter string, add bool) {
	k := peerFilter{name, filter}
	if add {
		p.filters[filter] = struct{}{}
		t.subscribe(treeFilter(filter), k)
	} else {
		delete(p.filters, filter)
		t.unsubscribe(treeFilter(filter), k)
		go t.n.confirms.recheck(name) // not under t.mu: it ends waits
		if _, _, shared := sharedFilter(filter); shared {
			go t.n.confirms.recheck(t.shareToken(filter))
		}
	}
}

func (t *peerTable) removeLocked(name string) {
	p := t.peers[name]
	if p == nil {
		return
	}
	t.orphanLocked(name, p)
	delete(t.peers, name)
}

// runKey names one run of a node: its name and instance (epoch).
type runKey struct{ node, epoch string }

// orphanLocked moves the filters of p's current run, gone or replaced by
// a new run, from the tree into an orphan set of that run. Its persistent
// sessions are adopted by a surviving node, or taken back by a later run
// of its name, which subscribes for them only then. Until that has
// happened, a QoS 1/2 message for them is refused rather than acknowledged
// and lost (Forward); adoption happens within about a lease of the node
// counting as gone. A shared group's message is refused only when no live
// node has members of the group. Caller holds t.mu.
func (t *peerTable) orphanLocked(name string, p *peer) {
	if len(p.filters) == 0 {
		if p.epoch != "" {
			go t.n.confirms.refuse(name) // the run answers nothing more
		}
		return
	}
	k := runKey{name, p.epoch}
	o := t.orphans[k]
	if o == nil {
		o = t.orphanSetLocked(k)
		o.seq, o.synced = p.seq, p.synced
	} else {
		o.synced = false // two sets merged: no longer one run's as of a sequence number
	}
	o.orphaned++
	o.since = p.heard
	if p.lease.After(o.since) {
		o.since = p.lease
	}
	var tokens []string
	for f := range p.filters {
		t.unsubscribe(treeFilter(f), peerFilter{name, f})
		if t.orphanFilterLocked(o, f) {
			tokens = append(tokens, t.shareToken(f))
		}
	}
	clear(p.filters)
	// The run answers nothing more: waits for it end now, refused, not
	// rechecked (a recheck finding no orphans would take them as not
	// wanted); a shared group's waits are looked at again (another
	// node's members may answer). Only then may the orphans be let go
	// of, if the run's sessions are held already.
	go func() {
		t.n.confirms.refuse(name)
		for _, tok := range tokens {
			t.n.confirms.recheck(tok)
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		o.refused++
		t.adoptedLocked(o)
	}()
}

// orphanSetLocked returns a new, empty orphan set for run k, dropped
// after two leases whatever happens meanwhile.
func (t *peerTable) orphanSetLocked(k runKey) *orphanSet {
	o := &orphanSet{run: k}
	t.orphans[k] = o
	time.AfterFunc(2*t.n.opts.NodeLease, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.dropOrphansLocked(o)
	})
	return o
}

// orphanFilterLocked adds f to o and the tree, and reports whether f is
// a shared group's: its messages wait under the group's name, and are
// refused, once looked at again, when no live node has members of it.
func (t *peerTable) orphanFilterLocked(o *orphanSet, f string) (shared bool) {
	if slices.Contains(o.filters, f) {
		return false
	}
	o.filters = append(o.filters, f)
	t.subscribe(treeFilter(f), peerFilter{orphanKey(o.run), f})
	_, _, shared = sharedFilter(f)
	return shared
}

// lateLocked applies an announcement of a run that has ended (ended) and
// arrived after that, to the run's orphaned filters: a removal made in
// sequence (a clean session that ended before a clean shutdown, an
// unsubscribe) lets go of the filter; an addition is orphaned too, as the
// run may have stored it for a persistent session. The lease watch and
// the announcements are not ordered with each other, so the end of a run
// may be seen before its last announcements.
func (t *peerTable) lateLocked(a announcement) {
	if a.Beat {
		return
	}
	k := runKey{a.Node, a.Epoch}
	o := t.orphans[k]
	if a.Add {
		if o == nil {
			o = t.orphanSetLocked(k)
		}
		if t.orphanFilterLocked(o, a.Filter) {
			go t.n.confirms.recheck(t.shareToken(a.Filter))
		}
	}
	switch {
	case o == nil || a.Seq <= o.seq:
	case !o.synced || a.Seq != o.seq+1:
		o.synced = false // one missed: nothing more is let go of
	default:
		o.seq = a.Seq
		if a.Add || a.Rejoined || a.Bye {
			break
		}
		if i := slices.Index(o.filters, a.Filter); i >= 0 {
			o.filters = slices.Delete(o.filters, i, i+1)
			t.unsubscribe(treeFilter(a.Filter), peerFilter{orphanKey(o.run), a.Filter})
		}
		if len(o.filters) == 0 {
			delete(t.orphans, k)
		}
	}
}

type orphanSet struct {
	run     runKey
	filters []string
	since   time.Time // when the run was last heard of
	seq     uint64    // of the run's last announcement applied to filters
	synced  bool      // filters are the run's set as of seq
	// orphaned counts the times the run's filters were moved here,
	// refused the times the waits for its answers were refused after
	// that: until they are equal the set is kept (orphanLocked).
	orphaned, refused int
}

// orphanKey is the node of a run's orphaned filters in want.
func orphanKey(k runKey) string { return orphanPrefix + k.node + "\x00" + k.epoch }

// adoptReport says a node finished an adoption pass: the sessions of the
// nodes not in Live are adopted, by it or by whoever won them.
type adoptReport struct {
	Node string   `json:"n"`
	Live []string `json:"live"`
	at   time.Time
}

func (n *Node) adoptedSubject() string { return n.subject("adopted") }

// adopted records that node finished an adoption pass with live the nodes
// it saw alive, and lets go of the orphans every live node has adopted.
func (t *peerTable) adopted(r adoptReport) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r.at = time.Now()
	t.reports[r.Node] = r
	for _, o := range t.orphans {
		t.adoptedLocked(o)
	}
}

func (t *peerTable) onAdopted(m *nats.Msg) {
	var r adoptReport
	if json.Unmarshal(m.Data, &r) == nil && r.Node != "" {
		t.adopted(r)
	}
}

// adoptedLocked drops the orphan set o once its sessions are held again:
// a later run of its node's name, whose set is known here, applied its
// Rejoined mark (it took back every session its name's earlier runs left,
// and announced their filters before the mark); or this node and every
// live peer finished an adoption pass, after the run was last heard of,
// that counted its node out. Caller holds t.mu.
func (t *peerTable) adoptedLocked(o *orphanSet) {
	if t.orphans[o.run] != o || o.refused < o.orphaned {
		return
	}
	gone := o.run.node
	// A later run of its name that took the sessions back.
	back := func(p *peer) bool { return p.epoch != o.run.epoch && p.synced && p.rejoined }
	if p := t.peers[gone]; p != nil && back(p) && !slices.Contains(p.except, o.run.epoch) {
		t.dropOrphansLocked(o)
		return
	}
	now := time.Now()
	done := func(node string) bool {
		if p := t.peers[node]; node == gone && p != nil {
			return back(p) // its own pass took what nobody else had
		}
		r, ok := t.reports[node]
		return ok && r.at.After(o.since) && !slices.Contains(r.Live, gone)
	}
	if !done(t.n.opts.Name) {
		return
	}
	for name, p := range t.peers {
		if t.live(p, now) && !done(name) {
			return
		}
	}
	t.dropOrphansLocked(o)
}

// rejoinedLocked looks again at the orphans of name's earlier runs, after
// its current run's set or Rejoined mark was applied here.
func (t *peerTable) rejoinedLocked(name string) {
	for k, o := range t.orphans {
		if k.node == name {
			t.adoptedLocked(o)
		}
	}
}

func (t *peerTable) dropOrphansLocked(o *orphanSet) {
	if t.orphans[o.run] != o {
		return
	}
	delete(t.orphans, o.run)
	key := orphanKey(o.run)
	for _, f := range o.filters {
		t.unsubscribe(treeFilter(f), peerFilter{key, f})
	}
}

// orphanPrefix marks, in want, the filters of a node gone (removeLocked).
const orphanPrefix = "\x00gone:"

// onAnnounce applies another node's announcement or heartbeat, and
// acknowledges an announcement once it is applied here, or once this node
// forwards everything until it has fetched that node's set again.
func (t *peerTable) onAnnounce(m *nats.Msg) {
	var a announcement
	if err := json.Unmarshal(m.Data, &a); err != nil || a.Node == "" {
		t.n.stats.RemoteBad.Add(1)
		return
	}
	if a.Node == t.n.opts.Name {
		return
	}
	now := time.Now()
	t.mu.Lock()
	if t.ended[a.Epoch] {
		t.lateLocked(a)
		t.mu.Unlock()
		return
	}
	p := t.peerLocked(a.Node, now)
	if a.Epoch != p.epoch {
		t.epochLocked(a.Node, p, a.Epoch)
	}
	p.heard = now
	switch {
	case !p.synced:
		if !a.Beat {
			p.pending = append(p.pending, a)
		}
	case a.Beat:
		if a.Seq != p.seq {
			t.unsyncLocked(p) // missed one
			t.n.stats.InterestResyncs.Add(1)
		}
	case a.Seq <= p.seq: // a duplicate
	case a.Seq == p.seq+1:
		t.nextLocked(a.Node, p, a)
	default:
		t.unsyncLocked(p)
		t.n.stats.InterestResyncs.Add(1)
		p.pending = append(p.pending, a)
	}
	if t.peers[a.Node] == p && !p.synced {
		t.fetchLocked(a.Node, p)
	}
	// A Rejoined mark is acknowledged once applied (fetchOnce sends it
	// otherwise): the sender's start waits until the others have let go of
	// its earlier runs' filters.
	ack := m.Reply != "" && !a.Beat && (!a.Rejoined || p.synced && p.rejoined)
	t.mu.Unlock()
	if ack {
		t.sendAck(m.Reply, a.Epoch, a.Seq)
	}
}

// sendAck tells, on subject, the run epoch of another node that this node
// has applied its announcements up to seq.
func (t *peerTable) sendAck(subject, epoch string, seq uint64) {
	data, _ := json.Marshal(interestAck{Node: t.n.opts.Name, Epoch: t.n.instance, For: epoch, Seq: seq})
	t.n.nc.Publish(subject, data)
}

// nextLocked applies a, the announcement after p.seq: a filter changed, or
// a mark. A Bye removes p once its set is known here: the filters it has
// left are its persistent sessions', orphaned (removeLocked).
func (t *peerTable) nextLocked(name string, p *peer, a announcement) {
	p.seq = a.Seq
	switch {
	case a.Bye:
		if p.synced {
			t.byeLocked(name, p)
		}
	case a.Rejoined:
		p.rejoined, p.except = true, a.Except
		t.rejoinedLocked(name)
	default:
		t.applyLocked(name, p, a.Filter, a.Add)
	}
}

// byeLocked removes p, whose run said Bye.
func (t *peerTable) byeLocked(name string, p *peer) {
	t.endLocked(p.epoch)
	t.removeLocked(name)
	t.recomputeLocked(time.Now())
}

// endLocked ignores what the run epoch sends from now on, for two leases.
func (t *peerTable) endLocked(epoch string) {
	if t.ended[epoch] {
		return
	}
	t.ended[epoch] = true
	time.AfterFunc(2*t.n.opts.NodeLease, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.ended, epoch)
	})
}

// onAck records another node's acknowledgement of this node's announcements.
func (t *peerTable) onAck(m *nats.Msg) {
	var k interestAck
	if json.Unmarshal(m.Data, &k) != nil || k.For != t.n.instance || k.Node == t.n.opts.Name {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended[k.Epoch] {
		return
	}
	p := t.peerLocked(k.Node, now)
	if k.Epoch != p.epoch {
		t.epochLocked(k.Node, p, k.Epoch)
		t.fetchLocked(k.Node, p)
	}
	p.heard = now
	p.acked = max(p.acked, k.Seq)
	close(t.ackCh)
	t.ackCh = make(chan struct{})
}

// await waits until every other live node acknowledged this node's
// announcements up to seq, or until the timeout: a node that did not
// answer is counted, logged and not waited for again until it answers,
// and its set is fetched again (everything is forwarded meanwhile).
func (t *peerTable) await(seq uint64) {
	if seq == 0 {
		return
	}
	var timer *time.Timer
	t.awaiting.Add(1)
	defer t.awaiting.Add(-1)
	for {
		now := time.Now()
		t.mu.Lock()
		missing := false
		for _, p := range t.peers {
			if p.acked < seq && !p.silent && t.live(p, now) {
				missing = true
				break
			}
		}
		ch := t.ackCh
		t.mu.Unlock()
		if !missing {
			return
		}
		if timer == nil {
			timer = time.NewTimer(t.timeout)
			defer timer.Stop()
		}
		select {
		case <-ch:
		case <-timer.C:
			t.timedOut(seq)
			return
		case <-t.n.ctx.Done():
			return
		}
	}
}

func (t *peerTable) timedOut(seq uint64) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, p := range t.peers {
		if p.acked >= seq || p.silent || !t.live(p, now) {
			continue
		}
		p.silent = true
		t.unsyncLocked(p)
		t.n.stats.InterestTimeouts.Add(1)
		t.n.log.Warn("cluster: a node did not acknowledge a new subscription in time; forwarding every message until it answers",
			"node", name, "timeout", t.timeout.String())
		t.fetchLocked(name, p)
	}
}

// fetchLocked starts fetching p's whole set, unless under way.
func (t *peerTable) fetchLocked(name string, p *peer) {
	if p.fetching || t.closed {
		return
	}
	p.fetching = true
	t.wg.Add(1)
	go t.fetchLoop(name)
}

// fetchLoop fetches a peer's set until it is synced, gone, or this node
// closes, retrying with a doubling wait up to the heartbeat interval.
func (t *peerTable) fetchLoop(name string) {
	defer t.wg.Done()
	wait := 25 * time.Millisecond
	for {
		done := t.fetchOnce(name)
		if !done && t.n.ctx.Err() == nil {
			select {
			case <-t.n.ctx.Done():
			case <-time.After(wait):
				wait = min(wait*2, t.tick)
				continue
			}
		}
		t.mu.Lock()
		if p := t.peers[name]; p != nil {
			p.fetching = false
		}
		t.mu.Unlock()
		return
	}
}

// fetchOnce asks a peer for its set and applies it, with the
// announcements received meanwhile. It reports whether there is nothing
// more to do: synced, or the peer is gone.
func (t *peerTable) fetchOnce(name string) bool {
	t.mu.Lock()
	p := t.peers[name]
	t.mu.Unlock()
	if p == nil {
		return true
	}
	s, err := t.fetchPages(name)
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if p = t.peers[name]; p == nil {
		return true
	}
	if err != nil {
		if !errors.Is(err, nats.ErrNoResponders) {
			return false
		}
		if !t.live(p, now) {
			// Its lease ran out, it was not heard from since, and nothing
			// answers for it: gone.
			t.removeLocked(name)
			t.recomputeLocked(now)
			return true
		}
		// Not connected to NATS now (crashed, or reconnecting: a node
		// that reconnects fetches every set again), so a SUBACK here need
		// not wait for its acknowledgement until it answers.
		p.silent = true
		return false
	}
	if t.ended[s.Epoch] {
		return false // answered before it left; the leases say what follows
	}
	if s.Epoch != p.epoch {
		t.epochLocked(name, p, s.Epoch)
	}
	p.heard, p.silent = now, false
	// The pages were taken at s.Seq or later; every announcement after
	// s.Seq is applied on top, in order. A filter a later page already
	// shows changed is changed again to the same end: set operations in
	// sequence order end where the peer's set is. Meanwhile the table may
	// lack a filter only until that filter's last announcement is applied,
	// and that one is acknowledged only then.
	set := make(map[string]struct{}, len(s.Filters))
	for _, f := range s.Filters {
		set[f] = struct{}{}
	}
	for f := range p.filters {
		if _, ok := set[f]; !ok {
			t.applyLocked(name, p, f, false)
		}
	}
	for f := range set {
		if _, ok := p.filters[f]; !ok {
			t.applyLocked(name, p, f, true)
		}
	}
	p.seq, p.rejoined, p.except = s.Seq, s.Rejoined, s.Except
	slices.SortFunc(p.pending, func(a, b announcement) int { return cmp.Compare(a.Seq, b.Seq) })
	gap, bye := false, false
	for _, a := range p.pending {
		if a.Epoch != p.epoch || a.Seq <= p.seq {
			continue
		}
		if a.Seq != p.seq+1 {
			gap = true
			break
		}
		t.nextLocked(name, p, a)
		bye = bye || a.Bye
	}
	p.pending = nil
	if gap {
		return false
	}
	p.synced = true
	// Everything up to p.seq is applied: said at once, as a Rejoined mark
	// received meanwhile was not acknowledged.
	t.sendAck(t.n.subject("node", name, "interest", "ack"), p.epoch, p.seq)
	if bye {
		t.byeLocked(name, p)
		return true
	}
	t.rejoinedLocked(name)
	t.recomputeLocked(now)
	return true
}

// setRequest asks for the page of a node's set after the filter After
// (in byte order); "" for the first page.
type setRequest struct {
	After string `json:"after,omitempty"`
}

// fetchPages fetches a peer's whole set, a page at a time: a large set
// does not fit one NATS message. The result has the first page's
// sequence number and epoch; a page of another epoch fails the fetch.
func (t *peerTable) fetchPages(name string) (interestSet, error) {
	var all interestSet
	var req setRequest
	for first := true; ; first = false {
		data, _ := json.Marshal(req)
		ctx, cancel := context.WithTimeout(t.n.ctx, t.timeout)
		resp, err := t.n.nc.RequestWithContext(ctx, t.n.subject("node", name, "interest", "set"), data)
		cancel()
		if err != nil {
			return all, err
		}
		var page interestSet
		if err := json.Unmarshal(resp.Data, &page); err != nil {
			return all, err
		}
		switch {
		case first:
			all.Node, all.Epoch, all.Seq = page.Node, page.Epoch, page.Seq
		case page.Epoch != all.Epoch:
			return all, errors.New("cluster: the node restarted while its filters were fetched")
		}
		all.Filters = append(all.Filters, page.Filters...)
		if !page.More || len(page.Filters) == 0 {
			return all, nil
		}
		req.After = page.Filters[len(page.Filters)-1]
	}
}

// rejoin announces, once, that this run holds every session its name's
// earlier runs left (restored from its own store, or adopted from the
// shared one), but for those of the runs in except, which another node
// adopted, so the other nodes let go of those runs' orphaned filters once
// they have applied everything announced before the mark. It returns the
// mark's sequence number (0: announced already).
func (r *router) rejoin(except []string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rejoined {
		return 0
	}
	r.rejoined, r.except = true, except
	r.mark(announcement{Rejoined: true, Except: except})
	return r.seq
}

// bye announces a clean shutdown, after every filter removal this node
// announced: the others orphan only the filters still announced then (its
// persistent sessions'), rather than whatever the lease's removal finds.
func (r *router) bye() {
	r.mu.Lock()
	r.mark(announcement{Bye: true})
	r.mu.Unlock()
	r.n.nc.FlushTimeout(opTimeout)
}

// mark announces a (a filter change or a mark), numbered in the sequence
// of filter changes. Caller holds r.mu.
func (r *router) mark(a announcement) {
	r.seq++
	n := r.n
	a.Node, a.Epoch, a.Seq = n.opts.Name, n.instance, r.seq
	data, _ := json.Marshal(a)
	if err := n.nc.PublishMsg(&nats.Msg{Subject: n.annSubject(), Reply: n.ackSubject(), Data: data}); err != nil {
		// The heartbeats carry the sequence: the other nodes notice the
		// gap and fetch this node's set.
		if a.Bye || a.Rejoined {
			n.log.Warn("cluster: interest announcement not sent", "err", err)
		} else {
			n.log.Warn("cluster: interest announcement not sent", "filter", a.Filter, "err", err)
		}
	}
	r.announced.Store(r.seq)
}

// onSetRequest answers another node's request for a page of this node's
// set: the filters after the request's, in byte order, as many as fit half
// of NATS's max_payload.
func (r *router) onSetRequest(m *nats.Msg) {
	var req setRequest
	if len(m.Data) > 0 && json.Unmarshal(m.Data, &req) != nil {
		return
	}
	budget := int(r.n.nc.MaxPayload() / 2)
	if budget <= 0 {
		budget = 512 << 10
	}
	r.mu.Lock()
	s := interestSet{Node: r.n.opts.Name, Epoch: r.n.instance, Seq: r.seq, Rejoined: r.rejoined, Except: r.except}
	filters := make([]string, 0, len(r.filters))
	for f := range r.filters {
		if f > req.After {
			filters = append(filters, f)
		}
	}
	r.mu.Unlock()
	slices.Sort(filters)
	size := 0
	for _, f := range filters {
		b, _ := json.Marshal(f)
		if size += len(b) + 1; size > budget && len(s.Filters) > 0 {
			s.More = true
			break
		}
		s.Filters = append(s.Filters, f)
	}
	data, _ := json.Marshal(s)
	m.Respond(data)
}

// watchLeases (re)starts following the nodes bucket: each node's lease
// entry says it is live and which instance it is.
func (t *peerTable) watchLeases() (loaded chan struct{}, err error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.w != nil {
		t.w.Stop()
		<-t.wdone
		t.w = nil
	}
	if t.n.ctx.Err() != nil {
		return nil, t.n.ctx.Err()
	}
	w, err := t.n.nodes.WatchAll(t.n.ctx)
	if err != nil {
		return nil, err
	}
	t.w, t.wdone = w, make(chan struct{})
	loaded = make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		first := true
		for e := range w.Updates() {
			if e == nil {
				if first {
					close(loaded)
					first = false
				}
				continue
			}
			t.onLease(e)
		}
	}(t.wdone)
	return loaded, nil
}

func (t *peerTable) onLease(e jetstream.KeyValueEntry) {
	name := e.Key()
	if name == t.n.opts.Name {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		// Given back on a clean shutdown: what the run announced before
		// and arrives later applies to its orphans only (lateLocked).
		if p := t.peers[name]; p != nil && p.epoch != "" {
			t.endLocked(p.epoch)
		}
		t.removeLocked(name)
		t.recomputeLocked(now)
		return
	}
	var v leaseValue
	json.Unmarshal(e.Value(), &v)
	if t.ended[v.Instance] {
		return // written before it left
	}
	p := t.peerLocked(name, now)
	if v.Instance != "" && v.Instance != p.epoch {
		t.epochLocked(name, p, v.Instance)
	}
	p.lease = now
	if !p.synced {
		t.fetchLocked(name, p)
	}
	t.recomputeLocked(now)
}

// keep sends heartbeats and checks the peers every tick until the node
// closes.
func (t *peerTable) keep() {
	n := t.n
	defer n.wg.Done()
	tk := time.NewTicker(t.tick)
	defer tk.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tk.C:
		}
		n.routes.beat()
		now := time.Now()
		t.mu.Lock()
		for name, p := range t.peers {
			if p.synced && now.Sub(p.heard) > max(3*t.tick, 3*time.Second) {
				t.unsyncLocked(p) // heartbeats stopped: its set may have changed unseen
			}
			if !p.synced || !t.live(p, now) {
				// A peer whose lease ran out is dropped once nothing
				// answers for it (fetchOnce); until then its filters
				// stay, so a node merely slow to renew misses nothing.
				t.fetchLocked(name, p)
			}
		}
		t.recomputeLocked(now)
		t.mu.Unlock()
	}
}

// lost says NATS is out of reach: forward everything from now on, until
// every peer's set was fetched again after the reconnection.
func (t *peerTable) lost() {
	t.mu.Lock()
	t.down = true
	t.all.Store(true)
	t.mu.Unlock()
}

// reconnected fetches every peer's set again and follows the leases
// afresh: announcements made while this node was away never reached it.
func (t *peerTable) reconnected() {
	now := time.Now()
	t.mu.Lock()
	t.down = false
	for name, p := range t.peers {
		t.unsyncLocked(p)
		t.fetchLocked(name, p)
	}
	t.recomputeLocked(now)
	t.mu.Unlock()
	t.n.routes.beat()
	if _, err := t.watchLeases(); err != nil && t.n.ctx.Err() == nil {
		t.n.log.Warn("cluster: cannot follow the node leases", "err", err)
	}
}

// stop ends the fetches and the lease watch.
func (t *peerTable) stop() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
	t.wmu.Lock()
	if t.w != nil {
		t.w.Stop()
		<-t.wdone
		t.w = nil
	}
	t.wmu.Unlock()
}

// Forwarding reports whether the node forwards every message now (some
// other node's interest is not known here), for tests and /metrics.
func (n *Node) Forwarding() bool { return n.routes.peers.all.Load() }

// Sessions that move between the nodes of a cluster sharing one store
// (Options.SharedStore): a persistent session lives in memory on the node
// that owns its client id, and in the store, which every node reads. When
// its client connects to another node, or its node dies, the session is
// loaded there from the store; the node that had it writes what it holds
// and forgets it first (HandOver).

package mqtt

import (
	"hash/maphash"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/store"
)

// sharedStore reports whether the session store is shared with the other nodes
// of a cluster.
func (b *Broker) sharedStore() bool {
	return b.opts.SharedStore && b.opts.Cluster != nil && b.disk != nil
}

// claimSession makes this node the owner of the client's id before its
// session is attached. With a shared store the session may be in memory
// on another node, or only in the store: it is loaded here, and its
// subscriptions are in effect in the cluster, before the other node lets
// it go, so nothing published meanwhile misses it (what both nodes queue
// then is kept once: dropDuplicates). An error means the node that holds
// the session did not hand it over: the CONNECT has been refused.
func (c *client) claimSession(cleanStart bool) error {
	b, id := c.b, c.info.ClientID
	if !b.sharedStore() {
		b.claim(id)
		return nil
	}
	var pre *Session
	var tail uint64
	if !cleanStart {
		pre, tail = b.preload(id)
	}
	handedOver, err := b.opts.Cluster.TakeOver(id, cleanStart)
	if err != nil {
		if pre != nil {
			b.connMu.Lock()
			b.letGo(pre)
			b.connMu.Unlock()
		}
		c.refuseConnect(packets.ServerUnavailable, "the session is held by another node that did not hand it over")
		return err
	}
	b.finishLoad(id, pre, tail, !handedOver)
	return nil
}

// preload restores clientID's stored session, when this node does not
// hold it, with its subscriptions in effect in the cluster but no will
// (a will is the business of the node the client leaves) and not yet
// resumable state: that is read again once the other node has let go.
// tail is where its stored queue ended before this node subscribed for
// it: what both nodes queue from there on may be there twice.
func (b *Broker) preload(clientID string) (pre *Session, tail uint64) {
	b.connMu.Lock()
	if _, ok := b.store.Get(clientID); ok {
		b.connMu.Unlock()
		return nil, 0
	}
	r, err := b.disk.Session(clientID)
	if err != nil {
		b.storeFailed(err, "read session", clientID)
	}
	if r == nil {
		b.connMu.Unlock()
		return nil, 0
	}
	if tail, err = b.queueTail(clientID); err != nil {
		b.storeFailed(err, "read queue", clientID)
	}
	s := newSession(clientID, false)
	_, restored := b.restoreInto(s, r, time.Now(), false)
	b.connMu.Unlock()
	if !restored {
		return nil, 0
	}
	b.clusterSubscribed()
	return s, tail
}

// queueTail is one past the highest sequence number queued for clientID
// (1 when the queue is empty), found with Scan alone: it returns the first
// entry at or after a number, so doubling and then halving needs about
// two reads per bit of the sequence number.
func (b *Broker) queueTail(clientID string) (uint64, error) {
	last, bound := uint64(0), uint64(0) // last exists; nothing at or after bound (0: not known yet)
	for {
		x := last + 1
		switch {
		case bound == 0:
			x = max(2*last, last+1)
		case bound-last <= 1:
			return last + 1, nil
		default:
			x = last + (bound-last)/2
		}
		qs, err := b.disk.Scan(clientID, x, 1)
		if err != nil {
			return 0, err
		}
		if len(qs) == 0 {
			bound = x
		} else {
			last = qs[0].Seq
		}
	}
}

// dupKey names an application message across nodes: the publisher, when
// it entered the cluster, its topic and payload.
type dupKey struct {
	from    string
	created int64
	topic   string
	size    int
	sum     uint64
}

var dupSeed = maphash.MakeSeed()

// dropDuplicates removes from clientID's stored queue, from seq tail on,
// the second copy of each message both nodes queued while the session
// moved (each had the subscription then), keeping the copy in flight if
// one is. It returns how many it removed.
func (b *Broker) dropDuplicates(clientID string, tail uint64) int {
	if tail == 0 {
		return 0
	}
	qs, err := b.disk.Scan(clientID, tail, b.limits.MaxQueued)
	if err != nil {
		b.storeFailed(err, "read queue", clientID)
		return 0
	}
	if len(qs) < 2 {
		return 0
	}
	recs, err := b.disk.Inflight(clientID)
	if err != nil {
		b.storeFailed(err, "read packet ids", clientID)
		return 0
	}
	inflight := make(map[uint64]bool, len(recs))
	for _, r := range recs {
		inflight[r.Seq] = true
	}
	kept := make(map[dupKey]uint64, len(qs))
	var drop []uint64
	for _, q := range qs {
		m := q.Msg
		k := dupKey{m.From, m.Created.UnixNano(), m.Topic, len(m.Payload), maphash.Bytes(dupSeed, m.Payload)}
		first, dup := kept[k]
		switch {
		case !dup:
			kept[k] = q.Seq
		case inflight[q.Seq] && !inflight[first]:
			drop = append(drop, first)
			kept[k] = q.Seq
		default:
			drop = append(drop, q.Seq)
		}
	}
	if len(drop) > 0 {
		b.write(func(bt *store.Batch) {
			for _, seq := range drop {
				bt.Ack(clientID, seq)
			}
		})
		b.syncStore()
	}
	return len(drop)
}

// finishLoad brings clientID's session up to date from the store once no
// other node holds it: pre (preloaded, or nil) gets the record as the
// other node left it and reads its queue and packet ids afresh; without
// pre, a stored session this node does not hold is restored. withWill:
// the will in the record was left by a node that is gone (or by this one
// before a restart), so it is still to be published or cancelled here.
func (b *Broker) finishLoad(clientID string, pre *Session, tail uint64, withWill bool) {
	if pre != nil {
		b.syncStore() // what this node queued for pre meanwhile is in the store
		if n := b.dropDuplicates(clientID, tail); n > 0 {
			b.stats.handoverDuplicates.Add(int64(n))
		}
	}
	b.connMu.Lock()
	s, ok := b.store.Get(clientID)
	if ok && s != pre {
		if pre != nil {
			b.letGo(pre)
		}
		b.connMu.Unlock() // held here already: the usual resume
		return
	}
	r, err := b.disk.Session(clientID)
	if err != nil {
		b.storeFailed(err, "read session", clientID)
	}
	var due *clientWill
	restored := false
	switch {
	case r != nil && pre != nil:
		due, restored = b.restoreInto(pre, r, time.Now(), withWill)
		if !restored {
			b.letGo(pre)
		}
	case r != nil:
		due, restored = b.restoreInto(newSession(clientID, false), r, time.Now(), withWill)
	case pre != nil:
		b.letGo(pre) // ended on the other node meanwhile
	}
	b.connMu.Unlock()
	b.publishWill(due)
	if restored {
		b.clusterSubscribed()
	}
}

// letGo drops s from this node without touching its stored copy: another
// node has it now. This node writes nothing more about it, and its delayed
// will, if any, is cancelled (the session resumes elsewhere). Caller holds
// connMu.
func (b *Broker) letGo(s *Session) {
	s.mu.Lock()
	s.movedAway = true
	b.emptySessionLocked(s) // the delayed will it returns is cancelled
	s.disk = diskState{}
	s.mu.Unlock()
	b.dropSession(s)
}

// HandOver gives clientID's session up to the node its client connected
// to: the connection here is closed (MQTT 5: DISCONNECT 0x8E), and a
// persistent session is dropped from memory, its state left in the shared
// store; with discard (the new connection starts clean) or a session that
// is not persistent, the session ends here as in a local takeover. It
// returns once everything this node wrote is durable, and reports whether
// it held a persistent session that the other node is to resume.
func (b *Broker) HandOver(clientID string, discard bool) (had bool) {
	b.connMu.Lock()
	s, ok := b.store.Get(clientID)
	if !ok {
		b.connMu.Unlock()
		b.syncStore()
		return false
	}
	s.mu.Lock()
	prev := s.client
	s.client = nil
	orphans := s.takeShared()
	keep := !discard && !s.clean && s.disk.saved
	s.mu.Unlock()
	if prev != nil {
		b.stats.takeovers.Add(1)
		prev.closeTakenOver()
	}
	var will *clientWill
	if keep {
		b.letGo(s)
	} else {
		will = b.discardSession(s)
	}
	b.connMu.Unlock()
	if len(orphans) > 0 && !keep {
		// A session that moves keeps its shared deliveries: they are in
		// its stored queue, which the other node resumes now.
		b.redeliverShared(nil, orphans)
	}
	b.publishWill(will)
	b.syncStore()
	return keep
}

// Adopt loads clientID's session from the shared store when this node
// does not hold it, for a node that died: its subscriptions take messages
// again, its will (when its delay has run out, at once) and its expiry run
// here until the client comes back. It reports whether the session
// exists (false: none stored, or it had expired and is removed now).
func (b *Broker) Adopt(clientID string) bool {
	if !b.sharedStore() {
		return false
	}
	if b.closing.Load() {
		return true // not loaded, but not to be forgotten either
	}
	b.connMu.Lock()
	if _, ok := b.store.Get(clientID); ok {
		b.connMu.Unlock()
		return true
	}
	r, err := b.disk.Session(clientID)
	if err != nil {
		b.connMu.Unlock()
		b.storeFailed(err, "read session", clientID)
		return true // kept claimed: it may be readable later
	}
	if r == nil {
		b.connMu.Unlock()
		return false
	}
	due, restored := b.restoreInto(newSession(clientID, false), r, time.Now(), true)
	b.connMu.Unlock()
	b.publishWill(due)
	if restored {
		b.clusterSubscribed()
		b.redeliverAdopted(clientID)
	}
	return restored
}

// syncStore returns once every write this node has made so far is
// durable: commits complete in order, so an empty one behind them does.
func (b *Broker) syncStore() {
	done := make(chan struct{})
	l := &b.wlog
	l.mu.Lock()
	b.commitLocked(&store.Batch{}, func(err error) {
		if err != nil {
			b.storeFailed(err, "write", "")
		}
		close(done)
	})
	l.mu.Unlock()
	<-done
}

// HandoverDuplicates counts the second copies of messages removed from
// the stored queues of sessions that moved here from another node: both
// nodes queued them while the session moved.
func (b *Broker) HandoverDuplicates() int64 { return b.stats.handoverDuplicates.Load() }

// SharesStore reports whether the broker's store is shared by the nodes of
// its cluster (Options.SharedStore).
func (b *Broker) SharesStore() bool { return b.sharedStore() }

// Filters lists the filters clientID's session on this node subscribes
// to, or nil.
func (b *Broker) Filters(clientID string) []string {
	s, ok := b.store.Get(clientID)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := make([]string, 0, len(s.subs))
	for f := range s.subs {
		fs = append(fs, f)
	}
	return fs
}

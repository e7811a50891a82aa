package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Sessions in a store every node shares (mqtt.Options.SharedStore). The
// owner entry of a client id names the node that has its session in
// memory. A node a client connects to claims the entry (compare-and-set),
// loads the session from the store with its subscriptions in effect, and
// then asks the previous owner, on its handover subject, to let go: that
// node closes the connection, drops the session from memory and its
// interest, makes what it wrote durable, and answers. Only then is the
// session read again and resumed here. A previous owner whose lease has
// run out is not asked; one that is alive but does not answer within the
// handover timeout keeps the entry, and the CONNECT is refused.
//
// A node whose lease ran out does not take its sessions with it: every
// node watches the leases, and when one disappears (or at start, for any
// that are gone already, and for this node's own sessions of a previous
// run) it claims the owner entries naming that node, one compare-and-set
// each, and loads the sessions it won, wills and expiry included.

// handoverRequest is what the claiming node sends the previous owner.
type handoverRequest struct {
	ID      string `json:"id"`
	Discard bool   `json:"discard,omitempty"` // the new connection starts clean
}

// errHandoverTimeout refuses a CONNECT whose session another node holds
// and would not let go of.
var errHandoverTimeout = errors.New("cluster: the node holding the session did not hand it over in time")

var errNotStarted = errors.New("cluster: broker not started")

// handOver answers a node that took a client id over, in a goroutine: the
// broker waits for its store there.
func (o *owners) handOver(m *nats.Msg) {
	var req handoverRequest
	if json.Unmarshal(m.Data, &req) != nil || req.ID == "" {
		o.n.stats.RemoteBad.Add(1)
		return
	}
	n := o.n
	n.bgMu.Lock()
	defer n.bgMu.Unlock()
	if n.closed {
		return // no answer: the taker sees this node's lease go
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		had := false
		if b := n.broker.Load(); b != nil {
			n.routes.drain(b.Filters(req.ID), time.Now().Add(n.opts.HandoverTimeout/2))
			had = b.HandOver(req.ID, req.Discard)
		}
		o.mu.Lock()
		delete(o.revs, req.ID)
		o.mu.Unlock()
		n.log.Info("cluster: session handed over to another node", "client_id", req.ID, "resumed", had)
		if had {
			m.Respond([]byte("1"))
		} else {
			m.Respond([]byte("0"))
		}
	}()
}

// TakeOver implements mqtt.Cluster.
func (n *Node) TakeOver(clientID string, discard bool) (bool, error) {
	return n.owners.takeOver(clientID, discard)
}

func (o *owners) takeOver(id string, discard bool) (bool, error) {
	n := o.n
	if !n.nc.IsConnected() {
		n.stats.ClaimFailed.Add(1)
		return false, errors.New("cluster: NATS out of reach; the client id cannot be claimed")
	}
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	key := idKey(id)
	var prev ownerValue
	var rev uint64
	for attempt := 0; ; attempt++ {
		var err error
		prev, rev, err = o.claimOnce(ctx, key)
		if err == nil {
			break
		}
		if !isCASConflict(err) || attempt+1 == casAttempts {
			n.stats.ClaimFailed.Add(1)
			n.warnClaim.warn(n.log, "cluster: client id not claimed", "client_id", id, "err", err)
			return false, fmt.Errorf("cluster: claiming client id: %w", err)
		}
	}
	o.mu.Lock()
	o.revs[id] = rev
	o.mu.Unlock()
	if prev.Node == "" || prev.Node == n.opts.Name {
		return false, nil
	}
	req, _ := json.Marshal(handoverRequest{ID: id, Discard: discard})
	resp, err := n.nc.Request(n.subject("node", prev.Node, "handover"), req, n.opts.HandoverTimeout)
	if err == nil {
		had := string(resp.Data) == "1"
		if had {
			n.stats.HandedOver.Add(1)
		}
		return had, nil
	}
	if !o.alive(ctx, prev.Node) {
		// Its lease ran out: it is gone, and what it held is what it
		// had written to the store.
		n.log.Info("cluster: taking over a session from a node that is gone", "client_id", id, "node", prev.Node)
		return false, nil
	}
	// Alive but silent: it may hold state not yet in the store. The
	// entry goes back to it, unless someone changed it meanwhile.
	n.stats.HandoverRefused.Add(1)
	n.log.Warn("cluster: the node holding a session did not hand it over in time; the client is refused",
		"client_id", id, "node", prev.Node, "timeout", n.opts.HandoverTimeout.String(), "err", err)
	prev.Epoch += 2
	val, _ := json.Marshal(prev)
	if _, uerr := o.kv.Update(ctx, key, val, rev); uerr == nil {
		o.mu.Lock()
		if o.revs[id] == rev {
			delete(o.revs, id)
		}
		o.mu.Unlock()
	}
	return false, errHandoverTimeout
}

// alive reports whether node's lease is held. An error reading it counts
// as alive: taking its sessions over needs proof that it is gone.
func (o *owners) alive(ctx context.Context, node string) bool {
	_, err := o.n.nodes.Get(ctx, node)
	return !errors.Is(err, jetstream.ErrKeyNotFound)
}

// liveNodes lists the nodes whose leases are held.
func (o *owners) liveNodes(ctx context.Context) (map[string]bool, error) {
	l, err := o.n.nodes.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	live := make(map[string]bool)
	for k := range l.Keys() {
		live[k] = true
	}
	return live, nil
}

// adopter looks at the leases every third of a lease, and adopts the
// sessions of the nodes whose leases have gone since it last looked (at
// start: of every node without a lease, and this node's own). A node
// counts as gone once two looks in a row miss its lease: one renewal
// late under load lets the entry lapse for a moment.
func (o *owners) adopter() {
	n := o.n
	defer n.wg.Done()
	t := time.NewTicker(n.opts.NodeLease / 3)
	defer t.Stop()
	var prev map[string]bool // live at the last look; nil: none yet
	var last map[string]bool // seen at the last look; nil: none yet
	// A scan is owed at start and whenever a node seen at one look is gone
	// at the next, until a scan completes. It is not enough to compare
	// with the nodes live at the last complete scan: a node restarted since
	// then and gone again would never be missed.
	owed := true
	for {
		ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
		live, err := o.liveNodes(ctx)
		if err == nil && prev != nil {
			seen := maps.Clone(live)
			maps.Copy(seen, prev)
			for k := range last {
				owed = owed || !seen[k]
			}
			last = seen
			if owed && o.adoptAll(ctx, seen, false) == nil {
				owed = false
			}
		}
		if err == nil {
			prev = live
		}
		cancel()
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// adoptGetFault, set only by tests before any node starts, makes an
// adoption pass's read of an owner entry fail as a timeout would.
var adoptGetFault func(node, key string, live map[string]bool) error

// adoptAll claims the owner entries of nodes not in live, and this node's
// own entries of sessions it does not hold (a previous run's), and loads
// their sessions. With own, only the latter: the pass a restarted node
// makes while its broker starts (Recovered), before its listeners open;
// the adopter's passes come after that, so the two never run at once.
func (o *owners) adoptAll(ctx context.Context, live map[string]bool, own bool) error {
	n := o.n
	b := n.broker.Load()
	if b == nil || !own && !b.Ready() {
		return errNotStarted // looked at again next time
	}
	l, err := o.kv.ListKeys(ctx)
	if err != nil {
		return err
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	// A lease renewed late under load may reappear after the looks that
	// missed it: a node holding one now is live, whatever the looks said.
	if now, err := o.liveNodes(ctx); err == nil {
		live = maps.Clone(live)
		maps.Copy(live, now)
	}
	self := n.opts.Name
	silent := map[string]bool{} // nodes asked once without an answer: not asked again in this pass
	// The earlier runs of this name whose sessions another node took (and
	// may not have loaded yet): the others keep their filters until that
	// node's pass is done (rejoin).
	var except []string
	// A key read or claim that failed for a reason other than the entry
	// having moved on (a timeout under load, NATS briefly gone) leaves the
	// pass incomplete: it is not reported, and the adopter scans again at
	// its next look rather than taking the gone node's sessions as done.
	var incomplete error
	for _, key := range keys {
		kctx, cancel := context.WithTimeout(n.ctx, opTimeout) // the handover requests below may outlast ctx
		e, err := o.kv.Get(kctx, key)
		cancel()
		if adoptGetFault != nil && err == nil {
			err = adoptGetFault(self, key, live)
		}
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyNotFound) {
				incomplete = err
			}
			continue // released meanwhile
		}
		var cur ownerValue
		if json.Unmarshal(e.Value(), &cur) != nil {
			continue
		}
		if cur.Node != self && cur.From != "" && runNode(cur.From) == self && !slices.Contains(except, cur.From) {
			// Adopted from an earlier run of this name by another node,
			// which may not have loaded it yet: not vouched for.
			except = append(except, cur.From)
		}
		if own && cur.Node != self {
			continue
		}
		var id strings.Builder
		if decodeLevel(&id, key) != nil {
			continue
		}
		if cur.Node == self {
			// This run's own claim (a client connecting here may not
			// have its session yet), or a session held: not a previous
			// run's.
			o.mu.Lock()
			mine := o.revs[id.String()] == e.Revision()
			o.mu.Unlock()
			if mine || b.HasSession(id.String()) {
				continue
			}
		} else if live[cur.Node] {
			continue
		}
		val, _ := json.Marshal(ownerValue{Node: self, Epoch: cur.Epoch + 1, Run: n.instance, From: cur.Run})
		kctx, cancel = context.WithTimeout(n.ctx, opTimeout)
		rev, err := o.kv.Update(kctx, key, val, e.Revision())
		cancel()
		if err != nil {
			if !isCASConflict(err) {
				incomplete = err
			} else if cur.Node == self && cur.Run == "" {
				// An earlier run's session taken by another node, which
				// may not have loaded it yet, and the entry does not say
				// which run: this run vouches for none (rejoin below).
				o.contested = true
			} else if cur.Node == self && !slices.Contains(except, cur.Run) {
				except = append(except, cur.Run) // as above, for that run
			}
			continue // another node adopted it, or its client came back
		}
		o.mu.Lock()
		o.revs[id.String()] = rev
		o.mu.Unlock()
		if cur.Node != self && !silent[cur.Node] {
			// A node that lost its lease without dying (cut off from NATS
			// for longer than a lease) may still hold the session: told,
			// it lets go. A dead one has no responder, and a half-dead one
			// is waited for once.
			req, _ := json.Marshal(handoverRequest{ID: id.String()})
			_, err := n.nc.Request(n.subject("node", cur.Node, "handover"), req, n.opts.HandoverTimeout)
			if err != nil && !errors.Is(err, nats.ErrNoResponders) {
				silent[cur.Node] = true
			}
		}
		if !b.Adopt(id.String()) {
			// Nothing stored (a clean session, or it expired now).
			kctx, cancel = context.WithTimeout(n.ctx, opTimeout)
			o.kv.Delete(kctx, key, jetstream.LastRevision(rev))
			cancel()
			continue
		}
		n.stats.Adopted.Add(1)
		n.log.Info("cluster: adopted the session of a node that is gone", "client_id", id.String(), "node", cur.Node)
	}
	if incomplete != nil {
		n.log.Warn("cluster: adoption pass incomplete, scanning again", "error", incomplete)
		return incomplete
	}
	// The sessions of the nodes not in live are adopted here or by another
	// node: the others stop refusing publishes for them once every live
	// node says so (peerTable.adopted).
	if !o.contested {
		// Every session earlier runs of this name left is held here now,
		// its filters announced: the others may let go of those runs'.
		if seq := n.routes.rejoin(except); own {
			n.routes.peers.await(seq)
		}
	}
	if own {
		return nil // other nodes' entries not looked at: no report
	}
	r := adoptReport{Node: self, Live: slices.Collect(maps.Keys(live))}
	n.routes.peers.adopted(r)
	data, _ := json.Marshal(r)
	n.nc.Publish(n.adoptedSubject(), data)
	return nil
}

package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// owners keeps one owner per client id across the cluster: an entry in the
// sessions bucket names the node that has the client's session and an
// epoch counting the moves. Every change is a compare-and-set on the
// entry's revision, so two nodes claiming one id at once cannot both win.
// The node that loses a client id to another is told directly (a request on
// its takeover subject) and closes the old connection before the new one
// gets its CONNACK.
type owners struct {
	n    *Node
	kv   jetstream.KeyValue
	sub  *nats.Subscription
	hsub *nats.Subscription // handovers of sessions in a shared store (handover.go)

	// contested: an adoption pass lost an entry of an earlier run it
	// cannot name to another node (handover.go). Only the adoption passes
	// use it, one at a time.
	contested bool

	mu   sync.Mutex
	revs map[string]uint64 // client id -> revision of the entry this node wrote
}

type ownerValue struct {
	Node  string `json:"node"`
	Epoch uint64 `json:"epoch"`
	// Run is the instance of Node that wrote the entry; From, the run an
	// adopter took it from (a restarted node cannot vouch for those: see
	// adoptAll).
	Run  string `json:"run,omitempty"`
	From string `json:"from,omitempty"`
}

// runNode is the node name of a run (instance): the name, a dash, and
// twelve hex digits (Open).
func runNode(run string) string {
	if len(run) < 13 || run[len(run)-13] != '-' {
		return ""
	}
	return run[:len(run)-13]
}

// takeoverWait bounds how long a CONNECT waits for the previous owner.
const takeoverWait = 2 * time.Second

// casAttempts bounds the retries of a claim that lost a race.
const casAttempts = 5

func (o *owners) start() error {
	sub, err := o.n.nc.Subscribe(o.n.subject("node", o.n.opts.Name, "takeover"), o.takenOver)
	if err != nil {
		return err
	}
	o.sub = sub
	if o.hsub, err = o.n.nc.Subscribe(o.n.subject("node", o.n.opts.Name, "handover"), o.handOver); err != nil {
		return err
	}
	return o.n.nc.FlushTimeout(opTimeout)
}

// takenOver answers another node that took a client id over.
func (o *owners) takenOver(m *nats.Msg) {
	id := string(m.Data)
	if b := o.n.broker.Load(); b != nil && b.TakenOverRemotely(id) {
		o.n.log.Info("cluster: client taken over by another node", "client_id", id)
	}
	o.mu.Lock()
	delete(o.revs, id)
	o.mu.Unlock()
	m.Respond(nil)
}

// Claim implements mqtt.Cluster.
func (n *Node) Claim(clientID string) { n.owners.claim(clientID) }

// Release implements mqtt.Cluster. The revision to delete is the one this
// node wrote last when the session ended: a claim made after that (a new
// connection here) writes a newer one, which the delete then cannot touch.
func (n *Node) Release(clientID string) {
	o := n.owners
	o.mu.Lock()
	rev, ok := o.revs[clientID]
	o.mu.Unlock()
	n.bgMu.Lock()
	defer n.bgMu.Unlock()
	if !ok || n.closed {
		return
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		o.release(clientID, rev)
	}()
}

func (o *owners) claim(id string) {
	n := o.n
	if !n.nc.IsConnected() {
		n.stats.ClaimFailed.Add(1)
		n.warnClaim.warn(n.log, "cluster: client id not claimed (NATS out of reach); another node may hold it too", "client_id", id)
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	key := idKey(id)
	for range casAttempts {
		prevOwner, rev, err := o.claimOnce(ctx, key)
		prev := prevOwner.Node
		if err != nil {
			if isCASConflict(err) {
				continue
			}
			n.stats.ClaimFailed.Add(1)
			n.warnClaim.warn(n.log, "cluster: client id not claimed; another node may hold it too", "client_id", id, "err", err)
			return
		}
		o.mu.Lock()
		o.revs[id] = rev
		o.mu.Unlock()
		if prev != "" && prev != n.opts.Name {
			o.takeFrom(prev, id)
		}
		return
	}
	n.stats.ClaimFailed.Add(1)
	n.log.Warn("cluster: client id not claimed: other nodes kept changing its owner", "client_id", id)
}

// claimOnce makes this node the owner of key, returning the previous owner.
func (o *owners) claimOnce(ctx context.Context, key string) (prev ownerValue, rev uint64, err error) {
	self := o.n.opts.Name
	e, err := o.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		val, _ := json.Marshal(ownerValue{Node: self, Epoch: 1, Run: o.n.instance})
		rev, err = o.kv.Create(ctx, key, val)
		return ownerValue{}, rev, err
	}
	if err != nil {
		return ownerValue{}, 0, err
	}
	var cur ownerValue
	json.Unmarshal(e.Value(), &cur)
	// Written even when this node owns the id already: a release of the
	// previous session still on its way then fails its compare-and-set
	// instead of deleting the new claim.
	val, _ := json.Marshal(ownerValue{Node: self, Epoch: cur.Epoch + 1, Run: o.n.instance})
	rev, err = o.kv.Update(ctx, key, val, e.Revision())
	return cur, rev, err
}

// takeFrom tells the previous owner to close its connection, and waits for
// it a little: a node that is gone has no responder and is not waited for.
func (o *owners) takeFrom(node, id string) {
	_, err := o.n.nc.Request(o.n.subject("node", node, "takeover"), []byte(id), takeoverWait)
	if err != nil && !errors.Is(err, nats.ErrNoResponders) {
		o.n.log.Warn("cluster: the previous node of a client did not confirm the takeover",
			"client_id", id, "node", node, "err", err)
	}
}

// release removes the entry of a session that ended here, unless a newer
// connection holds the id now: one on another node changed the entry (the
// compare-and-set on rev fails), one here has a session (HasSession waits
// for a CONNECT being attached, so it sees it).
func (o *owners) release(id string, rev uint64) {
	n := o.n
	if b := n.broker.Load(); b == nil || b.HasSession(id) || n.ctx.Err() != nil || !n.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	if o.kv.Delete(ctx, idKey(id), jetstream.LastRevision(rev)) == nil {
		o.mu.Lock()
		if o.revs[id] == rev {
			delete(o.revs, id)
		}
		o.mu.Unlock()
	}
}

func isCASConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

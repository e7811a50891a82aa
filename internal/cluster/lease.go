package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// lease is the node's claim on its name: an entry in the nodes bucket, whose
// TTL is the lease. The node renews it every third of the lease; a node
// that dies stops renewing and its name is free once the entry expires. A
// second node with the same name finds the entry renewed under it and is
// refused.
type lease struct {
	n   *Node
	rev uint64 // of the entry this node wrote last
}

type leaseValue struct {
	Instance string    `json:"instance"`
	Since    time.Time `json:"since"`
}

// acquire claims the name. An entry held by another process may be a
// crashed predecessor's: acquire retries until that one's lease has run
// out, and refuses only if the entry is still being renewed.
func (l *lease) acquire(ctx context.Context) error {
	n := l.n
	val, _ := json.Marshal(leaseValue{Instance: n.instance, Since: time.Now().UTC()})
	deadline := time.Now().Add(n.opts.NodeLease + n.opts.NodeLease/2)
	logged := false
	for {
		rev, err := n.nodes.Create(ctx, n.opts.Name, val)
		if err == nil {
			l.rev = rev
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("cluster: claiming node name %q: %w", n.opts.Name, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: another node named %q is running (it renewed its claim within the last %s); "+
				"give every node of the cluster its own name", n.opts.Name, n.opts.NodeLease)
		}
		if !logged {
			n.log.Warn("cluster: node name in use; waiting for its lease to run out, in case its holder has died",
				"node", n.opts.Name, "lease", n.opts.NodeLease.String())
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(n.opts.NodeLease / 4):
		}
	}
}

// keep renews the lease until the node closes.
func (l *lease) keep() {
	n := l.n
	defer n.wg.Done()
	t := time.NewTicker(n.opts.NodeLease / 3)
	defer t.Stop()
	val, _ := json.Marshal(leaseValue{Instance: n.instance, Since: time.Now().UTC()})
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
		rev, err := n.nodes.Update(ctx, n.opts.Name, val, l.rev)
		if err != nil {
			// Expired while NATS was out of reach: claim it again (if
			// someone else holds it now, Create fails and says so).
			rev, err = n.nodes.Create(ctx, n.opts.Name, val)
		}
		cancel()
		switch {
		case err == nil:
			l.rev = rev
		case n.ctx.Err() != nil:
		default:
			n.log.Error("cluster: could not renew this node's claim on its name; another node may now use it",
				"node", n.opts.Name, "err", err)
		}
	}
}

// release gives the name back on a clean shutdown, if still ours.
func (l *lease) release(ctx context.Context) {
	if l.rev != 0 && l.n.nc.IsConnected() {
		l.n.nodes.Delete(ctx, l.n.opts.Name, jetstream.LastRevision(l.rev))
	}
}

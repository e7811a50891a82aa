package cluster

import (
	"encoding/json"

	"github.com/nats-io/nats.go"
)

// purgeRequest is an admin cache purge one node passes to the others, on
// the subject <prefix>.purge: plugins' caches are per node, and an operator
// purging a decision (a revoked password, a changed ACL) means every node.
type purgeRequest struct {
	Alias    string `json:"alias,omitempty"` // "" for every plugin
	ClientID string `json:"client_id,omitempty"`
	Username string `json:"username,omitempty"`
	From     string `json:"from"` // the node's name, for the log
}

// PurgeOthers asks every other node to purge the same entries from its
// plugins' caches. It does not wait for them: a node that is unreachable
// now misses it (logged).
func (n *Node) PurgeOthers(alias, clientID, username string) {
	body, _ := json.Marshal(purgeRequest{Alias: alias, ClientID: clientID, Username: username, From: n.opts.Name})
	if err := n.nc.Publish(n.subject("purge"), body); err != nil {
		n.log.Warn("cluster: cache purge not passed to the other nodes", "err", err)
	}
}

// OnPurge runs purge for each cache purge another node passes on (this
// node never hears its own). Call it once, after Start.
func (n *Node) OnPurge(purge func(alias, clientID, username string)) error {
	_, err := n.nc.Subscribe(n.subject("purge"), func(m *nats.Msg) {
		var r purgeRequest
		if err := json.Unmarshal(m.Data, &r); err != nil {
			n.stats.RemoteBad.Add(1)
			n.warnBad.warn(n.log, "cluster: malformed cache purge from another node", "err", err)
			return
		}
		n.log.Info("cluster: cache purge from another node", "node", r.From, "plugin", r.Alias,
			"client_id", r.ClientID, "username", r.Username)
		purge(r.Alias, r.ClientID, r.Username)
	})
	if err != nil {
		return err
	}
	return n.nc.Flush()
}

package cluster

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// DialStore opens a NATS connection for the session store on JetStream
// (storage.type jetstream), with the node's servers and credentials. It is
// a connection of its own, so that large store batches do not queue behind
// or ahead of the routing traffic, and reconnecting it does not re-run the
// node's own recovery.
func (n *Node) DialStore() (*nats.Conn, error) {
	opts, err := n.natsOptions()
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.Name("mqttd "+n.opts.Name+" store"),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.log.Warn("store: lost NATS; persistent sessions cannot be written until it is back", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			n.log.Info("store: NATS reconnected", "server", nc.ConnectedUrlRedacted())
		}))
	nc, err := nats.Connect(strings.Join(n.opts.URLs, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: store's NATS connection: %w", err)
	}
	return nc, nil
}

// StoreOptions are the prefix and replicas the cluster runs with, which
// the session store on JetStream shares.
func (n *Node) StoreOptions() (prefix string, replicas int) { return n.opts.Prefix, n.opts.Replicas }

package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/cluster"
	"github.com/mqttd/mqttd/internal/config"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// openCluster joins the cluster when cluster.nats is set (nil, nil when it
// is not). It waits for NATS, retrying with backoff and logging each try,
// until NATS answers or ctx ends (SIGINT/SIGTERM).
func openCluster(ctx context.Context, cfg *config.Config, log *slog.Logger) (*cluster.Node, error) {
	c := cfg.Cluster
	if !c.Enabled() {
		return nil, nil
	}
	n, err := cluster.Open(ctx, cluster.Options{
		URLs: c.NATS, Name: cfg.Name, Prefix: c.Prefix, Replicas: c.Replicas, NodeLease: c.NodeLease,
		Credentials: c.Credentials, NKey: c.NKey, TLSCA: c.TLS.CA, TLSCert: c.TLS.Cert, TLSKey: c.TLS.Key,
		InterestTimeout: c.InterestTimeout, HandoverTimeout: c.HandoverTimeout, ForwardTimeout: c.ForwardTimeout,
		ReceiveQueue: c.ReceiveQueue, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if max := n.MaxPayload(); max > 0 && int64(cfg.Limits.MaxPacketSize) > max {
		log.Warn("limits.max-packet-size is larger than NATS's max_payload: larger messages stay on their node",
			"max_packet_size", int64(cfg.Limits.MaxPacketSize), "nats_max_payload", max)
	}
	log.Info("joined the cluster", "node", cfg.Name, "prefix", c.Prefix, "replicas", c.Replicas)
	return n, nil
}

// sharedStore reports whether every node of the cluster uses one store
// (storage.type jetstream): sessions then move with their clients between
// nodes, and a dead node's sessions are adopted by another.
func sharedStore(cfg *config.Config) bool { return cfg.Storage.Type == config.StorageJetStream }

// startCluster attaches the broker to the node (retained messages loaded)
// before the listeners open.
func startCluster(ctx context.Context, n *cluster.Node, b *mqtt.Broker) error {
	if n == nil {
		return nil
	}
	return n.Start(ctx, b)
}

// clusterReady makes /readyz false while the node does not reach NATS.
func clusterReady(ready func() error, n *cluster.Node) func() error {
	if n == nil {
		return ready
	}
	return func() error {
		if !n.Connected() {
			return errors.New("not connected to NATS (cluster)")
		}
		return ready()
	}
}

func closeCluster(n *cluster.Node, log *slog.Logger) {
	if n == nil {
		return
	}
	if err := n.Close(); err != nil {
		log.Warn("cluster: did not leave cleanly", "err", err)
	}
}

// registerCluster exports the node's metrics (mqttd_cluster_*) on /metrics.
func registerCluster(n *cluster.Node, reg prometheus.Registerer) error {
	if n == nil {
		return nil
	}
	return n.Register(reg)
}

// resyncCluster re-applies the cluster's retained messages over those the
// broker recovered from its store (persisted), which may be stale.
func resyncCluster(ctx context.Context, n *cluster.Node, persisted bool) error {
	if n == nil || !persisted {
		return nil
	}
	return n.Resync(ctx)
}

// followPurges applies here the admin cache purges made on other nodes
// (alias "" for every HTTP plugin), on the plugins current at the time.
func followPurges(n *cluster.Node, current func() *plugins) error {
	if n == nil {
		return nil
	}
	return n.OnPurge(func(alias, clientID, username string) {
		for _, p := range current().webhooks() {
			if alias == "" || p.Alias() == alias {
				p.PurgeCache(clientID, username)
			}
		}
	})
}

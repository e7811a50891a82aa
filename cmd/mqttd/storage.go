package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/cluster"
	"github.com/mqttd/mqttd/internal/config"
	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/jsstore"
	"github.com/mqttd/mqttd/internal/store/pebblestore"
)

// storeDir is storage.dir made absolute (a relative one is relative to the
// working directory), so every message names the real place.
func storeDir(cfg *config.Config) (string, error) {
	dir, err := filepath.Abs(cfg.Storage.Dir)
	if err != nil {
		return "", fmt.Errorf("storage.dir %q: %w", cfg.Storage.Dir, err)
	}
	return dir, nil
}

// storeOptions maps the storage section onto the store's options. The
// words were validated by config.Load.
func storeOptions(cfg *config.Config, log *slog.Logger, m *pebblestore.Metrics) pebblestore.Options {
	d, _ := store.ParseDurability(cfg.Storage.Durability)
	oc, _ := pebblestore.ParseOnCorrupt(cfg.Storage.OnCorrupt)
	return pebblestore.Options{Durability: d, SyncInterval: cfg.Storage.SyncInterval, OnCorrupt: oc, Logger: log, Metrics: m,
		RetryInterval: cfg.Storage.RetryInterval}
}

// openStore opens the store the storage section describes, or returns nil
// for storage.type memory (nothing is persisted). A store another process
// holds, or a corrupt one (unless on-corrupt is quarantine), is an error
// naming the directory and what to do.
func openStore(cfg *config.Config, log *slog.Logger, m *pebblestore.Metrics) (store.Store, error) {
	if cfg.Storage.Type == config.StorageMemory {
		log.Warn("storage.type is memory: sessions, queued and retained messages are lost when mqttd stops")
		return nil, nil
	}
	dir, err := storeDir(cfg)
	if err != nil {
		return nil, err
	}
	s, err := pebblestore.Open(dir, storeOptions(cfg, log, m))
	if err != nil {
		return nil, err
	}
	log.Info("store opened", "dir", dir, "durability", cfg.Storage.Durability)
	return s, nil
}

// closeStore closes st (nil: nothing to close) once the broker has
// stopped writing to it.
func closeStore(st store.Store, log *slog.Logger) int {
	if st == nil {
		return exitOK
	}
	if err := st.Close(); err != nil {
		log.Error("store did not close cleanly; what it acknowledged is on disk unless a write error was logged before", "err", err)
		return exitFailure
	}
	log.Info("store closed")
	return exitOK
}

// openJetStreamStore opens the session store on the cluster's JetStream
// (storage.type jetstream), on a NATS connection of its own, with the
// cluster's prefix and replicas.
func openJetStreamStore(cfg *config.Config, node *cluster.Node, log *slog.Logger, reg prometheus.Registerer) (store.Store, error) {
	if node == nil {
		return nil, errors.New("storage.type jetstream needs cluster.nats")
	}
	nc, err := node.DialStore()
	if err != nil {
		return nil, err
	}
	prefix, replicas := node.StoreOptions()
	m := jsstore.NewMetrics()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Storage.JetStreamTimeout)
	defer cancel()
	laggard := cfg.Storage.JetStreamLaggardAge
	if laggard == 0 {
		laggard = -1 // the store's word for never
	}
	cache := int64(cfg.Storage.JetStreamBodyCacheBytes)
	if cache == 0 {
		cache = -1 // the store's word for none
	}
	st, err := jsstore.Open(ctx, nc, jsstore.Options{Prefix: prefix, Replicas: replicas,
		Timeout: cfg.Storage.JetStreamTimeout, MaxBatch: cfg.Storage.JetStreamMaxBatch,
		ReclaimInterval: cfg.Storage.JetStreamReclaimInterval, LaggardAge: laggard, BodyCacheBytes: cache, Logger: log, Metrics: m})
	if err != nil {
		nc.Close()
		return nil, err
	}
	if err := reg.Register(m); err != nil {
		st.Close()
		nc.Close()
		return nil, err
	}
	log.Info("store opened on JetStream", "prefix", prefix, "replicas", replicas)
	return connStore{st, nc}, nil
}

// connStore closes the store's own NATS connection after the store.
type connStore struct {
	*jsstore.Store
	nc *nats.Conn
}

func (c connStore) Close() error {
	err := c.Store.Close()
	c.nc.Close()
	return err
}

// startStore opens the store and registers its metrics on reg; both are
// nil for storage.type memory, and the pebble metrics are nil for
// storage.type jetstream (node: the cluster node, nil without a cluster).
func startStore(cfg *config.Config, node *cluster.Node, log *slog.Logger, reg prometheus.Registerer) (store.Store, *pebblestore.Metrics, error) {
	if cfg.Storage.Type == config.StorageJetStream {
		st, err := openJetStreamStore(cfg, node, log, reg)
		return st, nil, err
	}
	if cfg.Storage.Type == config.StorageMemory {
		st, err := openStore(cfg, log, nil)
		return st, nil, err
	}
	m := pebblestore.NewMetrics()
	st, err := openStore(cfg, log, m)
	if err != nil {
		return nil, nil, err
	}
	if err := reg.Register(m); err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, m, nil
}

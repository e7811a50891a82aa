package config

import (
	"strings"
	"time"
)

// Storage is where the broker keeps what must outlive the process:
// persistent sessions with their subscriptions and queued messages, and
// retained messages. A relative dir resolves against the working
// directory (under systemd, /var/lib/mqttd), not the config file's: the
// store is state, not configuration.
type Storage struct {
	Type          string        `mapstructure:"type" doc:"pebble (on disk: sessions, queued and retained messages survive a restart or crash), memory (all of it is lost at exit) or jetstream (in the NATS JetStream of cluster.nats, shared by the cluster's nodes, with cluster.prefix and cluster.replicas; a session survives the loss of its node)"`
	Dir           string        `mapstructure:"dir" doc:"directory of the pebble store; a relative one is relative to the working directory (/var/lib/mqttd under the systemd unit and in the container, so /var/lib/mqttd/data/store); one mqttd per directory"`
	Durability    string        `mapstructure:"durability" doc:"sync: QoS 1/2 acknowledged after fsync (nothing acknowledged is lost); interval: fsync every sync-interval (a crash loses up to that much); none: never fsynced before a clean stop (a crash loses recent writes)"`
	SyncInterval  time.Duration `mapstructure:"sync-interval" doc:"durability interval: longest time between fsyncs, the loss window of a crash"`
	OnCorrupt     string        `mapstructure:"on-corrupt" doc:"a store that cannot be read: fail (refuse to start, naming the directory) or quarantine (move it to DIR.corrupt-TIME, start empty, log an error)"`
	RetryInterval time.Duration `mapstructure:"retry-interval" doc:"after a write error (disk full, I/O error) the store refuses writes; this often it checks whether the disk takes writes again and, once it does, reopens the store and accepts them"`
	// The JetStream keys apply to storage.type jetstream only.
	JetStreamTimeout         time.Duration `mapstructure:"jetstream-timeout" doc:"storage.type jetstream: longest wait for JetStream to store a commit (or answer a read); past it the commit fails and QoS 1/2 is not acknowledged"`
	JetStreamMaxBatch        int           `mapstructure:"jetstream-max-batch" doc:"storage.type jetstream: most messages in one atomic batch, at most the NATS servers' jetstream max_batch_size (1000 by default); a commit needing more (a message queued for hundreds of sessions) is stored in several parts"`
	JetStreamReclaimInterval time.Duration `mapstructure:"jetstream-reclaim-interval" doc:"storage.type jetstream: how often each node purges the stored bodies of messages queued for several sessions (each stored once) that no session queue refers to any more"`
	JetStreamLaggardAge      time.Duration `mapstructure:"jetstream-laggard-age" doc:"storage.type jetstream: a session whose oldest queued message is older than this, and that holds back the purging of message bodies shared with other sessions, gets its queue rewritten with its own copy of each message, so that the bodies stored since can go; 0 never does (the bodies then wait until it drains)"`
	JetStreamBodyCacheBytes  ByteSize      `mapstructure:"jetstream-body-cache-bytes" doc:"storage.type jetstream: bytes of the stored bodies of messages queued for several sessions that each node keeps in memory once it wrote or read them, so that sessions reading the same messages back do not fetch them again; beyond it the least recently used go (counted in mqttd_store_jetstream_body_cache_evictions_total); 0 keeps none"`
}

// Storage types, durability modes and on-corrupt actions, as written in
// the configuration.
const (
	StoragePebble = "pebble"
	StorageMemory = "memory"
	// StorageJetStream keeps sessions in the cluster's NATS JetStream.
	StorageJetStream = "jetstream"
)

// DefaultStorage is the built-in storage section.
func DefaultStorage() Storage {
	// data/ holds all of mqttd's state: the store here, the plugins' event
	// spools in data/events (DefaultSpoolRoot).
	return Storage{Type: StoragePebble, Dir: "data/store", Durability: "sync", SyncInterval: 100 * time.Millisecond, OnCorrupt: "fail",
		RetryInterval: 5 * time.Second, JetStreamTimeout: 5 * time.Second, JetStreamMaxBatch: 1000,
		JetStreamReclaimInterval: 30 * time.Second, JetStreamLaggardAge: 10 * time.Minute, JetStreamBodyCacheBytes: 32 * MiB}
}

// validateStorage checks and normalises the storage section.
func (l *loader) validateStorage(c *Config) []error {
	var errs []error
	add := func(e error) { errs = append(errs, e) }
	s := &c.Storage
	s.Type = strings.ToLower(strings.TrimSpace(s.Type))
	s.Durability = strings.ToLower(strings.TrimSpace(s.Durability))
	s.OnCorrupt = strings.ToLower(strings.TrimSpace(s.OnCorrupt))
	switch s.Type {
	case StoragePebble:
		if strings.TrimSpace(s.Dir) == "" {
			add(l.errorf("storage.dir", "is empty (set the directory of the store, e.g. /var/lib/mqttd/data/store, or set storage.type: memory to keep nothing across restarts)"))
		}
	case StorageMemory:
	case StorageJetStream:
		if !c.Cluster.Enabled() {
			add(l.errorf("storage.type", "jetstream needs cluster.nats (the NATS servers whose JetStream holds the sessions); without a cluster use pebble"))
		}
	default:
		add(l.errorf("storage.type", "%q is not a storage type (use pebble to keep sessions and messages across restarts, memory, or jetstream in a cluster)", s.Type))
	}
	if s.JetStreamTimeout <= 0 {
		add(l.errorf("storage.jetstream-timeout", "%s must be positive (e.g. 5s)", s.JetStreamTimeout))
	}
	if s.JetStreamMaxBatch < 3 {
		add(l.errorf("storage.jetstream-max-batch", "%d is too small (use at least 3, e.g. 1000)", s.JetStreamMaxBatch))
	}
	if s.JetStreamReclaimInterval <= 0 {
		add(l.errorf("storage.jetstream-reclaim-interval", "%s must be positive (e.g. 30s)", s.JetStreamReclaimInterval))
	}
	if s.JetStreamLaggardAge < 0 {
		add(l.errorf("storage.jetstream-laggard-age", "%s must not be negative (e.g. 10m; 0: never)", s.JetStreamLaggardAge))
	}
	switch s.Durability {
	case "sync", "interval", "none":
	default:
		add(l.errorf("storage.durability", "%q is not a durability mode (use sync, interval or none)", s.Durability))
	}
	if s.SyncInterval <= 0 {
		add(l.errorf("storage.sync-interval", "%s must be positive (e.g. 100ms)", s.SyncInterval))
	}
	if s.RetryInterval <= 0 {
		add(l.errorf("storage.retry-interval", "%s must be positive (e.g. 5s)", s.RetryInterval))
	}
	switch s.OnCorrupt {
	case "fail", "quarantine":
	default:
		add(l.errorf("storage.on-corrupt", "%q is not an action (use fail or quarantine)", s.OnCorrupt))
	}
	return errs
}

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
	Type          string        `mapstructure:"type" doc:"pebble (on disk: sessions, queued and retained messages survive a restart or crash) or memory (all of it is lost at exit)"`
	Dir           string        `mapstructure:"dir" doc:"directory of the pebble store; a relative one is relative to the working directory (/var/lib/mqttd under the systemd unit and in the container, so /var/lib/mqttd/data/store); one mqttd per directory"`
	Durability    string        `mapstructure:"durability" doc:"sync: QoS 1/2 acknowledged after fsync (nothing acknowledged is lost); interval: fsync every sync-interval (a crash loses up to that much); none: never fsynced before a clean stop (a crash loses recent writes)"`
	SyncInterval  time.Duration `mapstructure:"sync-interval" doc:"durability interval: longest time between fsyncs, the loss window of a crash"`
	OnCorrupt     string        `mapstructure:"on-corrupt" doc:"a store that cannot be read: fail (refuse to start, naming the directory) or quarantine (move it to DIR.corrupt-TIME, start empty, log an error)"`
	RetryInterval time.Duration `mapstructure:"retry-interval" doc:"after a write error (disk full, I/O error) the store refuses writes; this often it checks whether the disk takes writes again and, once it does, reopens the store and accepts them"`
}

// Storage types, durability modes and on-corrupt actions, as written in
// the configuration.
const (
	StoragePebble = "pebble"
	StorageMemory = "memory"
)

// DefaultStorage is the built-in storage section.
func DefaultStorage() Storage {
	// data/ holds all of mqttd's state: the store here, the plugins' event
	// spools in data/events (DefaultSpoolRoot).
	return Storage{Type: StoragePebble, Dir: "data/store", Durability: "sync", SyncInterval: 100 * time.Millisecond, OnCorrupt: "fail",
		RetryInterval: 5 * time.Second}
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
	default:
		add(l.errorf("storage.type", "%q is not a storage type (use pebble to keep sessions and messages across restarts, or memory)", s.Type))
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

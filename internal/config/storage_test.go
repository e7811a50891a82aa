package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStorageDefaults(t *testing.T) {
	isolate(t)
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	want := Storage{Type: "pebble", Dir: "data/store", Durability: "sync", SyncInterval: 100 * time.Millisecond, OnCorrupt: "fail",
		RetryInterval: 5 * time.Second, JetStreamTimeout: 5 * time.Second, JetStreamMaxBatch: 1000,
		JetStreamReclaimInterval: 30 * time.Second, JetStreamLaggardAge: 10 * time.Minute, JetStreamBodyCacheBytes: 32 * MiB}
	if c.Storage != want {
		t.Errorf("default storage = %+v, want %+v", c.Storage, want)
	}
}

func TestStorageFromFileAndEnv(t *testing.T) {
	isolate(t)
	t.Setenv("MQTTD_STORAGE_DURABILITY", "Interval")
	p := writeFile(t, t.TempDir(), "mqttd.yaml", "storage: {dir: /srv/mqttd, sync-interval: 250ms, on-corrupt: quarantine, retry-interval: 30s}\n")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Storage{Type: "pebble", Dir: "/srv/mqttd", Durability: "interval", SyncInterval: 250 * time.Millisecond, OnCorrupt: "quarantine",
		RetryInterval: 30 * time.Second, JetStreamTimeout: 5 * time.Second, JetStreamMaxBatch: 1000,
		JetStreamReclaimInterval: 30 * time.Second, JetStreamLaggardAge: 10 * time.Minute, JetStreamBodyCacheBytes: 32 * MiB}
	if c.Storage != want {
		t.Errorf("storage = %+v, want %+v", c.Storage, want)
	}
}

// Each bad value is refused with the key, the value and what is accepted.
func TestStorageErrors(t *testing.T) {
	for _, tc := range []struct{ content, want string }{
		{"storage: {type: bolt}", `storage.type: "bolt" is not a storage type (use pebble`},
		{"storage: {dir: \"\"}", `storage.dir: is empty (set the directory`},
		{"storage: {durability: always}", `storage.durability: "always" is not a durability mode (use sync, interval or none)`},
		{"storage: {sync-interval: 0s}", `storage.sync-interval: 0s must be positive`},
		{"storage: {retry-interval: -1s}", `storage.retry-interval: -1s must be positive`},
		{"storage: {on-corrupt: ignore}", `storage.on-corrupt: "ignore" is not an action (use fail or quarantine)`},
		{"storage: {dirr: x}", `unknown key "storage.dirr" (did you mean "storage.dir"?`},
		{"storage: {type: jetstream}", `storage.type: jetstream needs cluster.nats`},
		{"storage: {jetstream-timeout: 0s}", `storage.jetstream-timeout: 0s must be positive`},
		{"storage: {jetstream-max-batch: 1}", `storage.jetstream-max-batch: 1 is too small`},
		{"storage: {jetstream-reclaim-interval: 0s}", `storage.jetstream-reclaim-interval: 0s must be positive`},
		{"storage: {jetstream-laggard-age: -1s}", `storage.jetstream-laggard-age: -1s must not be negative`},
		{"storage: {jetstream-body-cache-bytes: -1}", `storage.jetstream-body-cache-bytes: -1 is not a size`},
	} {
		t.Run(tc.content, func(t *testing.T) {
			isolate(t)
			_, err := Load(writeFile(t, t.TempDir(), "mqttd.yaml", tc.content+"\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("jetstream in a cluster needs no dir", func(t *testing.T) {
		isolate(t)
		c, err := Load(writeFile(t, t.TempDir(), "mqttd.yaml", "cluster: {nats: [\"nats://127.0.0.1:4222\"]}\nstorage: {type: JetStream, dir: \"\", jetstream-timeout: 2s, jetstream-max-batch: 500, jetstream-laggard-age: 0s, jetstream-body-cache-bytes: 1MiB}\n"))
		if err != nil || c.Storage.Type != StorageJetStream || c.Storage.JetStreamTimeout != 2*time.Second || c.Storage.JetStreamMaxBatch != 500 || c.Storage.JetStreamLaggardAge != 0 || c.Storage.JetStreamBodyCacheBytes != MiB {
			t.Errorf("Load = %+v, %v; want storage.type jetstream accepted with cluster.nats", c, err)
		}
	})
	t.Run("memory needs no dir", func(t *testing.T) {
		isolate(t)
		c, err := Load(writeFile(t, t.TempDir(), "mqttd.yaml", "storage: {type: memory, dir: \"\"}\n"))
		if err != nil || c.Storage.Type != StorageMemory {
			t.Errorf("Load = %v, %v; want storage.type memory accepted without a dir", c, err)
		}
	})
}

// The store and the plugins' event spools share data/ but neither lies
// inside the other: quarantining a corrupt store must not take a spool
// with it.
func TestStoreAndSpoolsApart(t *testing.T) {
	store := filepath.Clean(DefaultStorage().Dir)
	spool := filepath.Clean(PluginQueue{}.SpoolDir("hooks"))
	if strings.HasPrefix(spool+"/", store+"/") || strings.HasPrefix(store+"/", spool+"/") {
		t.Errorf("store %s and spool %s nest", store, spool)
	}
}

package main

import (
	"bufio"
	"context"
	be "encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/mqttd/mqttd/internal/config"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/pebblestore"
)

// loadStorageConfig loads a config whose storage section is storage (YAML
// flow map contents).
func loadStorageConfig(t *testing.T, storage string) *config.Config {
	t.Helper()
	cfg, err := config.Load(writeConfig(t, t.TempDir(), "storage: {"+storage+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var quietLog = slog.New(slog.DiscardHandler)

func TestOpenStore(t *testing.T) {
	isolate(t)
	t.Run("memory is nothing on disk", func(t *testing.T) {
		st, err := openStore(loadStorageConfig(t, "type: memory"), quietLog, nil)
		if st != nil || err != nil {
			t.Fatalf("openStore(memory) = %v, %v; want nil, nil", st, err)
		}
	})
	t.Run("relative dir is under the working directory", func(t *testing.T) {
		wd, _ := os.Getwd()
		st, err := openStore(loadStorageConfig(t, "dir: state/store, durability: interval, sync-interval: 10ms"), quietLog, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if got := st.(*pebblestore.Store).Dir(); got != filepath.Join(wd, "state", "store") {
			t.Errorf("store dir = %s, want %s", got, filepath.Join(wd, "state", "store"))
		}
	})
	t.Run("a second open of the same dir is refused, naming it", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "db")
		cfg := loadStorageConfig(t, fmt.Sprintf("dir: %q", dir))
		st, err := openStore(cfg, quietLog, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = openStore(cfg, quietLog, nil)
		if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "in use by another mqttd") {
			t.Errorf("second open: %v; want a refusal naming %s", err, dir)
		}
		if code := closeStore(st, quietLog); code != exitOK {
			t.Errorf("closeStore = %d", code)
		}
		st, err = openStore(cfg, quietLog, nil)
		if err != nil {
			t.Fatalf("open after close: %v", err)
		}
		st.Close()
	})
}

// filledStore writes a session with a subscription, a will and packet ids,
// three queued messages (one binary) and a retained message to dir.
func filledStore(t *testing.T, dir string) {
	t.Helper()
	s, err := pebblestore.Open(dir, pebblestore.Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	var b store.Batch
	b.PutSession(&store.SessionRecord{ClientID: "dev-1", Username: "alice", Version: 5, Expiry: 3600,
		OfflineSince: time.Unix(1_700_000_000, 0), Will: &store.MessageRecord{Topic: "dev/1/status", Payload: []byte("gone")}, WillDelay: 5,
		Subs: []store.SubscriptionRecord{{Filter: "cmd/#", QoS: 2, SubscriptionID: 7}}})
	for _, p := range [][]byte{[]byte("one"), {0xff, 0x00}, []byte("three")} {
		b.Enqueue(&store.MessageRecord{Topic: "cmd/x", Payload: p, QoS: 1, Created: time.Unix(1_700_000_100, 0)},
			[]store.Delivery{{ClientID: "dev-1", QoS: 1, SubIDs: []uint32{7}}})
	}
	b.SetInflight("dev-1", store.InflightRecord{PacketID: 4, Seq: 1, State: store.AwaitAck})
	b.AddQoS2In("dev-1", 9)
	b.PutRetained(&store.MessageRecord{Topic: "dev/1/fw", Payload: []byte("1.2"), QoS: 1, Retain: true})
	if err := s.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// damageStore writes key=val with plain Pebble, as a stray tool or a bad
// disk might.
func damageStore(t *testing.T, dir string, key, val []byte) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(key, val, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic("pebble: " + format)
}

func TestStoreCheck(t *testing.T) {
	isolate(t)
	dir := filepath.Join(t.TempDir(), "db")
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf("storage: {dir: %q}\n", dir))

	code, _, errs := runCmd(t, "store", "check", "--config", cfg)
	if code != exitFailure || !strings.Contains(errs, "no store in "+dir) {
		t.Errorf("check of a missing store = %d, %q; want 1 naming %s", code, errs, dir)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("check created %s (%v); it must not create a store", dir, err)
	}

	filledStore(t, dir)
	code, out, errs := runCmd(t, "--config", cfg, "store", "check")
	want := "store " + dir + ": ok: 1 sessions, 1 retained messages, 3 queued messages (3 queue entries), 1 in flight, 1 inbound QoS 2"
	if code != exitOK || !strings.Contains(out, want) {
		t.Errorf("check of a sound store = %d\nstdout %q\nstderr %q\nwant %q", code, out, errs, want)
	}

	// A message no queue refers to: every record decodes, so the store
	// opens, but the check finds it.
	damageStore(t, dir, be.BigEndian.AppendUint64([]byte{'m'}, 99), store.AppendMessage(nil, &store.MessageRecord{Topic: "x"}))
	code, _, errs = runCmd(t, "store", "check", "-c", cfg)
	if code != exitFailure || !strings.Contains(errs, dir+" is DAMAGED") || !strings.Contains(errs, "message 99") {
		t.Errorf("check of a damaged store = %d, stderr %q; want 1 naming the directory and message 99", code, errs)
	}

	// A session record that does not decode: the store does not open.
	damageStore(t, dir, []byte("sdev-1"), []byte{1, 0xff})
	code, _, errs = runCmd(t, "store", "check", "-c", cfg)
	if code != exitFailure || !strings.Contains(errs, "store is corrupt") || !strings.Contains(errs, dir) || !strings.Contains(errs, "storage.on-corrupt: quarantine") {
		t.Errorf("check of a corrupt store = %d, stderr %q; want 1 naming the directory and the fix", code, errs)
	}
	if !pebblestore.Exists(dir) {
		t.Error("check moved or removed the corrupt store")
	}
}

func TestStoreCmdUsage(t *testing.T) {
	isolate(t)
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"store"}, exitUsage, "want check or export"},
		{[]string{"store", "fix"}, exitUsage, `want check or export, got ["fix"]`},
		{[]string{"store", "check", "--bogus"}, exitUsage, "flag provided but not defined: -bogus"},
	} {
		code, _, errs := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.err) {
			t.Errorf("mqttd %v = %d, %q; want %d, %q", tc.args, code, errs, tc.code, tc.err)
		}
	}
	cfg := writeConfig(t, t.TempDir(), "storage: {type: memory}\n")
	if code, _, errs := runCmd(t, "store", "export", "--config", cfg); code != exitUsage || !strings.Contains(errs, "storage.type is memory") {
		t.Errorf("export with storage.type memory = %d, %q", code, errs)
	}
	if code, out, _ := runCmd(t, "store", "--help"); code != exitOK || !strings.Contains(out, "mqttd store check") {
		t.Errorf("store --help = %d, %q", code, out)
	}
}

func TestStoreExport(t *testing.T) {
	isolate(t)
	dir := filepath.Join(t.TempDir(), "db")
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf("storage: {dir: %q}\n", dir))
	filledStore(t, dir)
	code, out, errs := runCmd(t, "store", "export", "--config", cfg)
	if code != exitOK {
		t.Fatalf("export = %d, %s", code, errs)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	var types []string
	for _, l := range lines {
		types = append(types, l["type"].(string))
	}
	if strings.Join(types, ",") != "session,queued,queued,queued,retained" {
		t.Fatalf("export lines = %v, want a session, its three queued messages, the retained one\n%s", types, out)
	}
	for _, want := range []string{
		`"type":"session","client_id":"dev-1","username":"alice","protocol_level":5,"expiry_seconds":3600,"offline_since":"2023-11-14T22:13:20Z"`,
		`"subscriptions":[{"filter":"cmd/#","qos":2,"subscription_id":7}],"queued":3,"inflight":[{"packet_id":4,"seq":1,"awaiting":"puback/pubrec"}],"qos2_awaiting_pubrel":[9]`,
		`{"type":"queued","client_id":"dev-1","seq":1,"qos":1,"subscription_ids":[7],"message":{"topic":"cmd/x","payload":"one","qos":1,"created":"2023-11-14T22:15:00Z"}}`,
		`"seq":2,"qos":1,"subscription_ids":[7],"message":{"topic":"cmd/x","payload_base64":"/wA=",`,
		`"seq":3,`,
		`{"type":"retained","topic":"dev/1/fw","payload":"1.2","qos":1,"retain":true,`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("export lacks %s\n%s", want, out)
		}
	}
}

// /readyz says the broker is restoring from the store while Start runs
// (the admin listener is up by then), before any other reason.
func TestReadinessWhileRestoring(t *testing.T) {
	b, err := mqtt.New(mqtt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var stopping, starting atomic.Bool
	var current atomic.Pointer[plugins]
	ready := readiness(&stopping, &starting, b, &current)
	starting.Store(true)
	if err := ready(); err == nil || err.Error() != "starting: restoring sessions and retained messages from the store" {
		t.Errorf("while starting: %v", err)
	}
	starting.Store(false)
	if err := ready(); err == nil || err.Error() != "broker listeners are not up" {
		t.Errorf("after starting, before the listeners: %v", err)
	}
	stopping.Store(true)
	if err := ready(); err == nil || err.Error() != "shutting down" {
		t.Errorf("while stopping: %v", err)
	}
}

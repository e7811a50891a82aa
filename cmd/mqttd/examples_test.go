package main

import (
	"path/filepath"
	"testing"
)

// examples/plugins/mqttd.yaml is a working broker with the built-ins: its
// users log in, its ACL decides, and its two ACL files (YAML and
// Mosquitto's format) say the same.
func TestExamplePluginsConfig(t *testing.T) {
	cfg, err := filepath.Abs("../../examples/plugins/mqttd.yaml") // before isolate changes directory
	if err != nil {
		t.Fatal(err)
	}
	for _, acl := range []string{"acl.yaml", "acl.conf"} {
		t.Run(acl, func(t *testing.T) {
			isolate(t)
			mqttAddr, adminAddr := freePort(t), freePort(t)
			t.Setenv("MQTTD_LISTENERS_DEFAULT_BIND", mqttAddr)
			t.Setenv("MQTTD_ADMIN_BIND", adminAddr)
			t.Setenv("MQTTD_PLUGINS_ACL_FILE", acl)
			logs := serveUntilCleanup(t, cfg, adminAddr)

			if _, err := connectAs(mqttAddr, "intruder", "alice", "guess", nil); err == nil {
				t.Fatal("a wrong password was accepted")
			}
			alice, err := connectAs(mqttAddr, "alice-phone", "alice", "wonderland", nil)
			if err != nil {
				t.Fatalf("alice: %v\n%s", err, logs)
			}
			defer alice.Disconnect(100)
			bob, err := connectAs(mqttAddr, "lab-1", "bob", "builder", nil)
			if err != nil {
				t.Fatalf("bob: %v\n%s", err, logs)
			}
			defer bob.Disconnect(100)
			for _, tc := range []struct {
				who    string
				filter string
				want   byte
			}{
				{"alice", "users/alice/#", 1},
				{"alice", "users/bob/#", 0x80},
				{"alice", "devices/+/telemetry", 1},
				{"alice", "devices/#", 0x80}, // wider than her grant
				{"bob", "devices/x/telemetry", 1},
				{"bob", "devices/lab-1/telemetry", 0x80},
				{"bob", "devices/#", 0x80}, // overlaps his deny
			} {
				c := alice
				if tc.who == "bob" {
					c = bob
				}
				if got := subscribeCode(t, c, tc.filter); got != tc.want {
					t.Errorf("%s subscribing %s: %#x, want %#x", tc.who, tc.filter, got, tc.want)
				}
			}
		})
	}
}

//go:build unix

package main

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// examples/plugins/mqttd.yaml is a working broker with the built-ins: its
// users log in, its ACL decides, and its two ACL files (YAML and
// Mosquitto's format) say the same: bob subscribes to devices/# and never
// receives the lab, which his deny keeps from each delivery.
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
			got := make(chan string, 100)
			bob, err := connectAs(mqttAddr, "bob-laptop", "bob", "builder", func(_ paho.Client, m paho.Message) { got <- m.Topic() })
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
				{"alice", "devices/+/config", 0x80}, // nothing it can match is hers to read
				{"bob", "devices/lab-1/telemetry", 0x80},
				{"bob", "devices/lab-1/#", 0x80}, // his deny covers the whole filter
				{"bob", "devices/#", 1},          // the lab is filtered from each delivery
			} {
				c := alice
				if tc.who == "bob" {
					c = bob
				}
				if got := subscribeCode(t, c, tc.filter); got != tc.want {
					t.Errorf("%s subscribing %s: %#x, want %#x", tc.who, tc.filter, got, tc.want)
				}
			}
			// Devices publish under their client id; bob's devices/# gets
			// everything but the lab, in order.
			for _, id := range []string{"dev-1", "lab-1", "dev-2"} {
				dev, err := connectAs(mqttAddr, id, "alice", "wonderland", nil)
				if err != nil {
					t.Fatalf("device %s: %v", id, err)
				}
				tok := dev.Publish("devices/"+id+"/telemetry", 1, false, "21.5")
				if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
					t.Fatalf("device %s publish: %v", id, tok.Error())
				}
				dev.Disconnect(100)
			}
			var topics []string
			for len(topics) < 2 {
				select {
				case tp := <-got:
					topics = append(topics, tp)
				case <-time.After(10 * time.Second):
					t.Fatalf("bob received %v, want devices/dev-1/telemetry and devices/dev-2/telemetry\n%s", topics, logs)
				}
			}
			if !slices.Equal(topics, []string{"devices/dev-1/telemetry", "devices/dev-2/telemetry"}) {
				t.Errorf("bob received %v, want devices/dev-1/telemetry then devices/dev-2/telemetry (never the lab)", topics)
			}
		})
	}
}

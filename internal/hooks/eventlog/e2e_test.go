package eventlog

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
)

// A whole session through the hooks framework and a real client: every
// event docs/design.md §3.3 names reaches the log in the order it happened, one
// line each, with the client, topic, QoS, size and payload it carries.
func TestEndToEnd(t *testing.T) {
	var buf lockedBuffer
	p, err := New(Options{Logger: jsonLogger(&buf, slog.LevelInfo), Payload: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := hooks.New(hooks.Options{Broker: "node-1", Auth: hooks.AuthOptions{AllowAnonymous: true},
		Plugins: map[string]hooks.PluginSpec{"log": {Plugin: p, Type: "event-log"}}})
	if err != nil {
		t.Fatal(err)
	}
	b, addr := hookstest.Serve(t, m)

	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("logged").SetUsername("alice").
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	c := paho.NewClient(o)
	got := make(chan string, 1)
	for _, tok := range []func() paho.Token{
		c.Connect,
		func() paho.Token {
			return c.Subscribe("room/+", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) })
		},
		func() paho.Token { return c.Publish("room/1", 1, true, "21.5") },
	} {
		if tk := tok(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatalf("paho: %v", tk.Error())
		}
	}
	<-got // the message went round before unsubscribing
	if tk := c.Unsubscribe("room/+"); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatal(tk.Error())
	}
	c.Disconnect(50)
	// The broker handles the DISCONNECT on its own time; close it only
	// after the client's last event is in the log.
	for deadline := time.Now().Add(10 * time.Second); !buf.contains(`"type":"broker_client_disconnected"`); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no broker_client_disconnected line")
		}
	}

	// Only a closed plugin has written every line it queued.
	hookstest.Stop(t, b, m)

	var seen []string
	var msg map[string]any
	lastSeq := 0.0
	for _, l := range buf.lines(t) {
		name := fmt.Sprint(l["type"])
		if pk, ok := l["packet"]; ok {
			name += " " + fmt.Sprint(pk)
		}
		seen = append(seen, name)
		if seq, _ := l["seq"].(float64); seq <= lastSeq {
			t.Errorf("seq %v after %v: lines out of order", l["seq"], lastSeq)
		} else {
			lastSeq = seq
		}
		if name == "broker_message_received" {
			msg = l
		}
	}
	want := []string{
		"broker_pre_start", "broker_post_start",
		"mqtt_packet_received CONNECT", "mqtt_packet_sent CONNACK", "broker_client_connected",
		"mqtt_packet_received SUBSCRIBE", "broker_client_subscribed",
		"mqtt_packet_received PUBLISH", "broker_message_received", "broker_message_broadcast", "broker_retained_message",
		"mqtt_packet_received UNSUBSCRIBE", "broker_client_unsubscribed",
		"mqtt_packet_received DISCONNECT", "broker_client_disconnected",
		"broker_pre_shutdown", "broker_post_shutdown",
	}
	if !isSubsequence(want, seen) {
		t.Errorf("the log lines are missing events or have them out of order\nwant (in this order) %q\n got %q", want, seen)
	}
	for k, v := range map[string]any{"client_id": "logged", "username": "alice", "topic": "room/1", "qos": 1.0,
		"size": 4.0, "retain": true, "payload": "21.5", "level": "INFO", "msg": "event"} {
		if msg[k] != v {
			t.Errorf("broker_message_received line: %s = %v, want %v (line %v)", k, msg[k], v, msg)
		}
	}
	if p.Dropped() != 0 {
		t.Errorf("%d events dropped", p.Dropped())
	}
}

// isSubsequence reports whether want appears in got in order, possibly
// with other entries between.
func isSubsequence(want, got []string) bool {
	for _, g := range got {
		if len(want) > 0 && g == want[0] {
			want = want[1:]
		}
	}
	return len(want) == 0
}

package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/webhook/batch"
)

var eventTime = time.Date(2025, 3, 1, 10, 15, 30, 123456789, time.FixedZone("CET", 3600))

// allPackets is one packet of every type, with the optional parts set.
func allPackets() []packets.Packet {
	var props packets.Properties
	props.PayloadFormat, props.MessageExpiry, props.ContentType = 1, 60, "text/plain"
	props.ResponseTopic, props.CorrelationData = "r", []byte{1, 2}
	props.User = []packets.UserProperty{{Key: "k", Value: "v"}}
	var authProps packets.Properties
	authProps.AuthMethod, authProps.AuthData = "SCRAM-SHA-1", []byte("secret-ish")
	return []packets.Packet{
		&packets.Connect{ProtocolVersion: 5, ClientID: "c1", Username: "alice", UsernameFlag: true, PasswordFlag: true,
			Password: []byte("hunter2"), KeepAlive: 30, CleanStart: true, WillFlag: true, WillTopic: "w", WillQoS: 1},
		&packets.Connect{ProtocolVersion: 4},
		&packets.Connack{SessionPresent: true, ReasonCode: 0},
		&packets.Publish{Topic: "a/b", QoS: 1, PacketID: 7, Payload: []byte{0, 0xff}, Props: props},
		&packets.Publish{Topic: "a/b"},
		&packets.Puback{PacketID: 7},
		&packets.Pubrec{PacketID: 8, ReasonCode: 0x87},
		&packets.Pubrel{PacketID: 8},
		&packets.Pubcomp{PacketID: 8},
		&packets.Subscribe{PacketID: 9, Subscriptions: []packets.Subscription{{Filter: "a/#", QoS: 1, NoLocal: true, RetainHandling: 2}}},
		&packets.Suback{PacketID: 9, ReasonCodes: []packets.ReasonCode{1, 0x80}},
		&packets.Unsubscribe{PacketID: 10, Filters: []string{"a/#"}},
		&packets.Unsuback{PacketID: 10},
		&packets.Pingreq{},
		&packets.Pingresp{},
		&packets.Disconnect{ReasonCode: 0x8E},
		&packets.Auth{ReasonCode: 0x18, Props: authProps},
	}
}

// allEvents is one event of every type, and a packet event per packet.
func allEvents() []*hooks.Event {
	c := mqttClient("c1", "alice")
	var props packets.Properties
	props.ContentType = "application/json"
	msg := &hooks.Message{Topic: "a/b", Payload: []byte(`{"t":21.5}`), QoS: 1, Retain: true, Properties: &props}
	empty := &hooks.Message{Topic: "a/b"}
	evs := []*hooks.Event{
		{Type: mqtt.EventBrokerPreStart, Config: map[string]any{"realm": "factory-7"}},
		{Type: mqtt.EventBrokerPostStart},
		{Type: mqtt.EventBrokerPreShutdown},
		{Type: mqtt.EventBrokerPostShutdown},
		{Type: mqtt.EventClientConnected, Client: c},
		{Type: mqtt.EventClientDisconnected, Client: c, Reason: "keep alive timeout"},
		{Type: mqtt.EventClientSubscribed, Client: c, Topic: "a/#", QoS: 0},
		{Type: mqtt.EventClientUnsubscribed, Client: c, Topic: "a/#"},
		{Type: mqtt.EventMessageReceived, Client: c, Message: msg},
		{Type: mqtt.EventMessageBroadcast, Client: c, Message: empty},
		{Type: mqtt.EventMessageBroadcast, Message: msg},
		{Type: mqtt.EventRetainedMessage, Message: msg},
		{Type: mqtt.EventRetainedMessage, Client: c, Message: msg, TargetID: "offline-2"},
	}
	for i, pk := range allPackets() {
		t := mqtt.EventPacketReceived
		if i%2 == 1 {
			t = mqtt.EventPacketSent
		}
		evs = append(evs, &hooks.Event{Type: t, Client: c, Packet: pk})
	}
	for i, e := range evs {
		e.ID, e.Seq, e.Time, e.Broker = "ev-"+string(rune('a'+i)), uint64(i+1), eventTime, "node-1"
	}
	return evs
}

// delivered decodes every event the fake received, in arrival order.
func (f *fake) delivered() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]any
	for _, b := range f.bodies["/events"] {
		var batch struct{ Events []map[string]any }
		if err := json.Unmarshal(b, &batch); err != nil {
			f.t.Fatalf("events body: %v", err)
		}
		out = append(out, batch.Events...)
	}
	return out
}

func closePlugin(t *testing.T, p *Plugin) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestEveryEventMatchesTheSpec(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), func(o *Options) { o.Queue = batch.Options{Lanes: 1, Linger: -1} })
	p.Start(t.Context()) // the fake has no manifest (404): every event is sent
	evs := allEvents()
	for _, e := range evs {
		p.Event(e)
	}
	closePlugin(t, p) // drains
	got := f.delivered()
	if len(got) != len(evs) {
		t.Fatalf("delivered %d events, want %d (stats %+v)", len(got), len(evs), p.events.Stats())
	}
	for i, e := range got {
		if e["type"] != evs[i].Type.String() || e["seq"] != float64(i+1) || e["broker"] != "node-1" ||
			e["time"] != "2025-03-01T09:15:30.123456789Z" {
			t.Errorf("event %d: %v", i, e)
		}
	}
	if cfg, _ := got[0]["config"].(map[string]any); cfg["realm"] != "factory-7" {
		t.Errorf("broker_pre_start config = %v", got[0]["config"])
	}
	if m, _ := got[8]["message"].(map[string]any); m["payload"] != "eyJ0IjoyMS41fQ==" {
		t.Errorf("payload not base64: %v", got[8]["message"])
	}
	if m, _ := got[9]["message"].(map[string]any); m["payload"] != "" {
		t.Errorf("empty payload = %#v, want \"\"", m["payload"])
	}
	for _, e := range got {
		raw, _ := json.Marshal(e)
		for _, secret := range []string{"hunter2", "secret-ish", "c2VjcmV0LWlzaA"} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("a packet event carries a secret: %s", raw)
			}
		}
	}
}

func TestWants(t *testing.T) {
	all := mqtt.AllEvents()
	for _, c := range []struct {
		name   string
		events []string
		config map[string]any
		want   mqtt.EventMask
	}{
		{"nothing configured: all", nil, nil, all},
		{"listed", []string{"broker_client_connected"}, nil, mqtt.EventMask(0).With(mqtt.EventClientConnected)},
		{"listed plus config", []string{"broker_client_connected"}, map[string]any{"a": 1},
			mqtt.EventMask(0).With(mqtt.EventClientConnected).With(mqtt.EventBrokerPreStart)},
		{"empty list plus config", []string{}, map[string]any{"a": 1}, mqtt.EventMask(0).With(mqtt.EventBrokerPreStart)},
	} {
		p := newPlugin(t, "http://127.0.0.1:1", func(o *Options) { o.Events, o.Config = c.events, c.config })
		if got := p.Wants(); got != c.want {
			t.Errorf("%s: Wants = %b, want %b", c.name, got, c.want)
		}
	}
	if _, err := New(Options{Alias: "x", URL: "http://h", Events: []string{"on_connect"}}); err == nil {
		t.Fatal("an unknown event name was accepted")
	}
}

func deliveredTypes(f *fake) []string {
	var out []string
	for _, e := range f.delivered() {
		out = append(out, e["type"].(string))
	}
	sort.Strings(out)
	return out
}

func TestManifestNarrowsEventsAndConfigWins(t *testing.T) {
	manifest := `{"name":"audit","version":"1.0","authenticate":false,"topic_filtering":false,
		"events":["broker_client_connected","broker_from_the_future"]}`
	for _, c := range []struct {
		name   string
		events []string
		want   []string
	}{
		{"manifest", nil, []string{"broker_client_connected", "broker_pre_start"}},
		{"config", []string{"broker_message_received"}, []string{"broker_message_received", "broker_pre_start"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			f.handle("/manifest", answer(200, manifest))
			p := newPlugin(t, f.url(), func(o *Options) {
				o.Events, o.Config = c.events, map[string]any{"realm": "x"}
				o.Queue = batch.Options{Linger: -1}
			})
			if err := p.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the manifest", func() bool { _, ok := p.Manifest(); return ok })
			if !p.Ready() {
				t.Fatal("not ready after the manifest")
			}
			cl := mqttClient("c1", "alice")
			for _, e := range []*hooks.Event{
				{Type: mqtt.EventBrokerPreStart},
				{Type: mqtt.EventClientConnected, Client: cl},
				{Type: mqtt.EventMessageReceived, Client: cl, Message: &hooks.Message{Topic: "t"}},
			} {
				e.ID, e.Seq, e.Time = "id", 1, eventTime
				p.Event(e)
			}
			closePlugin(t, p)
			got := deliveredTypes(f)
			if len(got) != len(c.want) || got[0] != c.want[0] || got[1] != c.want[1] {
				t.Fatalf("delivered %v, want %v", got, c.want)
			}
		})
	}
}

func TestManifest404UsesTheConfig(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), nil)
	p.Start(context.Background())
	eventually(t, "ready", p.Ready)
	if _, ok := p.Manifest(); ok {
		t.Fatal("a 404 produced a manifest")
	}
	if mqtt.EventMask(p.mask.Load()) != mqtt.AllEvents() {
		t.Fatal("a 404 narrowed the events")
	}
}

func TestPluginDownAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := newPlugin(t, "http://"+addr, nil)
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("Start failed for a plugin that is down: %v", err)
	}
	if p.Ready() {
		t.Fatal("ready while the plugin is down")
	}
	if _, err := auth(p, mqttClient("c1", "alice"), "pw"); kindOf(err) != KindRefused {
		t.Fatalf("decision while down: %v", err)
	}
	// The plugin comes up on the same address; the background fetch finds it.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	f := newUnstartedFake(t, ln)
	f.handle("/manifest", answer(200, `{"name":"a","version":"1","authenticate":true,"topic_filtering":false,"events":[]}`))
	f.srv.Start()
	eventually(t, "the manifest once the plugin is up", p.Ready)
	if d, err := auth(p, mqttClient("c1", "alice"), "pw"); err != nil || d.Result != hooks.Allow {
		t.Fatalf("decision once up: %+v %v", d, err)
	}
}

func TestSendEventsClassifiesForRetry(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), nil)
	ev, err := p.encodeEvent([]byte(`{"events":[`), allEvents()[1])
	if err != nil {
		t.Fatal(err)
	}
	body := append(ev, "]}"...)
	for _, c := range []struct {
		h         http.HandlerFunc
		retryable bool
		after     time.Duration
		ok        bool
	}{
		{answer(200, ``), false, 0, true},
		{answer(202, ``), false, 0, true},
		{answer(500, ``), true, 0, false},
		{func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(429)
		}, true, 3 * time.Second, false},
		{answer(400, ``), false, 0, false},
		{answer(404, ``), false, 0, false},
	} {
		f.handle("/events", c.h)
		err := p.sendEvents(context.Background(), body, 0)
		var re *batch.RetryableError
		switch {
		case c.ok && err != nil:
			t.Errorf("want success, got %v", err)
		case !c.ok && err == nil:
			t.Errorf("want an error")
		case !c.ok && errors.As(err, &re) != c.retryable:
			t.Errorf("%v: retryable %v, want %v", err, !c.retryable, c.retryable)
		case c.retryable && re.After != c.after:
			t.Errorf("Retry-After read as %v, want %v", re.After, c.after)
		}
	}
	down := newPlugin(t, "http://127.0.0.1:1", nil)
	var re *batch.RetryableError
	if err := down.sendEvents(context.Background(), body, 0); !errors.As(err, &re) {
		t.Errorf("refused connection: %v, want retryable", err)
	}
}

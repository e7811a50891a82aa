package hooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	pahov5 "github.com/eclipse/paho.golang/paho"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// A full session produces the broker's events in the order they happen,
// from broker_pre_start to broker_post_shutdown (packet events other than
// CONNECT, CONNACK and SUBSCRIBE interleave and are left out).
func TestEventOrderFullSession(t *testing.T) {
	var all mqtt.EventMask
	for _, e := range mqtt.EventTypes() {
		all = all.With(e)
	}
	rec := &recorder{mask: all}
	m := mustNew(t, Options{Broker: "node", Auth: AuthOptions{AllowAnonymous: true}, Plugins: map[string]PluginSpec{"rec": {Plugin: rec}}})
	b, addr := startBroker(t, m)

	c := mustV3(t, addr, "full", true)
	c.sub("s/t", 1)
	c.pub("s/t", 1, true, "m")
	if got := c.next(); got != "s/t=m" {
		t.Fatalf("got %q", got)
	}
	c.done("unsubscribe", c.Unsubscribe("s/t"))
	c.Disconnect(50)
	waitFor(t, "broker_client_disconnected", func() bool {
		return slices.ContainsFunc(rec.events(), func(e *Event) bool { return e.Type == mqtt.EventClientDisconnected })
	})
	stopBroker(t, b, m)

	var got []string
	for _, e := range rec.events() {
		name := e.Type.String()
		if e.Packet != nil {
			pt := e.Packet.Type()
			if pt != packets.CONNECT && pt != packets.CONNACK && pt != packets.SUBSCRIBE {
				continue
			}
			name += " (" + pt.String() + ")"
		}
		got = append(got, name)
		if e.Broker != "node" || e.ID == "" {
			t.Fatalf("%s: broker %q id %q", name, e.Broker, e.ID)
		}
	}
	want := []string{
		"broker_pre_start", "broker_post_start",
		"mqtt_packet_received (CONNECT)", "mqtt_packet_sent (CONNACK)", "broker_client_connected",
		"mqtt_packet_received (SUBSCRIBE)", "broker_client_subscribed",
		"broker_message_received", "broker_message_broadcast", "broker_retained_message",
		"broker_client_unsubscribed", "broker_client_disconnected",
		"broker_pre_shutdown", "broker_post_shutdown",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("event order:\n got %s\nwant %s", strings.Join(got, ", "), strings.Join(want, ", "))
	}
}

// A check that holds one client up delays only that client: while X's
// check (publish, receive, or its CONNECT) is held, Y connects, publishes
// and receives all its messages, and only then is X's check decided.
func TestSlowCheckDelaysOnlyItsClient(t *testing.T) {
	const n = 50
	for _, held := range []string{"publish", "receive", "connect"} {
		t.Run(held, func(t *testing.T) {
			h := newHold()
			defer h.free()
			topics := topicFunc(func(ctx context.Context, c *mqtt.ClientInfo, r mqtt.TopicRequest) (Decision, error) {
				if c.ClientID == "X" && r.Topic == "A" && r.Action.String() == held {
					return h.block(ctx)
				}
				return Decision{Result: Allow}, nil
			})
			auth := authFunc(func(ctx context.Context, r *AuthRequest) (Decision, error) {
				if r.Client.ClientID == "X" && held == "connect" {
					return h.block(ctx)
				}
				return Decision{Result: Allow}, nil
			})
			m := mustNew(t, Options{Plugins: map[string]PluginSpec{"acl": {Plugin: topics}, "auth": {Plugin: auth}},
				Auth: AuthOptions{Plugins: []string{"auth"}}, Topics: TopicOptions{Enable: true, Plugins: []string{"acl"}}})
			_, addr := startBroker(t, m)

			xDone := make(chan *v3, 1)
			if held == "connect" {
				go func() { xDone <- dialV3(t, addr, "X", true, "") }()
			} else {
				x := mustV3(t, addr, "X", true)
				x.sub("A", 1)
				src := x
				if held == "receive" {
					src = mustV3(t, addr, "W", true)
				}
				go func() { src.Publish("A", 1, false, "held") }()
				xDone <- x
			}
			wait(t, "X's check to start", h.entered)

			y := mustV3(t, addr, "Y", true)
			y.sub("B", 1)
			for i := range n {
				y.pub("B", 1, false, fmt.Sprint(i))
			}
			for i := range n {
				if got, want := y.next(), fmt.Sprintf("B=%d", i); got != want {
					t.Fatalf("Y got %q, want %q", got, want)
				}
			}
			if h.decided.Load() {
				t.Fatal("X's check was decided before Y finished: Y waited for it")
			}
			h.free()
			x := wait(t, "X", xDone)
			if held == "connect" {
				if err := x.ack.Error(); !x.answered || err != nil {
					t.Fatalf("X refused after its check was released: %v", err)
				}
				return
			}
			if held == "receive" {
				if got := x.next(); got != "A=held" {
					t.Fatalf("X got %q after release", got)
				}
			}
		})
	}
}

// A CONNECT refused by the auth chain, naming the id of a connected client,
// neither disconnects that client nor touches its session.
func TestRefusedConnectLeavesSessionAlone(t *testing.T) {
	auth := authFunc(func(_ context.Context, r *AuthRequest) (Decision, error) {
		if string(r.Password) == "bad" {
			return Decision{Result: Deny, ReasonCode: byte(packets.BadUsernameOrPassword)}, nil
		}
		return Decision{Result: Ignore}, nil
	})
	m := mustNew(t, Options{Plugins: map[string]PluginSpec{"pw": {Plugin: auth}},
		Auth: AuthOptions{Plugins: []string{"pw"}, AllowAnonymous: true}})
	_, addr := startBroker(t, m)

	owner := mustV3(t, addr, "dup", false)
	owner.sub("c/t", 1)
	intruder := dialV3(t, addr, "dup", true, "bad")
	if code := intruder.ack.ReturnCode(); code != byte(packets.ConnRefusedBadUsernameOrPassword) {
		t.Fatalf("refused CONNECT got code %#x, want 0x04", code)
	}
	p := mustV3(t, addr, "p", true)
	p.pub("c/t", 1, false, "still here")
	if got := owner.next(); got != "c/t=still here" {
		t.Fatalf("owner got %q", got)
	}
	select {
	case <-owner.lost:
		t.Fatal("the connected client was disconnected by a refused CONNECT")
	default:
	}
	owner.Disconnect(50)
	again := mustV3(t, addr, "dup", false)
	if !again.ack.SessionPresent() {
		t.Fatal("the owner's session was discarded by a refused clean-start CONNECT")
	}
}

// Retained messages sent on subscribe, and messages queued for a
// persistent session sent on reconnect, go through the receive check.
func TestReceiveCheckCoversRetainedAndQueued(t *testing.T) {
	acl := topicFunc(func(_ context.Context, c *mqtt.ClientInfo, r mqtt.TopicRequest) (Decision, error) {
		if r.Action == mqtt.ActionReceive && c.ClientID == "s" && strings.Contains(r.Topic, "secret") {
			return Decision{Result: Deny}, nil
		}
		return Decision{Result: Allow}, nil
	})
	m := mustNew(t, Options{Plugins: map[string]PluginSpec{"acl": {Plugin: acl}}, Auth: AuthOptions{AllowAnonymous: true},
		Topics: TopicOptions{Enable: true, Plugins: []string{"acl"}}})
	_, addr := startBroker(t, m)
	p := mustV3(t, addr, "p", true)
	p.pub("r/secret", 1, true, "1")
	p.pub("r/open", 1, true, "2")

	s := mustV3(t, addr, "s", false)
	s.sub("r/#", 1)
	s.sub("q/#", 1)
	p.pub("r/end", 1, false, "marker")
	if got := s.until("r/end=marker"); !slices.Equal(got, []string{"r/open=2", "r/end=marker"}) {
		t.Fatalf("on subscribe got %q", got)
	}
	s.Disconnect(50)
	p.pub("q/secret", 1, false, "3")
	p.pub("q/open", 1, false, "4")
	s = mustV3(t, addr, "s", false)
	if !s.ack.SessionPresent() {
		t.Fatal("session not resumed")
	}
	p.pub("q/end", 1, false, "marker")
	// A message the first connection received but had not acknowledged
	// when it left comes again (QoS 1 is at least once): skip those.
	got := slices.DeleteFunc(s.until("q/end=marker"), func(m string) bool {
		return m == "r/open=2" || m == "r/end=marker"
	})
	if !slices.Equal(got, []string{"q/open=4", "q/end=marker"}) {
		t.Fatalf("on reconnect got %q", got)
	}
}

// A denied publish is acknowledged (3.1.1) or answered 0x87 with the
// plugin's reason (5.0), and is neither routed nor retained; a denied
// filter fails in its SUBACK slot only.
func TestDeniedPublishAndSubscribe(t *testing.T) {
	acl := topicFunc(func(_ context.Context, _ *mqtt.ClientInfo, r mqtt.TopicRequest) (Decision, error) {
		switch {
		case r.Action == mqtt.ActionPublish && strings.HasPrefix(r.Topic, "ro/"):
			return Decision{Result: Deny, Reason: "read only"}, nil
		case r.Action == mqtt.ActionSubscribe && r.Topic == "deny/#":
			return Decision{Result: Deny, Reason: "no"}, nil
		}
		return Decision{Result: Allow}, nil
	})
	m := mustNew(t, Options{Plugins: map[string]PluginSpec{"acl": {Plugin: acl}}, Auth: AuthOptions{AllowAnonymous: true},
		Topics: TopicOptions{Enable: true, Plugins: []string{"acl"}}})
	_, addr := startBroker(t, m)

	watcher := mustV3(t, addr, "w", true)
	watcher.sub("#", 1)
	p := mustV3(t, addr, "p3", true)
	p.pub("ro/x", 1, true, "denied") // PUBACK all the same: done() fails on no answer
	v5, _, err := dialV5(t, addr, "p5", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	resp, err := v5.Publish(ctx, &pahov5.Publish{Topic: "ro/y", QoS: 1, Retain: true, Payload: []byte("denied")})
	if err == nil || resp == nil || resp.ReasonCode != byte(packets.NotAuthorized) || resp.Properties == nil || resp.Properties.ReasonString != "read only" {
		t.Fatalf("5.0 denied publish: %+v (props %+v), err %v; want 0x87 \"read only\"", resp, resp.Properties, err)
	}
	p.pub("ok/end", 1, true, "marker")
	if got := watcher.until("ok/end=marker"); !slices.Equal(got, []string{"ok/end=marker"}) {
		t.Fatalf("watcher got %q: a denied publish was routed", got)
	}
	late := mustV3(t, addr, "late", true)
	late.sub("#", 1)
	p.pub("z/end", 1, false, "marker")
	if got := late.until("z/end=marker"); !slices.Equal(got, []string{"ok/end=marker", "z/end=marker"}) {
		t.Fatalf("late subscriber got %q: a denied publish was retained", got)
	}

	tok := p.SubscribeMultiple(map[string]byte{"ok/#": 1, "deny/#": 1}, nil)
	if !tok.WaitTimeout(bound) {
		t.Fatal("no SUBACK")
	}
	if r := tok.(interface{ Result() map[string]byte }).Result(); r["ok/#"] != 1 || r["deny/#"] != 0x80 {
		t.Fatalf("3.1.1 SUBACK %v, want ok/# 1 and deny/# 0x80", r)
	}
	sa, err := v5.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "ok/#", QoS: 1}, {Topic: "deny/#", QoS: 1}}})
	if sa == nil || !slices.Equal(sa.Reasons, []byte{1, byte(packets.NotAuthorized)}) {
		t.Fatalf("5.0 SUBACK %+v (err %v), want [1 0x87]", sa, err)
	}
}

// An auth plugin that fails, under on-error deny, refuses a 5.0 client
// with 0x88 server unavailable and a 3.1.1 client with 0x05.
func TestAuthOutageCodes(t *testing.T) {
	m := mustNew(t, Options{Plugins: map[string]PluginSpec{"down": {Plugin: &scripted{b: bError}, OnError: OnErrorDeny}},
		Auth: AuthOptions{Plugins: []string{"down"}}})
	_, addr := startBroker(t, m)
	_, ack, err := dialV5(t, addr, "c5", "pw")
	if err == nil || ack == nil || ack.ReasonCode != byte(packets.ServerUnavailable) {
		t.Fatalf("5.0 CONNACK %+v, err %v; want 0x88", ack, err)
	}
	if c := dialV3(t, addr, "c3", true, "pw"); c.ack.ReturnCode() != byte(packets.ConnRefusedNotAuthorized) {
		t.Fatalf("3.1.1 CONNACK %#x, want 0x05", c.ack.ReturnCode())
	}
}

// The auth check's context ends when the connecting client goes away, so a
// plugin waiting on it returns.
func TestAuthCancelledWhenClientLeaves(t *testing.T) {
	entered := make(chan struct{}, 1)
	ended := make(chan error, 1)
	auth := authFunc(func(ctx context.Context, _ *AuthRequest) (Decision, error) {
		entered <- struct{}{}
		<-ctx.Done()
		ended <- ctx.Err()
		return Decision{}, ctx.Err()
	})
	m := mustNew(t, Options{Plugins: map[string]PluginSpec{"slow": {Plugin: auth}}, Auth: AuthOptions{Plugins: []string{"slow"}}})
	_, addr := startBroker(t, m)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	connect, _ := (&packets.Connect{ProtocolVersion: packets.V311, ClientID: "leaver", CleanStart: true, KeepAlive: 30}).Append(nil, packets.V311)
	conn.Write(connect)
	wait(t, "Authenticate", entered)
	conn.Close()
	if err := wait(t, "the plugin's context to end after the client left", ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("ctx ended with %v", err)
	}
}

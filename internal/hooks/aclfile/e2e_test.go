package aclfile

import (
	"context"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
)

const wait = 10 * time.Second

// serveACL runs a broker on 127.0.0.1 whose topic-check chain is the
// plugin alone, with the default (deny) for what it ignores.
func serveACL(t *testing.T, p *Plugin) string {
	t.Helper()
	m, err := hooks.New(hooks.Options{
		Plugins: map[string]hooks.PluginSpec{"acl": {Plugin: p, Type: "acl-file"}},
		Auth:    hooks.AuthOptions{AllowAnonymous: true},
		Topics:  hooks.TopicOptions{Enable: true, Plugins: []string{"acl"}, Default: hooks.Deny},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := hookstest.Serve(t, m)
	return addr
}

// client is a paho 3.1.1 client whose messages arrive on msgs as topics.
type client struct {
	paho.Client
	msgs chan string
}

func dial(t *testing.T, addr, user, id string) *client {
	t.Helper()
	c := &client{msgs: make(chan string, 100)}
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetUsername(user).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(wait).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.msgs <- m.Topic() })
	c.Client = paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

// subscribe returns the SUBACK code of each filter.
func (c *client) subscribe(t *testing.T, filters ...string) []byte {
	t.Helper()
	m := map[string]byte{}
	for _, f := range filters {
		m[f] = 1
	}
	tok := c.SubscribeMultiple(m, nil)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %v: %v", filters, tok.Error())
	}
	res := tok.(*paho.SubscribeToken).Result()
	codes := make([]byte, len(filters))
	for i, f := range filters {
		codes[i] = res[f]
	}
	return codes
}

func (c *client) publish(t *testing.T, topic string, retain bool) {
	t.Helper()
	if tok := c.Publish(topic, 1, retain, "x"); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// until collects topics from c until marker arrives. Messages from one
// publisher at QoS 1 arrive in order, so what the broker let through
// before the marker has arrived by then.
func (c *client) until(t *testing.T, marker string) []string {
	t.Helper()
	var got []string
	for {
		select {
		case topic := <-c.msgs:
			if topic == marker {
				return got
			}
			got = append(got, topic)
		case <-time.After(wait):
			t.Fatalf("no %s; got %v", marker, got)
		}
	}
}

const e2eACL = `rules:
  - {user: alice, topic: "sensors/alice/#", actions: readwrite}
  - {user: bob, topic: "sensors/#", actions: read}
  - {topic: "sensors/+/secret", actions: [receive], result: deny}
  - {topic: "devices/%c/#", actions: [publish]}
  - {topic: "devices/#", actions: [subscribe, receive]}
  - {topic: "devices/+/secret", actions: [subscribe], result: deny}
`

// Real clients through the hooks chain: subscribe (granted and refused
// filters in one SUBSCRIBE; a deny on part of a filter filters deliveries
// instead of refusing it), publish (a refused message is not routed),
// receive (a denied topic is not delivered, live or retained), %c, MQTT
// 5's reason codes, and a reload that applies to connected clients.
func TestEndToEnd(t *testing.T) {
	path := hookstest.WriteFile(t, "acl.yaml", e2eACL)
	p, err := New(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveACL(t, p)
	alice := dial(t, addr, "alice", "alice-1")
	bob := dial(t, addr, "bob", "bob-1")

	// subscribe: bob may read sensors/#, not devices/+/secret (denied) nor
	// alerts (no rule: the default denies).
	if got := bob.subscribe(t, "sensors/#", "devices/+/secret", "alerts/#", "devices/+/log"); !slices.Equal(got, []byte{1, 0x80, 0x80, 1}) {
		t.Errorf("bob's SUBACK codes %#v, want [1 0x80 0x80 1]", got)
	}
	// publish and receive: alice may publish under sensors/alice/ only;
	// nobody receives sensors/+/secret.
	alice.publish(t, "sensors/alice/temp", false)
	alice.publish(t, "sensors/bob/temp", false) // refused: never routed
	alice.publish(t, "sensors/alice/secret", false)
	alice.publish(t, "sensors/alice/end", false)
	if got := bob.until(t, "sensors/alice/end"); !slices.Equal(got, []string{"sensors/alice/temp"}) {
		t.Errorf("bob received %v, want only sensors/alice/temp", got)
	}
	// %c: a device publishes under its own id only. The subscribe-only
	// deny on devices/+/secret refuses the filters it covers, not the
	// wider devices/#, and does not filter deliveries (receive rules do).
	watch := dial(t, addr, "", "watcher")
	if got := watch.subscribe(t, "devices/+/secret", "devices/#"); !slices.Equal(got, []byte{0x80, 1}) {
		t.Errorf("watcher's SUBACK codes %#v, want [0x80 1]", got)
	}
	dev := dial(t, addr, "", "dev-9")
	dev.publish(t, "devices/dev-8/state", false) // refused: another device's
	dev.publish(t, "devices/dev-9/secret", false)
	dev.publish(t, "devices/dev-9/state", false)
	if got := watch.until(t, "devices/dev-9/state"); !slices.Equal(got, []string{"devices/dev-9/secret"}) {
		t.Errorf("the watcher received %v before dev-9's state, want [devices/dev-9/secret]", got)
	}

	// Retained messages are checked on delivery too.
	alice.publish(t, "sensors/alice/secret", true)
	alice.publish(t, "sensors/alice/temp", true)
	late := dial(t, addr, "bob", "bob-2")
	late.subscribe(t, "sensors/alice/+")
	// The retained messages go out once the subscription exists, on the
	// subscriber's own goroutine; a live publish routed meanwhile may reach
	// it first, so wait for the retained one before the marker.
	if before := late.until(t, "sensors/alice/temp"); len(before) != 0 {
		t.Errorf("a new subscriber received %v before the retained sensors/alice/temp, want nothing", before)
	}
	alice.publish(t, "sensors/alice/end", false)
	if got := late.until(t, "sensors/alice/end"); len(got) != 0 {
		t.Errorf("a new subscriber received %v after the retained sensors/alice/temp, want nothing (sensors/alice/secret is denied)", got)
	}
	if got := bob.until(t, "sensors/alice/end"); !slices.Equal(got, []string{"sensors/alice/temp"}) {
		t.Errorf("bob received %v live, want sensors/alice/temp only", got)
	}

	// MQTT 5 clients hear 0x87 for a refused subscription and publish;
	// sensors/# is granted to alice, who may read part of it.
	v5 := dialV5(t, addr, "alice", "alice-5")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	sa, err := v5.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "sensors/#", QoS: 1}, {Topic: "alerts/#", QoS: 1}}})
	if sa == nil || !slices.Equal(sa.Reasons, []byte{1, 0x87}) {
		t.Errorf("5.0 SUBACK %+v, %v; want reasons [1 0x87]", sa, err)
	}
	pr, err := v5.Publish(ctx, &pahov5.Publish{Topic: "sensors/bob/x", QoS: 1, Payload: []byte("x")})
	if pr == nil || pr.ReasonCode != 0x87 {
		t.Errorf("5.0 PUBACK %+v, %v; want 0x87", pr, err)
	}

	// Reload: bob loses read access; his connection stays, his existing
	// subscription no longer receives.
	os.WriteFile(path, []byte("rules:\n  - {user: alice, topic: \"sensors/alice/#\"}\n  - {user: bob, topic: sensors/alice/end, actions: read}\n"), 0o600)
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	alice.publish(t, "sensors/alice/temp", false)
	alice.publish(t, "sensors/alice/end", false)
	if got := bob.until(t, "sensors/alice/end"); len(got) != 0 {
		t.Errorf("after the reload bob still received %v", got)
	}
	if !bob.IsConnectionOpen() {
		t.Error("the reload dropped bob's connection")
	}
}

// dialV5 connects a paho.golang MQTT 5.0 client.
func dialV5(t *testing.T, addr, user, id string) *pahov5.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	c := pahov5.NewClient(pahov5.ClientConfig{Conn: conn, PacketTimeout: wait})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.Connect(ctx, &pahov5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30, Username: user, UsernameFlag: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(&pahov5.Disconnect{}) })
	return c
}

// The Eclipse Paho interoperability tests' ACL: everything allowed, and a
// subscribe-only deny on test/nosubscribe. Their clean-up subscribes to #,
// which must be granted (and receive the retained messages to clear), while
// test/nosubscribe itself is refused.
func TestSubscribeOnlyDenyBesideAllowAll(t *testing.T) {
	p := load(t, "acl.yaml", `rules:
  - {topic: "#"}
  - {topic: test/nosubscribe, actions: [subscribe], result: deny}
`)
	addr := serveACL(t, p)
	pub := dial(t, addr, "", "pub")
	pub.publish(t, "test/retained", true)
	c := dial(t, addr, "", "cleaner")
	if got := c.subscribe(t, "#", "test/nosubscribe"); !slices.Equal(got, []byte{1, 0x80}) {
		t.Fatalf("SUBACK codes %#v, want [1 0x80]", got)
	}
	pub.publish(t, "test/nosubscribe", false) // a subscribe-only deny filters no delivery
	pub.publish(t, "test/end", false)
	if got := c.until(t, "test/end"); !slices.Equal(got, []string{"test/retained", "test/nosubscribe"}) {
		t.Errorf("the # subscriber received %v, want test/retained then test/nosubscribe", got)
	}
}

package mqtt

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// A kicked MQTT 5 client is told "administrative action", its will goes
// out (it did not disconnect itself), and its persistent session stays.
func TestKickV5TellsWhyAndPublishesWill(t *testing.T) {
	tb := startBroker(t, nil)
	watcher := dialRaw(t, tb.addr)
	watcher.mustConnect("watcher", true)
	watcher.subscribe(1, "wills/#", 0)

	c := dialRawV5(t, tb.addr)
	p := &packets.Connect{ClientID: "victim", KeepAlive: 60, WillFlag: true, WillTopic: "wills/victim", WillPayload: []byte("gone")}
	p.Props.SessionExpiry = 300
	if ack := c.connectWith(p); ack.ReasonCode != packets.Success {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	c.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "a/+", QoS: 1}}})
	c.read(2 * time.Second) // SUBACK

	v, ok := tb.Client("victim")
	if !ok || !v.Connected || v.Protocol != 5 || v.Subs != 1 || v.ConnectedAt.IsZero() || v.Expiry != 300 {
		t.Fatalf("Client(victim) = %+v, %v", v, ok)
	}
	kicked, found := tb.Kick("victim", false)
	if !kicked || !found {
		t.Fatalf("Kick = %v, %v", kicked, found)
	}
	c.expectDisconnect(packets.AdministrativeAction)
	if pub := watcher.expectPublish(3 * time.Second); pub.Topic != "wills/victim" {
		t.Fatalf("watcher got %q, want the will", pub.Topic)
	}
	waitFor(t, "the session to go offline", func() bool {
		v, ok := tb.Client("victim")
		return ok && !v.Connected && len(v.Subscriptions) == 1
	})
	if st := tb.Stats(); st.KeepAliveExpired != 0 || st.Malformed != 0 {
		t.Fatalf("a kick counted as keep-alive expiry or protocol error: %+v", st)
	}
}

// Kick with discard ends the connection and forgets the session at once;
// an offline session can be discarded too; an unknown id is not found.
func TestKickDiscardsSession(t *testing.T) {
	tb := startBroker(t, nil)
	c := dialRaw(t, tb.addr)
	c.mustConnect("gone", false)
	c.subscribe(1, "x/#", 1)
	kicked, found := tb.Kick("gone", true)
	if !kicked || !found {
		t.Fatalf("Kick = %v, %v", kicked, found)
	}
	c.expectClosed(3 * time.Second)
	if _, ok := tb.Client("gone"); ok {
		t.Fatal("the session survived a kick with discard")
	}
	if n := len(tb.Subscriptions()); n != 0 {
		t.Fatalf("%d subscriptions left", n)
	}
	waitFor(t, "the connection count to drop", func() bool { return tb.Stats().ClientsConnected == 0 })

	off := dialRaw(t, tb.addr)
	off.mustConnect("offline", false)
	off.conn.Close()
	waitFor(t, "offline", func() bool { v, ok := tb.Client("offline"); return ok && !v.Connected })
	if kicked, found := tb.Kick("offline", true); kicked || !found {
		t.Fatalf("Kick(offline) = %v, %v; want false, true", kicked, found)
	}
	if _, ok := tb.Client("offline"); ok {
		t.Fatal("the offline session survived a discard")
	}
	if _, found := tb.Kick("nobody", false); found {
		t.Fatal("Kick found an unknown client")
	}
}

func TestClientsSubscriptionsAndRetained(t *testing.T) {
	tb := startBroker(t, nil)
	b := dialRaw(t, tb.addr)
	b.mustConnect("b", true)
	b.subscribe(1, "$share/g/s/+", 1)
	a := dialRaw(t, tb.addr)
	a.mustConnect("a", true)
	a.subscribe(1, "t/#", 2)

	cs := tb.Clients()
	if len(cs) != 2 || cs[0].ClientID != "a" || cs[1].ClientID != "b" {
		t.Fatalf("Clients = %+v", cs)
	}
	subs := tb.Subscriptions()
	if len(subs) != 2 || subs[0].Filter != "t/#" || subs[0].QoS != 2 ||
		subs[1].ShareGroup != "g" || subs[1].Filter != "s/+" {
		t.Fatalf("Subscriptions = %+v", subs)
	}

	n, err := tb.Publish(PublishRequest{Topic: "t/1", Payload: []byte("hi"), QoS: 1, Retain: true})
	if err != nil || n != 1 {
		t.Fatalf("Publish = %d, %v", n, err)
	}
	if pub := a.expectPublish(2 * time.Second); string(pub.Payload) != "hi" || pub.QoS != 1 {
		t.Fatalf("a got %+v", pub)
	}
	if m, ok := tb.Retained("t/1"); !ok || string(m.Payload) != "hi" || m.Created.IsZero() {
		t.Fatalf("Retained(t/1) = %+v, %v", m, ok)
	}
	ms, err := tb.RetainedMatching("t/+")
	if err != nil || len(ms) != 1 {
		t.Fatalf("RetainedMatching = %v, %v", ms, err)
	}
	if _, err := tb.RetainedMatching("t/#/x"); err == nil {
		t.Fatal("an invalid filter was accepted")
	}
	if !tb.DeleteRetained("t/1") || tb.DeleteRetained("t/1") {
		t.Fatal("DeleteRetained did not delete exactly once")
	}
}

func TestAdminPublishRefusesBadInput(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.MaxPacketSize = 1024 })
	for _, p := range []PublishRequest{
		{Topic: "a/+"},
		{Topic: ""},
		{Topic: "$SYS/x"},
		{Topic: "a", QoS: 3},
		{Topic: "big", Payload: []byte(strings.Repeat("x", 1024))},
	} {
		if _, err := tb.Publish(p); !errors.Is(err, ErrBadPublish) {
			t.Errorf("Publish(%q, qos %d, %d bytes) = %v, want ErrBadPublish", p.Topic, p.QoS, len(p.Payload), err)
		}
	}
	if _, err := tb.Publish(PublishRequest{Topic: "big", Payload: make([]byte, 1024)}); !errors.Is(err, ErrPublishTooLarge) {
		t.Errorf("a too large message: %v, want ErrPublishTooLarge", err)
	}
}

// Kicking a shared-subscription member with its session hands what it held
// unacknowledged to the group's other member, as its leaving would.
func TestKickDiscardRedeliversShared(t *testing.T) {
	tb := startBroker(t, nil)
	a := dialRaw(t, tb.addr)
	a.mustConnect("member-a", true)
	a.subscribe(1, "$share/g/jobs", 1)
	bc := dialRaw(t, tb.addr)
	bc.mustConnect("member-b", true)
	bc.subscribe(1, "$share/g/jobs", 1)

	// Publish until member-a holds one job it never acknowledges.
	var held *packets.Publish
	for i := 0; held == nil && i < 10; i++ {
		if _, err := tb.Publish(PublishRequest{Topic: "jobs", Payload: []byte{byte('0' + i)}, QoS: 1}); err != nil {
			t.Fatal(err)
		}
		if p, err := a.tryRead(200 * time.Millisecond); err == nil {
			held, _ = p.(*packets.Publish)
		}
	}
	if held == nil {
		t.Fatal("member-a never got a job")
	}
	for { // drain what member-b got so far, acknowledging nothing
		if _, err := bc.tryRead(200 * time.Millisecond); err != nil {
			break
		}
	}
	if kicked, _ := tb.Kick("member-a", true); !kicked {
		t.Fatal("member-a not kicked")
	}
	got := bc.expectPublish(3 * time.Second)
	if string(got.Payload) != string(held.Payload) {
		t.Fatalf("member-b got %q, want member-a's unacknowledged %q", got.Payload, held.Payload)
	}
}

package mqtt

import (
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Message Expiry Interval ([MQTT5-3.3.2-5], [MQTT5-3.3.2-6]): a message whose
// interval has passed before onward delivery starts is not delivered —
// whether it waited in an offline session's queue, in the inflight window
// of a connection that went away, or as a retained message — and each such
// drop is counted in Stats().DroppedExpired. A message that has not expired
// is forwarded with the interval decremented by the time it waited.
func TestV5MessageExpiry(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)

	// An offline session, and one whose delivery is inflight (unacknowledged).
	off, _ := mustConnectV5(t, tb.addr, "v5-me-off", false, 3600)
	off.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/me/q/#", QoS: 1})
	off.disconnect()
	infl, _ := mustConnectV5(t, tb.addr, "v5-me-infl", false, 3600)
	infl.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/me/i", QoS: 1})
	live := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-me-live", CleanStart: true}, nil)
	live.sub(0, pahov5.SubscribeOptions{Topic: "v5/me/q/#", QoS: 1})

	pub := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-me-pub", CleanStart: true}, nil)
	send := func(topic string, expiry uint32, retain bool) {
		p := &pahov5.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: []byte(topic)}
		if expiry != 0 {
			p.Properties = &pahov5.PublishProperties{MessageExpiry: ptr(expiry)}
		}
		pub.pub(p)
	}
	send("v5/me/q/short", 1, false)
	send("v5/me/q/long", 60, false)
	send("v5/me/q/none", 0, false)
	send("v5/me/i", 1, false)
	send("v5/me/r/short", 1, true)
	send("v5/me/r/long", 60, true)

	// Forwarded at once, nothing has been taken off yet.
	for _, want := range []struct {
		topic  string
		expiry uint32
	}{{"v5/me/q/short", 1}, {"v5/me/q/long", 60}, {"v5/me/q/none", 0}} {
		m := live.recv(3 * time.Second)
		got := uint32(0)
		if m.Properties != nil && m.Properties.MessageExpiry != nil {
			got = *m.Properties.MessageExpiry
		}
		if m.Topic != want.topic || got != want.expiry {
			t.Fatalf("live: %s expiry %d, want %s %d", m.Topic, got, want.topic, want.expiry)
		}
	}
	m := infl.expectPublish(2 * time.Second)
	if m.Props.MessageExpiry != 1 {
		t.Fatalf("inflight delivery expiry %d", m.Props.MessageExpiry)
	}
	infl.conn.Close() // never acknowledged

	time.Sleep(2100 * time.Millisecond)

	off, ack := mustConnectV5(t, tb.addr, "v5-me-off", false, 3600)
	if !ack.SessionPresent {
		t.Fatal("session lost")
	}
	m = off.expectPublish(2 * time.Second)
	if m.Topic != "v5/me/q/long" || !m.Props.Has(packets.PropMessageExpiry) || m.Props.MessageExpiry == 0 || m.Props.MessageExpiry > 58 {
		t.Fatalf("after 2 s offline: %s expiry %d (present %v), want v5/me/q/long with at most 58 s left",
			m.Topic, m.Props.MessageExpiry, m.Props.Has(packets.PropMessageExpiry))
	}
	off.ack(m)
	m = off.expectPublish(2 * time.Second)
	if m.Topic != "v5/me/q/none" || m.Props.Has(packets.PropMessageExpiry) {
		t.Fatalf("got %s expiry %d, want v5/me/q/none without expiry", m.Topic, m.Props.MessageExpiry)
	}
	off.ack(m)
	off.expectNothing(300 * time.Millisecond) // v5/me/q/short expired in the queue

	infl, ack = mustConnectV5(t, tb.addr, "v5-me-infl", false, 3600)
	if !ack.SessionPresent {
		t.Fatal("inflight session lost")
	}
	infl.expectNothing(300 * time.Millisecond) // not resent: it expired

	r, _ := mustConnectV5(t, tb.addr, "v5-me-ret", true, 0)
	r.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/me/r/#", QoS: 1})
	m = r.expectPublish(2 * time.Second)
	if m.Topic != "v5/me/r/long" || !m.Retain || m.Props.MessageExpiry == 0 || m.Props.MessageExpiry > 58 {
		t.Fatalf("retained: %s retain %v expiry %d, want v5/me/r/long with at most 58 s left", m.Topic, m.Retain, m.Props.MessageExpiry)
	}
	r.ack(m)
	r.expectNothing(300 * time.Millisecond) // the expired retained message is not sent

	if n := tb.Stats().DroppedExpired; n < 3 {
		t.Errorf("DroppedExpired %d, want at least 3 (queued, inflight, retained)", n)
	}
}

package mqtt

import (
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// v5WillConnect connects a raw v5 client with a will on topic (QoS 1), the
// given Will Delay Interval and Session Expiry Interval.
func v5WillConnect(t *testing.T, addr, id, topic string, delay, expiry uint32) *rawClient {
	t.Helper()
	c := dialRawV5(t, addr)
	p := &packets.Connect{ClientID: id, CleanStart: true, KeepAlive: 60,
		WillFlag: true, WillTopic: topic, WillQoS: 1, WillPayload: []byte("gone:" + id)}
	p.Props.SessionExpiry = expiry
	p.WillProps.WillDelay = delay
	p.WillProps.ContentType = "text/plain"
	p.WillProps.User = []packets.UserProperty{{Key: "who", Value: id}}
	if ack := c.connectWith(p); ack.ReasonCode != packets.Success {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	return c
}

// v5WillWatcher subscribes a raw v5 client to the will topics.
func v5WillWatcher(t *testing.T, addr, filter string) *rawClient {
	t.Helper()
	w, _ := mustConnectV5(t, addr, "v5-will-watch-"+filter, true, 0)
	w.subscribeOpts(1, 0, packets.Subscription{Filter: filter, QoS: 1})
	return w
}

// Will Delay Interval ([MQTT5-3.1.3-9]): after an abnormal disconnect the
// will waits for the delay, then goes out with its properties (the delay
// itself is not a PUBLISH property).
func TestV5WillDelay(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	w := v5WillWatcher(t, tb.addr, "v5/will/delay")
	c := v5WillConnect(t, tb.addr, "v5-wd", "v5/will/delay", 1, 60)
	c.conn.Close()
	w.expectNothing(600 * time.Millisecond)
	m := w.expectPublish(3 * time.Second)
	if string(m.Payload) != "gone:v5-wd" || m.Props.ContentType != "text/plain" ||
		len(m.Props.User) != 1 || m.Props.User[0] != (packets.UserProperty{Key: "who", Value: "v5-wd"}) {
		t.Fatalf("will %q %+v", m.Payload, m.Props)
	}
}

// A reconnect (Clean Start 0) within the Will Delay Interval cancels the will
// ([MQTT5-3.1.3-9]): it is not published when the delay would have run out,
// nor later when the resumed session ends.
func TestV5WillCancelledByReconnect(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	w := v5WillWatcher(t, tb.addr, "v5/will/cancel")
	c := v5WillConnect(t, tb.addr, "v5-wc", "v5/will/cancel", 1, 60)
	c.conn.Close()
	waitOffline(t, tb, "v5-wc")

	// Resume the session: no will on this connection, Session Expiry 0, so
	// the session ends when it does.
	c2, ack := mustConnectV5(t, tb.addr, "v5-wc", false, 0)
	if !ack.SessionPresent {
		t.Fatal("session not resumed")
	}
	w.expectNothing(1500 * time.Millisecond) // past the 1 s delay
	c2.disconnect()
	waitFor(t, "session ended", func() bool { _, ok := tb.store.Get("v5-wc"); return !ok })
	if p, err := w.tryRead(500 * time.Millisecond); err == nil {
		t.Fatalf("the will cancelled by the reconnect was published when the resumed session ended: %v %+v", p.Type(), p)
	}
}

// A Will Delay longer than the Session Expiry: the will goes out when the
// session ends ([MQTT5-3.1.2-8]: whichever happens first), not after the
// delay.
func TestV5WillDelayBeyondSessionExpiry(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	w := v5WillWatcher(t, tb.addr, "v5/will/expiry")
	c := v5WillConnect(t, tb.addr, "v5-we", "v5/will/expiry", 30, 1)
	c.conn.Close()
	w.expectNothing(500 * time.Millisecond)
	if m := w.expectPublish(4 * time.Second); string(m.Payload) != "gone:v5-we" {
		t.Fatalf("will %q", m.Payload)
	}
	w.expectNothing(1500 * time.Millisecond) // once: not again when the session is swept
}

// DISCONNECT with reason 0x04 "disconnect with will message" publishes the
// will at once; a normal DISCONNECT (0x00) discards it ([MQTT5-3.14.4-3]).
func TestV5DisconnectWithWill(t *testing.T) {
	tb := startBroker(t, nil)
	w := v5WillWatcher(t, tb.addr, "v5/will/dw")
	c := v5WillConnect(t, tb.addr, "v5-dw", "v5/will/dw", 0, 0)
	c.send(&packets.Disconnect{ReasonCode: packets.DisconnectWithWill})
	c.expectClosed(2 * time.Second)
	m := w.expectPublish(2 * time.Second)
	if string(m.Payload) != "gone:v5-dw" {
		t.Fatalf("will %q", m.Payload)
	}
	w.ack(m)

	c = v5WillConnect(t, tb.addr, "v5-dn", "v5/will/dw", 0, 0)
	c.send(&packets.Disconnect{ReasonCode: packets.NormalDisconnection})
	c.expectClosed(2 * time.Second)
	w.expectNothing(400 * time.Millisecond)
}

// A session taken over by a new connection (Clean Start 0) is a reconnect:
// a will with a delay is not published ([MQTT5-3.1.3-9]); one without a delay
// is, as for any connection that ends without DISCONNECT.
func TestV5WillOnTakeover(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	w := v5WillWatcher(t, tb.addr, "v5/will/takeover/#")

	delayed := v5WillConnect(t, tb.addr, "v5-wt-delayed", "v5/will/takeover/delayed", 1, 60)
	mustConnectV5(t, tb.addr, "v5-wt-delayed", false, 60)
	delayed.expectDisconnect(packets.SessionTakenOver)

	now := v5WillConnect(t, tb.addr, "v5-wt-now", "v5/will/takeover/now", 0, 60)
	mustConnectV5(t, tb.addr, "v5-wt-now", false, 60)
	now.expectDisconnect(packets.SessionTakenOver)
	m := w.expectPublish(2 * time.Second)
	if m.Topic != "v5/will/takeover/now" {
		t.Fatalf("will %s, want v5/will/takeover/now", m.Topic)
	}
	w.ack(m)
	w.expectNothing(1500 * time.Millisecond) // past the delayed will's 1 s
}

package mqtt

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// A paho client with CleanSession(false) subscribes at QoS 1 and goes away;
// what is published meanwhile arrives when a new paho client with the same
// id connects, without subscribing again, and its CONNACK says session
// present ([MQTT-3.2.2-2]).
func TestPahoPersistentSession(t *testing.T) {
	tb := startBroker(t, nil)
	url := "tcp://" + tb.addr
	first, present := pahoConnect(t, url, "paho-persist", func(o *paho.ClientOptions) { o.SetCleanSession(false) })
	if present {
		t.Fatal("first connect reported session present")
	}
	waitToken(t, "subscribe", first.Subscribe("pp/#", 1, nil))
	first.Disconnect(250)
	waitFor(t, "session offline", func() bool { return tb.Stats().ClientsPersisted == 1 })

	pub, _ := pahoConnect(t, url, "paho-persist-pub", nil)
	const n = 5
	for i := range n {
		waitToken(t, "publish", pub.Publish(fmt.Sprintf("pp/%d", i), 1, false, strconv.Itoa(i)))
	}
	waitFor(t, "queued", func() bool { return tb.Stats().Queued == n })

	var mu sync.Mutex
	var got []paho.Message
	all := make(chan struct{})
	_, present = pahoConnect(t, url, "paho-persist", func(o *paho.ClientOptions) {
		o.SetCleanSession(false).SetOrderMatters(true).
			SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, m)
				if len(got) == n {
					close(all)
				}
			})
	})
	if !present {
		t.Fatal("reconnect with CleanSession(false): SessionPresent() = false [MQTT-3.2.2-2]")
	}
	select {
	case <-all:
	case <-time.After(5 * time.Second):
		mu.Lock()
		t.Fatalf("got %d of %d queued messages", len(got), n)
	}
	mu.Lock()
	for i, m := range got {
		if m.Topic() != fmt.Sprintf("pp/%d", i) || string(m.Payload()) != strconv.Itoa(i) || m.Qos() != 1 {
			t.Errorf("message %d: %s %q QoS %d", i, m.Topic(), m.Payload(), m.Qos())
		}
	}
	mu.Unlock()
	waitFor(t, "acknowledged", func() bool { st := tb.Stats(); return st.Queued == 0 && st.Inflight == 0 })
}

// [MQTT-3.1.2-6] a CONNECT with CleanSession=1 discards the previous
// persistent session of that id: its queued messages are not delivered and
// its subscriptions are gone; and the clean session itself does not outlive
// its connection, so a later CleanSession=0 connect starts fresh.
func TestCleanSessionDiscardsPrevious(t *testing.T) {
	tb := startBroker(t, nil)
	c := dialRaw(t, tb.addr)
	c.mustConnect("cs", false)
	c.subscribe(1, "cs/#", 1)
	c.disconnect()
	waitFor(t, "offline", func() bool { return tb.Stats().ClientsPersisted == 1 })

	pub := dialRaw(t, tb.addr)
	pub.mustConnect("cs-pub", true)
	for i := range 3 {
		pub.send(&packets.Publish{Topic: "cs/x", Payload: []byte{'q', byte('0' + i)}, QoS: 1, PacketID: uint16(i + 1)})
		pub.expect(packets.PUBACK, uint16(i+1))
	}
	if st := tb.Stats(); st.Queued != 3 || st.Subscriptions != 1 {
		t.Fatalf("before: queued %d subscriptions %d", st.Queued, st.Subscriptions)
	}

	c2 := dialRaw(t, tb.addr)
	if ack := c2.mustConnect("cs", true); ack.SessionPresent {
		t.Fatal("clean session reported session present [MQTT-3.2.2-1]")
	}
	c2.expectNothing(200 * time.Millisecond) // the queued messages are gone
	if st := tb.Stats(); st.Queued != 0 || st.Subscriptions != 0 {
		t.Fatalf("after clean connect: queued %d subscriptions %d, want 0 and 0", st.Queued, st.Subscriptions)
	}
	pub.send(&packets.Publish{Topic: "cs/x", Payload: []byte("live"), QoS: 1, PacketID: 9})
	pub.expect(packets.PUBACK, 9)
	c2.expectNothing(200 * time.Millisecond) // and so is the subscription

	// The clean session ends with its connection.
	c2.subscribe(2, "cs/#", 1)
	c2.disconnect()
	waitFor(t, "clean session gone", func() bool { return tb.Stats().ClientsConnected == 1 })
	pub.send(&packets.Publish{Topic: "cs/x", Payload: []byte("while away"), QoS: 1, PacketID: 10})
	pub.expect(packets.PUBACK, 10)
	c3 := dialRaw(t, tb.addr)
	if ack := c3.mustConnect("cs", false); ack.SessionPresent {
		t.Fatal("a clean session survived its connection")
	}
	c3.expectNothing(200 * time.Millisecond)
	if st := tb.Stats(); st.Queued != 0 || st.Subscriptions != 0 {
		t.Fatalf("after persistent reconnect: queued %d subscriptions %d", st.Queued, st.Subscriptions)
	}
}

// With Limits.SessionExpiry an offline persistent session is removed by the
// housekeeping sweep: a reconnect then gets session present 0 and neither
// its subscription nor its queued message. A session whose client is online
// is never expired.
func TestSessionExpiry(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.SessionExpiry = 300 * time.Millisecond })
	online := dialRaw(t, tb.addr)
	online.mustConnect("exp-online", false)
	online.subscribe(1, "exp/#", 1)

	gone := dialRaw(t, tb.addr)
	gone.mustConnect("exp-offline", false)
	gone.subscribe(1, "exp/#", 1)
	gone.disconnect()
	// Offline first, so the wait for "expired" below cannot pass early.
	waitFor(t, "session offline", func() bool { return tb.Stats().ClientsPersisted == 1 })
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("exp-pub", true)
	pub.send(&packets.Publish{Topic: "exp/a", Payload: []byte("queued"), QoS: 1, PacketID: 1})
	pub.expect(packets.PUBACK, 1)
	m := online.expectPublish(2 * time.Second)
	online.send(&packets.Puback{PacketID: m.PacketID})

	waitFor(t, "offline session expired", func() bool { return tb.Stats().ClientsPersisted == 0 })
	if st := tb.Stats(); st.Queued != 0 || st.Subscriptions != 1 {
		t.Fatalf("after expiry: queued %d subscriptions %d, want 0 and 1", st.Queued, st.Subscriptions)
	}
	again := dialRaw(t, tb.addr)
	if ack := again.mustConnect("exp-offline", false); ack.SessionPresent {
		t.Fatal("expired session still present")
	}
	again.expectNothing(200 * time.Millisecond)

	// The online client's session, older than the expiry, is intact.
	pub.send(&packets.Publish{Topic: "exp/b", Payload: []byte("still"), QoS: 1, PacketID: 2})
	if m := online.expectPublish(2 * time.Second); string(m.Payload) != "still" {
		t.Fatalf("online session lost its subscription: %+v", m)
	}
	again.expectNothing(100 * time.Millisecond)
}

// A QoS 1 delivery left unacknowledged has its in-flight record written
// once held past the flusher's ticks (a resumed session resends it with the
// same packet id), and cleared by its PUBACK; one acknowledged within the
// hold leaves nothing. Two packet ids held in different ticks, the later
// one first acknowledged, exercise both generations of held records.
func TestHeldSentRecordsWrittenAndCleared(t *testing.T) {
	pb := startPersistent(t, nil)
	sub := dialRaw(t, pb.addr)
	sub.mustConnect("held-sub", false)
	sub.subscribe(1, "held/#", 1)
	pub := dialRaw(t, pb.addr)
	pub.mustConnect("held-pub", true)
	pub.publish1(1, "held/a", "first", false)
	first := sub.expectPublish(2 * time.Second)
	time.Sleep(sentDelay) // the second is held at least one tick later
	pub.publish1(2, "held/a", "second", false)
	second := sub.expectPublish(2 * time.Second)
	sub.ack(second)
	waitFor(t, "the unacknowledged delivery's record written", func() bool {
		recs, err := pb.st.Inflight("held-sub")
		return err == nil && len(recs) == 1 && recs[0].PacketID == first.PacketID && recs[0].State == 1
	})
	sub.ack(first)
	waitFor(t, "its record cleared", func() bool {
		recs, err := pb.st.Inflight("held-sub")
		return err == nil && len(recs) == 0
	})
	// Nothing else was written meanwhile: the second's record never was.
	time.Sleep(3 * sentDelay)
	if recs, err := pb.st.Inflight("held-sub"); err != nil || len(recs) != 0 {
		t.Fatalf("in-flight records left: %+v %v", recs, err)
	}
}

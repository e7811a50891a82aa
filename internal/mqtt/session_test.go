package mqtt

import (
	"sync"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// A persistent session keeps subscriptions and queues QoS 1/2 while offline;
// the reconnect gets session present and the queued messages, in order.
func TestPersistentSessionQueues(t *testing.T) {
	tb := startBroker(t, nil)
	c := dialRaw(t, tb.addr)
	if ack := c.mustConnect("persist", false); ack.SessionPresent {
		t.Fatal("first connect reported session present")
	}
	c.subscribe(1, "p/#", 2)
	c.send(&packets.Disconnect{})
	c.expectClosed(2 * time.Second)
	waitFor(t, "offline", func() bool { return tb.Stats().ClientsConnected == 0 })

	pub := dialRaw(t, tb.addr)
	pub.mustConnect("persist-pub", true)
	for i, q := range []byte{0, 1, 2} {
		pub.send(&packets.Publish{Topic: "p/x", Payload: []byte{'0' + byte(i)}, QoS: q, PacketID: uint16(i + 1)})
	}
	// QoS 1 → PUBACK, QoS 2 → PUBREC
	pub.read(time.Second)
	pub.read(time.Second)
	waitFor(t, "queued", func() bool { return tb.Stats().Queued == 2 })

	c2 := dialRaw(t, tb.addr)
	if ack := c2.mustConnect("persist", false); !ack.SessionPresent {
		t.Fatal("reconnect without session present [MQTT-3.2.2-2]")
	}
	m1 := c2.expectPublish(2 * time.Second)
	m2 := c2.expectPublish(2 * time.Second)
	if string(m1.Payload) != "1" || m1.QoS != 1 || string(m2.Payload) != "2" || m2.QoS != 2 {
		t.Fatalf("queued messages %+v %+v (QoS 0 is not queued for offline sessions)", m1, m2)
	}
	c2.send(&packets.Puback{PacketID: m1.PacketID})
	c2.send(&packets.Pubrec{PacketID: m2.PacketID})
	if rel, ok := c2.read(time.Second).(*packets.Pubrel); !ok || rel.PacketID != m2.PacketID {
		t.Fatalf("want PUBREL %d", m2.PacketID)
	}
	c2.send(&packets.Pubcomp{PacketID: m2.PacketID})
	waitFor(t, "acked", func() bool { st := tb.Stats(); return st.Inflight == 0 && st.Queued == 0 })

	// A clean session discards it.
	c2.send(&packets.Disconnect{})
	c3 := dialRaw(t, tb.addr)
	if ack := c3.mustConnect("persist", true); ack.SessionPresent {
		t.Fatal("clean session reported session present")
	}
}

// Unacknowledged messages are resent with DUP when the session resumes.
func TestInflightResentWithDup(t *testing.T) {
	tb := startBroker(t, nil)
	c := dialRaw(t, tb.addr)
	c.mustConnect("dup", false)
	c.subscribe(1, "d", 1)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("dup-pub", true)
	pub.send(&packets.Publish{Topic: "d", Payload: []byte("x"), QoS: 1, PacketID: 9})
	first := c.expectPublish(2 * time.Second)
	if first.Dup {
		t.Fatal("first delivery has DUP")
	}
	c.conn.Close() // no PUBACK

	c2 := dialRaw(t, tb.addr)
	c2.mustConnect("dup", false)
	again := c2.expectPublish(2 * time.Second)
	if !again.Dup || again.PacketID != first.PacketID || string(again.Payload) != "x" {
		t.Fatalf("resend %+v, want DUP with id %d", again, first.PacketID)
	}
}

// A second connection with the same client id closes the first, whose will
// is published; the new connection keeps working.
func TestTakeover(t *testing.T) {
	tb := startBroker(t, nil)
	watch := dialRaw(t, tb.addr)
	watch.mustConnect("watch", true)
	watch.subscribe(1, "tk/#", 0)

	old := dialRaw(t, tb.addr)
	old.send(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 4, ClientID: "same", CleanStart: true,
		WillFlag: true, WillTopic: "tk/will", WillPayload: []byte("old gone")})
	old.read(time.Second)

	nw := dialRaw(t, tb.addr)
	nw.mustConnect("same", true)
	old.expectClosed(2 * time.Second) // [MQTT-3.1.4-2]
	if m := watch.expectPublish(2 * time.Second); m.Topic != "tk/will" {
		t.Fatalf("got %+v, want the old connection's will", m)
	}
	nw.send(&packets.Pingreq{})
	if _, ok := nw.read(time.Second).(*packets.Pingresp); !ok {
		t.Fatal("new connection not served")
	}
	waitFor(t, "one connection", func() bool { return tb.Stats().ClientsConnected == 2 })
	if tb.Stats().Takeovers != 1 {
		t.Fatalf("takeovers = %d", tb.Stats().Takeovers)
	}
}

// [MQTT-3.1.2-24] no packet within 1.5 × keep alive closes the connection
// and publishes the will; PINGREQ keeps it alive.
func TestKeepAlive(t *testing.T) {
	tb := startBroker(t, nil)
	watch := dialRaw(t, tb.addr)
	watch.mustConnect("ka-watch", true)
	watch.subscribe(1, "ka/#", 0)

	alive := dialRaw(t, tb.addr)
	if ack := alive.connect("ka-alive", true, 1); ack.ReasonCode != 0 {
		t.Fatal("refused")
	}
	silent := dialRaw(t, tb.addr)
	silent.send(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 4, ClientID: "ka-silent", CleanStart: true, KeepAlive: 1,
		WillFlag: true, WillTopic: "ka/silent", WillPayload: []byte("timeout")})
	silent.read(5 * time.Second)

	// 2 s of pings, longer than 1.5 × 1 s. One every 0.1 s leaves the
	// alive client well inside its 1.5 s however late a loaded machine
	// runs the loop, where at 0.5 s a stall of 1 s would cut it.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		alive.send(&packets.Pingreq{})
		if _, ok := alive.read(5 * time.Second).(*packets.Pingresp); !ok {
			t.Fatal("no PINGRESP")
		}
		time.Sleep(100 * time.Millisecond)
	}
	silent.expectClosed(3 * time.Second)
	if m := watch.expectPublish(2 * time.Second); m.Topic != "ka/silent" {
		t.Fatalf("got %+v", m)
	}
	if tb.Stats().KeepAliveExpired != 1 {
		t.Fatalf("keep-alive expiries = %d, want 1", tb.Stats().KeepAliveExpired)
	}
}

// A storm of connections with one client id: each takes the session over
// from the one before, often right after that one was accepted. Every
// accepted connection still receives its CONNACK before it is closed.
func TestTakeoverStormEveryConnectionGetsConnack(t *testing.T) {
	tb := startBroker(t, nil)
	const n = 60
	conns := make([]*rawClient, n)
	for i := range conns {
		conns[i] = dialRaw(t, tb.addr)
	}
	connect, _ := (&packets.Connect{ProtocolVersion: packets.V311, ClientID: "storm", CleanStart: true, KeepAlive: 30}).Append(nil, packets.V311)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() { defer wg.Done(); c.write(connect) }()
	}
	wg.Wait()
	for i, c := range conns {
		p, err := c.tryRead(5 * time.Second)
		if ack, ok := p.(*packets.Connack); err != nil || !ok || ack.ReasonCode != 0 {
			t.Fatalf("connection %d: got %v, %v; want CONNACK 0 before any close", i, p, err)
		}
	}
}

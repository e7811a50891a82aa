package mqtt

import (
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// A parked reader still enforces the keep-alive: a client that goes silent
// is closed after 1.5 times its keep alive ([MQTT-3.1.2-24]) and counted.
func TestParkedReaderKeepAliveExpires(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.readerLinger = 50 * time.Millisecond })
	c := dialRaw(t, tb.addr)
	if ack := c.connect("silent", true, 1); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", byte(ack.ReasonCode))
	}
	c.send(&packets.Pingreq{}) // busy once, then parks again
	c.expect(packets.PINGRESP, 0)
	c.expectClosed(10 * time.Second)
	waitFor(t, "keep-alive expiry counted", func() bool { return tb.Stats().KeepAliveExpired == 1 })
}

// The read deadline is armed lazily: it is not moved on every read but
// re-armed when it passes. A client that keeps pinging within its keep
// alive, parking between pings, is never cut, although the deadline first
// armed passes long before the test ends.
func TestParkedReaderKeepsActiveClient(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.readerLinger = 20 * time.Millisecond })
	c := dialRaw(t, tb.addr)
	if ack := c.connect("pinger", true, 2); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", byte(ack.ReasonCode))
	}
	end := time.Now().Add(4 * time.Second) // beyond the first deadline (3 s)
	for time.Now().Before(end) {
		c.send(&packets.Pingreq{})
		c.expect(packets.PINGRESP, 0)
		time.Sleep(200 * time.Millisecond) // pings well within 2 s; the reader parks in between
	}
	if st := tb.Stats(); st.KeepAliveExpired != 0 {
		t.Fatalf("an active client was cut for keep-alive: %+v", st)
	}
}

// A parked connection still gets what is published to it, still wakes to
// publish, and an operator's kick or the broker's shutdown ends it at once.
func TestParkedReaderServesAndEnds(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.readerLinger = 20 * time.Millisecond })
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("p-sub", true)
	sub.subscribe(1, "p/t", 1)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("p-pub", true)
	for i := range 3 {
		time.Sleep(100 * time.Millisecond) // both readers park
		pub.publish1(uint16(i+1), "p/t", "hello", false)
		m := sub.expectPublish(5 * time.Second)
		if string(m.Payload) != "hello" {
			t.Fatalf("got %q", m.Payload)
		}
		sub.ack(m)
	}
	time.Sleep(100 * time.Millisecond)
	if kicked, _ := tb.Kick("p-sub", false); !kicked {
		t.Fatal("kick: client not connected")
	}
	sub.expectClosed(5 * time.Second)
}

// A parked connection notices its peer going away (the session is
// detached at once), and is closed at once when a new connection takes its
// client id over.
func TestParkedReaderGoneAndTakenOver(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.readerLinger = 20 * time.Millisecond })
	gone := dialRaw(t, tb.addr)
	gone.mustConnect("p-gone", true)
	old := dialRaw(t, tb.addr)
	old.mustConnect("p-twice", true)
	waitFor(t, "both parked", func() bool { return parkedReaders(tb.Broker) == 2 })
	gone.conn.Close()
	waitFor(t, "the closed connection detached", func() bool { return tb.Stats().ClientsConnected == 1 })

	fresh := dialRaw(t, tb.addr)
	fresh.mustConnect("p-twice", true)
	old.expectClosed(5 * time.Second)
	fresh.send(&packets.Pingreq{})
	fresh.expect(packets.PINGRESP, 0)
}

package mqtt

import (
	"fmt"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// A writer goroutine started for a SUBACK lingers without the writer's
// role: the deliveries that follow are written by the publisher's reader
// (the role is free again once each is written), not handed to the writer
// for the rest of its linger. What no reader writes, the broker's own
// publish, hands the role back to the lingering writer, which sends it;
// and closing the connection ends the lingering writer (the broker's Close
// waits for it).
func TestLingeringWriterLeavesDeliveriesToReaders(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.writerLinger = time.Hour })
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("linger-sub", true)
	sub.subscribe(1, "linger/t", 1) // its SUBACK starts a writer
	var c *client
	roleFree := func() bool {
		s, ok := tb.store.Get("linger-sub")
		if !ok {
			return false
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		c = s.client
		return c != nil && !c.writing && len(c.out) == 0
	}
	waitFor(t, "the subscriber's writer to give its role back", roleFree)
	s := c.sess
	s.mu.Lock()
	lingering := c.lingering
	s.mu.Unlock()
	if !lingering {
		t.Fatal("the subscriber's writer exited within an hour's linger")
	}

	pub := dialRaw(t, tb.addr)
	pub.mustConnect("linger-pub", true)
	for i := range 20 {
		if ack := pub.publish1(uint16(i+1), "linger/t", fmt.Sprint(i), false); ack.ReasonCode != packets.Success {
			t.Fatalf("PUBACK %d: %v", i, ack.ReasonCode)
		}
		p := sub.expectPublish(5 * time.Second)
		if string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("delivery %d carries %q", i, p.Payload)
		}
		sub.ack(p)
	}
	waitFor(t, "the role to be free after the publisher's reader wrote", roleFree)

	if _, err := tb.Publish(PublishRequest{Topic: "linger/t", Payload: []byte("own"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if p := sub.expectPublish(5 * time.Second); string(p.Payload) != "own" {
		t.Fatalf("the broker's own publish arrived as %q", p.Payload)
	} else {
		sub.ack(p)
	}
	waitFor(t, "the handed-back writer to give its role back again", roleFree)
	s.mu.Lock()
	lingering = c.lingering
	s.mu.Unlock()
	if !lingering {
		t.Fatal("the writer handed the role exited instead of lingering")
	}
	sub.conn.Close()
	waitFor(t, "the subscriber's writer to exit with its connection", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return !c.lingering && !c.writing && s.client == nil
	})
}

// A publisher reaching more subscribers than its reader writes to itself
// (maxOwed) has the rest written by their writers: everyone gets every
// message, in order.
func TestFanOutPastOwedBound(t *testing.T) {
	tb := startBroker(t, nil)
	subs := make([]*rawClient, maxOwed+3)
	for i := range subs {
		subs[i] = dialRaw(t, tb.addr)
		subs[i].mustConnect(fmt.Sprintf("owed-sub-%d", i), true)
		subs[i].subscribe(1, "owed/t", 1)
	}
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("owed-pub", true)
	const n = 3
	for i := range n {
		pub.send(&packets.Publish{Topic: "owed/t", Payload: []byte(fmt.Sprint(i)), QoS: 1, PacketID: uint16(i + 1)})
	}
	for i := range n {
		pub.expect(packets.PUBACK, uint16(i+1))
	}
	for j, s := range subs {
		for i := range n {
			p := s.expectPublish(10 * time.Second)
			if string(p.Payload) != fmt.Sprint(i) {
				t.Fatalf("subscriber %d: delivery %d carries %q", j, i, p.Payload)
			}
			s.ack(p)
		}
	}
}

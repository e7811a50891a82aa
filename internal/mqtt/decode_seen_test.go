package mqtt

import (
	"fmt"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// TestDecodeSeenRefusesWhatDiffers: a connection's PUBLISH whose topic has
// the bytes of the last one validated skips the validation
// (Publish.DecodeSeen). A topic that differs in a single byte from that
// one, at the same length, must be validated all the same: a wildcard,
// U+0000, ill-formed UTF-8 and an encoded surrogate close the connection
// and reach nobody, and a valid neighbour is delivered under its own name.
func TestDecodeSeenRefusesWhatDiffers(t *testing.T) {
	tb := startBroker(t, nil)
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("ds-sub", true)
	sub.subscribe(1, "ds/#", 1)
	marker := dialRaw(t, tb.addr)
	marker.mustConnect("ds-marker", true)

	for i, bad := range []string{"ds/ab+", "ds/ab#", "ds/ab\x00", "ds/ab\xff", "ds/\xed\xa0\x80", "ds/+/c"} {
		pub := dialRaw(t, tb.addr)
		pub.mustConnect(fmt.Sprint("ds-pub-", i), true)
		if len(bad) != len("ds/abc") {
			t.Fatalf("%q: not the length of the valid topic", bad)
		}
		// Twice the same topic (the second from what was seen), then its
		// neighbour, valid, then the first again.
		for j, topic := range []string{"ds/abc", "ds/abc", "ds/abd", "ds/abc"} {
			pub.publish1(uint16(j+1), topic, fmt.Sprint(i, j), false)
			if p := sub.expectPublish(2 * time.Second); p.Topic != topic || string(p.Payload) != fmt.Sprint(i, j) {
				t.Fatalf("%d.%d: delivered %q %q, want %q %q", i, j, p.Topic, p.Payload, topic, fmt.Sprint(i, j))
			} else {
				sub.ack(p)
			}
		}
		pub.send(&packets.Publish{Topic: bad, QoS: 1, PacketID: 9, Payload: []byte("bad")})
		pub.expectClosed(2 * time.Second)
		// What sub receives next is the marker, not the refused message.
		marker.publish1(uint16(i+1), "ds/marker", "m", false)
		if got := sub.nextPayload(2 * time.Second); got != "m" {
			t.Fatalf("%q after %q: sub got %q, want the marker", bad, "ds/abc", got)
		}
	}
}

// TestDecodeSeenKeepsAliasesApart: an MQTT 5 PUBLISH by alias alone has no
// topic name to compare with the last one validated, and resolves to its
// alias's topic, not to the last topic published; a topic that matches the
// last one seen, sent with an alias, sets that alias; and a wildcard topic
// after them is still malformed.
func TestDecodeSeenKeepsAliasesApart(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.TopicAliasMaximum = 3 })
	sub, _ := mustConnectV5(t, tb.addr, "dsa-sub", true, 0)
	sub.subscribeOpts(1, 0, packets.Subscription{Filter: "dsa/#", QoS: 1})
	pub, _ := mustConnectV5(t, tb.addr, "dsa-pub", true, 0)
	plain := func(topic string, pid uint16, payload string) *packets.Publish {
		return &packets.Publish{Topic: topic, QoS: 1, PacketID: pid, Payload: []byte(payload)}
	}
	for i, step := range []struct {
		p    *packets.Publish
		want string
	}{
		{v5AliasPub("dsa/a", 1, 0, ""), "dsa/a"},
		{v5AliasPub("dsa/b", 2, 0, ""), "dsa/b"},
		{v5AliasPub("", 1, 0, ""), "dsa/a"}, // not the last topic seen
		{plain("dsa/b", 0, ""), "dsa/b"},    // the last seen
		{v5AliasPub("", 2, 0, ""), "dsa/b"},
		{v5AliasPub("dsa/b", 3, 0, ""), "dsa/b"}, // seen, and sets alias 3
		{v5AliasPub("", 3, 0, ""), "dsa/b"},
		{v5AliasPub("", 1, 0, ""), "dsa/a"},
	} {
		pid := uint16(i + 1)
		step.p.PacketID, step.p.Payload = pid, []byte(fmt.Sprint(i))
		pub.send(step.p)
		pub.expect(packets.PUBACK, pid)
		m := sub.expectPublish(2 * time.Second)
		if m.Topic != step.want || string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("step %d: delivered %q %q, want %q", i, m.Topic, m.Payload, step.want)
		}
		sub.ack(m)
	}
	pub.send(v5AliasPub("dsa/+", 1, 20, "bad"))
	pub.expectDisconnect(packets.MalformedPacket)
	// What sub receives next is the marker, not the refused message.
	marker, _ := mustConnectV5(t, tb.addr, "dsa-marker", true, 0)
	marker.send(plain("dsa/marker", 1, "m"))
	marker.expect(packets.PUBACK, 1)
	if m := sub.expectPublish(2 * time.Second); string(m.Payload) != "m" {
		t.Fatalf("sub got %q %q after the malformed publish, want the marker", m.Topic, m.Payload)
	}
}

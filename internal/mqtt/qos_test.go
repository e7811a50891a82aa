package mqtt

import (
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Inbound QoS 2 is delivered exactly once: a PUBLISH resent with DUP and the
// same packet id before PUBREL is PUBREC'd again but not routed again
// ([MQTT-4.3.3-2], method B); once PUBREL/PUBCOMP completes the flow, the id
// starts a new message. PUBREL for an id the broker does not hold still gets
// PUBCOMP with that id ([MQTT-4.3.3-2] "MUST respond to a PUBREL packet by
// sending a PUBCOMP packet containing the same Packet Identifier").
func TestInboundQoS2ExactlyOnce(t *testing.T) {
	tb := startBroker(t, nil)
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("eo-sub", true)
	sub.subscribe(1, "eo/t", 0)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("eo-pub", true)

	pub.send(&packets.Publish{Topic: "eo/t", Payload: []byte("first"), QoS: 2, PacketID: 10})
	pub.expect(packets.PUBREC, 10)
	if m := sub.expectPublish(2 * time.Second); string(m.Payload) != "first" {
		t.Fatalf("got %q, want first", m.Payload)
	}

	// The resend (PUBREC lost, say) is acknowledged again, not routed again.
	pub.send(&packets.Publish{Topic: "eo/t", Payload: []byte("first"), QoS: 2, PacketID: 10, Dup: true})
	pub.expect(packets.PUBREC, 10)
	// A resend without DUP but with the same id is the same message too.
	pub.send(&packets.Publish{Topic: "eo/t", Payload: []byte("first"), QoS: 2, PacketID: 10})
	pub.expect(packets.PUBREC, 10)
	// Messages from one publisher are forwarded in order ([MQTT-4.6.0-6]):
	// the marker is the next thing the subscriber sees only if the resends
	// were not delivered.
	pub.send(&packets.Publish{Topic: "eo/t", Payload: []byte("marker-1")})
	if m := sub.expectPublish(2 * time.Second); string(m.Payload) != "marker-1" {
		t.Fatalf("QoS 2 resend delivered twice: got %q, want marker-1", m.Payload)
	}

	pub.send(&packets.Pubrel{PacketID: 10})
	pub.expect(packets.PUBCOMP, 10)

	// The id is free again: the same id now carries a new message.
	pub.send(&packets.Publish{Topic: "eo/t", Payload: []byte("second"), QoS: 2, PacketID: 10})
	pub.expect(packets.PUBREC, 10)
	if m := sub.expectPublish(2 * time.Second); string(m.Payload) != "second" {
		t.Fatalf("got %q, want second (a new message on a released id)", m.Payload)
	}
	pub.send(&packets.Pubrel{PacketID: 10})
	pub.expect(packets.PUBCOMP, 10)

	// PUBREL retried after completion, and PUBREL for an id never used.
	pub.send(&packets.Pubrel{PacketID: 10})
	pub.expect(packets.PUBCOMP, 10)
	pub.send(&packets.Pubrel{PacketID: 999})
	pub.expect(packets.PUBCOMP, 999)

	pub.send(&packets.Publish{Topic: "eo/t", Payload: []byte("marker-2")})
	if m := sub.expectPublish(2 * time.Second); string(m.Payload) != "marker-2" {
		t.Fatalf("got %q, want marker-2", m.Payload)
	}
	sub.expectNothing(100 * time.Millisecond)
	if st := tb.Stats(); st.Malformed != 0 {
		t.Fatalf("malformed = %d: a valid QoS 2 exchange was treated as a violation", st.Malformed)
	}
}

// The inbound QoS 2 state belongs to the session: a persistent publisher that
// reconnects before PUBREL and resends with DUP is not delivered twice
// ([MQTT-4.1.0-1] the session holds QoS 2 messages received but not
// completely acknowledged; [MQTT-4.3.3-2]).
func TestInboundQoS2ExactlyOnceAcrossReconnect(t *testing.T) {
	tb := startBroker(t, nil)
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("eor-sub", true)
	sub.subscribe(1, "eor/t", 0)

	pub := dialRaw(t, tb.addr)
	pub.mustConnect("eor-pub", false)
	pub.send(&packets.Publish{Topic: "eor/t", Payload: []byte("once"), QoS: 2, PacketID: 7})
	pub.expect(packets.PUBREC, 7)
	if m := sub.expectPublish(2 * time.Second); string(m.Payload) != "once" {
		t.Fatalf("got %q", m.Payload)
	}
	pub.conn.Close() // lost before PUBREL
	waitFor(t, "publisher offline", func() bool { return tb.Stats().ClientsPersisted == 1 })

	pub2 := dialRaw(t, tb.addr)
	if ack := pub2.mustConnect("eor-pub", false); !ack.SessionPresent {
		t.Fatal("session not resumed")
	}
	pub2.send(&packets.Publish{Topic: "eor/t", Payload: []byte("once"), QoS: 2, PacketID: 7, Dup: true})
	pub2.expect(packets.PUBREC, 7)
	pub2.send(&packets.Publish{Topic: "eor/t", Payload: []byte("marker")})
	if m := sub.expectPublish(2 * time.Second); string(m.Payload) != "marker" {
		t.Fatalf("QoS 2 message delivered again after the publisher reconnected: got %q", m.Payload)
	}
	pub2.send(&packets.Pubrel{PacketID: 7})
	pub2.expect(packets.PUBCOMP, 7)
}

// MaxInboundQoS2 bounds the packet ids awaiting PUBREL: a resend of a held id
// is fine at the bound, a new id beyond it closes the connection and is not
// routed.
func TestInboundQoS2Bound(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.MaxInboundQoS2 = 2 })
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("bound-sub", true)
	sub.subscribe(1, "b2", 0)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("bound-pub", true)
	for _, id := range []uint16{1, 2} {
		pub.send(&packets.Publish{Topic: "b2", Payload: []byte{byte('0' + id)}, QoS: 2, PacketID: id})
		pub.expect(packets.PUBREC, id)
		sub.expectPublish(2 * time.Second)
	}
	pub.send(&packets.Publish{Topic: "b2", Payload: []byte("1"), QoS: 2, PacketID: 1, Dup: true})
	pub.expect(packets.PUBREC, 1)

	pub.send(&packets.Publish{Topic: "b2", Payload: []byte("3"), QoS: 2, PacketID: 3})
	pub.expectClosed(2 * time.Second)
	sub.expectNothing(100 * time.Millisecond)
	if st := tb.Stats(); st.Malformed != 1 {
		t.Fatalf("malformed = %d, want 1", st.Malformed)
	}
}

// Outbound QoS 2 resumes where it stopped ([MQTT-4.4.0-1]): a message the
// client had not PUBREC'd is resent as PUBLISH with DUP; one it had
// PUBREC'd gets only PUBREL again, never a second PUBLISH
// ([MQTT-4.3.3-1]: after PUBREC the message is no longer sent).
func TestOutboundQoS2Resume(t *testing.T) {
	tb := startBroker(t, nil)
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("o2-sub", false)
	sub.subscribe(1, "o2", 2)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("o2-pub", true)
	for i := range 2 {
		id := uint16(i + 1)
		pub.send(&packets.Publish{Topic: "o2", Payload: []byte{byte('a' + i)}, QoS: 2, PacketID: id})
		pub.expect(packets.PUBREC, id)
		pub.send(&packets.Pubrel{PacketID: id})
		pub.expect(packets.PUBCOMP, id)
	}
	m0 := sub.expectPublish(2 * time.Second)
	m1 := sub.expectPublish(2 * time.Second)
	if string(m0.Payload) != "a" || string(m1.Payload) != "b" || m0.QoS != 2 || m1.QoS != 2 {
		t.Fatalf("got %+v %+v", m0, m1)
	}
	sub.send(&packets.Pubrec{PacketID: m0.PacketID})
	sub.expect(packets.PUBREL, m0.PacketID)
	sub.conn.Close() // no PUBCOMP for m0, nothing at all for m1

	sub2 := dialRaw(t, tb.addr)
	if ack := sub2.mustConnect("o2-sub", false); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	sub2.expect(packets.PUBREL, m0.PacketID)
	again := sub2.expectPublish(2 * time.Second)
	if again.PacketID != m1.PacketID || !again.Dup || string(again.Payload) != "b" || again.QoS != 2 {
		t.Fatalf("resend %+v, want DUP PUBLISH id %d", again, m1.PacketID)
	}
	sub2.expectNothing(100 * time.Millisecond)
	sub2.send(&packets.Pubcomp{PacketID: m0.PacketID})
	sub2.send(&packets.Pubrec{PacketID: again.PacketID})
	sub2.expect(packets.PUBREL, again.PacketID)
	sub2.send(&packets.Pubcomp{PacketID: again.PacketID})
	waitFor(t, "flows complete", func() bool { return tb.Stats().Inflight == 0 })
}

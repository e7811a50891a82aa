package mqtt

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// The owned copy of a routed message is one allocation (Message, topic and
// payload together) up to maxBoxed bytes, and holds exactly what was
// routed, whatever the size.
func TestRoutedMessageOneAllocation(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 17, 64, 100, 500, 1000, maxBoxed - 10, maxBoxed - 3, maxBoxed, 5000} {
		topic := "a/b"
		payload := bytes.Repeat([]byte{'x'}, n)
		for i := range payload {
			payload[i] = byte(i)
		}
		r := routed{topic: topic, payload: payload, qos: 1, from: "p"}
		m := r.message()
		if m.Topic != topic || !bytes.Equal(m.Payload, payload) || m.QoS != 1 || m.From != "p" || m.Created.IsZero() {
			t.Fatalf("%d bytes: copy %q %v qos %d from %q", n, m.Topic, len(m.Payload), m.QoS, m.From)
		}
		if cap(m.Payload) != len(m.Payload) {
			t.Fatalf("%d bytes: payload capacity %d, want %d (an append would write into the box)", n, cap(m.Payload), len(m.Payload))
		}
		if n > 0 {
			payload[0] ^= 0xff // the copy does not alias the routed bytes
			if m.Payload[0] == payload[0] {
				t.Fatalf("%d bytes: the copy aliases the routed payload", n)
			}
		}
		if len(topic)+n > maxBoxed || raceEnabled {
			continue
		}
		allocs := testing.AllocsPerRun(100, func() {
			r := routed{topic: topic, payload: payload, qos: 1}
			r.message()
		})
		if allocs != 1 {
			t.Errorf("%d bytes: %v allocations per copy, want 1", n, allocs)
		}
	}
}

// A QoS 1 message routed to clean sessions keeps no copy in their windows
// (they are never resent) and so allocates nothing; one to a persistent
// session is copied, once, and resent from its window.
func TestCleanWindowKeepsNoCopy(t *testing.T) {
	_, pub, subs := benchBroker(t, 2, "t/1", 1)
	subs[1].sess.clean = false
	pk := packets.Publish{Topic: "t/1", Payload: []byte(strings.Repeat("p", 40)), QoS: 1, PacketID: 1}
	raw, _ := pk.Append(nil, packets.V311)
	fh, n, _ := packets.DecodeFixedHeader(raw)
	if err := pub.handle(fh, raw[n:]); err != nil {
		t.Fatal(err)
	}
	clean, kept := &subs[0].sess.inflight, &subs[1].sess.inflight
	if clean.live != 1 || kept.live != 1 {
		t.Fatalf("windows hold %d and %d, want 1 each", clean.live, kept.live)
	}
	if m := clean.ents[clean.head].d.msg; m != nil {
		t.Errorf("the clean session's window holds a copy of %q", m.Topic)
	}
	if m := kept.ents[kept.head].d.msg; m == nil || m.Topic != "t/1" || string(m.Payload) != string(pk.Payload) {
		t.Errorf("the persistent session's window holds %v, want the message", m)
	}
	for _, c := range subs {
		if !bytes.Contains(c.out, pk.Payload) {
			t.Errorf("%s: no PUBLISH written", c.info.ClientID)
		}
	}
	subs[1].sess.clean = true
	if raceEnabled {
		return
	}
	drain(subs)
	pub.out = pub.out[:0]
	allocs := testing.AllocsPerRun(200, func() {
		if err := pub.handle(fh, raw[n:]); err != nil {
			t.Fatal(err)
		}
		pub.out = pub.out[:0]
		drain(subs)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per QoS 1 message to clean sessions, want 0", allocs)
	}
}

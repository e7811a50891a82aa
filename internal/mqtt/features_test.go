package mqtt

import (
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Switched-off capabilities are announced to MQTT 5 clients in CONNACK and
// enforced with their reason codes; 3.1.1 clients get 0x80 or are closed.
func TestFeaturesSwitchedOff(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Features = Features{CapQoS: true, MaximumQoS: 1, NoRetain: true, NoWildcardSubs: true,
			NoSharedSubs: true, NoSubscriptionIDs: true}
	})
	v5 := func(id string) (*rawClient, *packets.Connack) {
		c := dialRaw(t, tb.addr)
		c.v = packets.V5
		return c, c.connect(id, true, 0)
	}
	c, ack := v5("feat-5")
	p := &ack.Props
	for _, id := range []packets.PropID{packets.PropMaximumQoS, packets.PropRetainAvailable,
		packets.PropWildcardSubAvailable, packets.PropSharedSubAvailable, packets.PropSubIDAvailable} {
		if !p.Has(id) {
			t.Errorf("CONNACK lacks property %#x", byte(id))
		}
	}
	if p.MaximumQoS != 1 || p.RetainAvailable != 0 || p.WildcardSubAvailable != 0 || p.SharedSubAvailable != 0 || p.SubIDAvailable != 0 {
		t.Fatalf("CONNACK capabilities %+v", p)
	}
	c.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{
		{Filter: "f/+", QoS: 1}, {Filter: "$share/g/f", QoS: 1}, {Filter: "f/x", QoS: 2}}})
	sa, ok := c.read(time.Second).(*packets.Suback)
	if !ok {
		t.Fatal("no SUBACK")
	}
	want := []packets.ReasonCode{packets.WildcardSubsNotSupported, packets.SharedSubsNotSupported, packets.GrantedQoS1}
	for i, w := range want {
		if sa.ReasonCodes[i] != w {
			t.Fatalf("SUBACK codes %v, want %v", sa.ReasonCodes, want)
		}
	}

	for _, tc := range []struct {
		name string
		pk   packets.Packet
		code packets.ReasonCode
	}{
		{"QoS above maximum", &packets.Publish{Topic: "f/x", QoS: 2, PacketID: 1}, packets.QoSNotSupported},
		{"retain", &packets.Publish{Topic: "f/x", Retain: true}, packets.RetainNotSupported},
		{"subscription identifier", &packets.Subscribe{PacketID: 2, Subscriptions: []packets.Subscription{{Filter: "f/y"}},
			Props: packets.Properties{SubscriptionIDs: []uint32{7}}}, packets.SubIDsNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := v5("feat-" + tc.name)
			c.send(tc.pk)
			d, ok := c.read(time.Second).(*packets.Disconnect)
			if !ok || d.ReasonCode != tc.code {
				t.Fatalf("got %+v, want DISCONNECT %v", d, tc.code)
			}
			c.expectClosed(time.Second)
		})
	}

	// 3.1.1: refused filters get 0x80; a QoS the server does not offer
	// closes the connection (3.1.1 has no way to say why).
	v3 := dialRaw(t, tb.addr)
	v3.mustConnect("feat-3", true)
	if codes := v3.subscribe(1, "f/#", 0); codes[0] != packets.SubackFailure {
		t.Fatalf("3.1.1 wildcard subscribe: %v", codes)
	}
	if codes := v3.subscribe(2, "f/z", 2); codes[0] != 1 {
		t.Fatalf("3.1.1 granted QoS %v, want 1", codes)
	}
	v3.send(&packets.Publish{Topic: "f/z", QoS: 2, PacketID: 3})
	v3.expectClosed(time.Second)
}

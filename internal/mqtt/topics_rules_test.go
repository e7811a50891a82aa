package mqtt

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// [MQTT-4.7.2-1] filters starting with a wildcard do not match topics
// starting with '$': "#", "+/#" and "+/bar" see neither the broker's $SYS
// topics nor a client's "$foo/bar", while "$foo/#" does get "$foo/bar".
func TestDollarTopicsNotMatchedByLeadingWildcards(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.SysInterval = 50 * time.Millisecond })
	wild := map[string]*rawClient{}
	for i, f := range []string{"#", "+/#", "+/bar"} {
		c := dialRaw(t, tb.addr)
		c.mustConnect("wild-"+string(rune('a'+i)), true)
		if codes := c.subscribe(1, f, 0); codes[0] != 0 {
			t.Fatalf("subscribe %q: %v", f, codes)
		}
		wild[f] = c
	}
	dollar := dialRaw(t, tb.addr)
	dollar.mustConnect("dollar-sub", true)
	dollar.subscribe(1, "$foo/#", 0)
	sys := dialRaw(t, tb.addr)
	sys.mustConnect("sys-sub", true)
	sys.subscribe(1, "$SYS/#", 0)
	// The broker's $SYS topics exist and reach an explicit $SYS subscriber...
	if m := sys.expectPublish(2 * time.Second); !strings.HasPrefix(m.Topic, "$SYS/") {
		t.Fatalf("$SYS/# got %q", m.Topic)
	}

	pub := dialRaw(t, tb.addr)
	pub.mustConnect("dollar-pub", true)
	pub.send(&packets.Publish{Topic: "$foo/bar", Payload: []byte("dollar")})
	pub.send(&packets.Publish{Topic: "foo/bar", Payload: []byte("plain")})

	if m := dollar.expectPublish(2 * time.Second); m.Topic != "$foo/bar" || string(m.Payload) != "dollar" {
		t.Fatalf("$foo/# got %+v", m)
	}
	// ...but not the wildcard ones: their first message is the plain one,
	// and in the time several $SYS rounds go by nothing else arrives.
	for f, c := range wild {
		if m := c.expectPublish(2 * time.Second); m.Topic != "foo/bar" {
			t.Fatalf("%q received %q [MQTT-4.7.2-1]", f, m.Topic)
		}
	}
	for f, c := range wild {
		if p, err := c.tryRead(300 * time.Millisecond); err == nil {
			t.Fatalf("%q received %v %+v [MQTT-4.7.2-1]", f, p.Type(), p)
		}
	}
}

// A client's PUBLISH to $SYS/... is acknowledged (3.1.1 cannot refuse it),
// not routed, not retained, and counted in DroppedSys.
func TestClientPublishToSYSDropped(t *testing.T) {
	tb := startBroker(t, nil) // $SYS publishing off: anything on $SYS/# would be the client's
	sys := dialRaw(t, tb.addr)
	sys.mustConnect("sysd-sub", true)
	sys.subscribe(1, "$SYS/#", 1)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("sysd-pub", true)

	pub.send(&packets.Publish{Topic: "$SYS/x", Payload: []byte("forged"), QoS: 1, PacketID: 5, Retain: true})
	pub.expect(packets.PUBACK, 5)
	pub.send(&packets.Publish{Topic: "$SYS/broker/version", Payload: []byte("forged"), QoS: 2, PacketID: 6})
	pub.expect(packets.PUBREC, 6)
	pub.send(&packets.Pubrel{PacketID: 6})
	pub.expect(packets.PUBCOMP, 6)
	sys.expectNothing(200 * time.Millisecond)
	st := tb.Stats()
	if st.DroppedSys != 2 {
		t.Fatalf("DroppedSys = %d, want 2", st.DroppedSys)
	}
	if st.Retained != 0 {
		t.Fatalf("retained = %d: a client's $SYS publish was stored", st.Retained)
	}
	late := dialRaw(t, tb.addr)
	late.mustConnect("sysd-late", true)
	late.subscribe(1, "$SYS/#", 0)
	late.expectNothing(100 * time.Millisecond)
}

// Only the $SYS level is the broker's: "$SYSTEM/x" is an ordinary $ topic
// like "$foo/bar", which the broker routes from clients.
func TestSYSPrefixIsWholeLevel(t *testing.T) {
	tb := startBroker(t, nil)
	sub := dialRaw(t, tb.addr)
	sub.mustConnect("systemx-sub", true)
	sub.subscribe(1, "$SYSTEM/#", 0)
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("systemx-pub", true)
	pub.send(&packets.Publish{Topic: "$SYSTEM/x", Payload: []byte("not sys")})
	m, err := sub.tryRead(2 * time.Second)
	if err != nil {
		t.Fatalf("a publish to $SYSTEM/x was not delivered to $SYSTEM/# (DroppedSys = %d): only $SYS/... is reserved", tb.Stats().DroppedSys)
	}
	if p, ok := m.(*packets.Publish); !ok || p.Topic != "$SYSTEM/x" {
		t.Fatalf("got %+v", m)
	}
}

// One SUBSCRIBE with valid and invalid filters: invalid ones ('#' not last
// [MQTT-4.7.1-2], '+' not a whole level [MQTT-4.7.1-3], empty
// [MQTT-4.7.3-1]) get 0x80 in their own slot, the valid ones are granted
// the QoS they asked for, in order ([MQTT-3.8.4-4], [MQTT-3.8.4-5]); and
// delivery uses min(publish QoS, granted QoS) ([MQTT-3.8.4-6]).
func TestSubscribePerFilterReturnCodes(t *testing.T) {
	tb := startBroker(t, nil)
	c := dialRaw(t, tb.addr)
	c.mustConnect("filters", true)
	subs := []packets.Subscription{
		{Filter: "x/+", QoS: 2},
		{Filter: "a/#/b", QoS: 1},
		{Filter: "a#", QoS: 0},
		{Filter: "y/#", QoS: 1},
		{Filter: "a/b+", QoS: 2},
		{Filter: "", QoS: 0},
		{Filter: "z", QoS: 0},
		{Filter: "+a/b", QoS: 1},
		{Filter: "#/", QoS: 1},
	}
	want := []packets.ReasonCode{2, 0x80, 0x80, 1, 0x80, 0x80, 0, 0x80, 0x80}
	codes := c.subscribeOpts(42, 0, subs...)
	if !slices.Equal(codes, want) {
		t.Fatalf("SUBACK codes %v, want %v", codes, want)
	}
	if st := tb.Stats(); st.Subscriptions != 3 {
		t.Fatalf("subscriptions = %d, want 3", st.Subscriptions)
	}

	pub := dialRaw(t, tb.addr)
	pub.mustConnect("filters-pub", true)
	var id uint16
	for _, tc := range []struct {
		topic   string
		pubQoS  byte
		wantQoS byte
	}{
		{"x/1", 2, 2},
		{"y/2/3", 2, 1},
		{"z", 1, 0},
		{"x/2", 1, 1},
	} {
		id++
		pub.send(&packets.Publish{Topic: tc.topic, Payload: []byte(tc.topic), QoS: tc.pubQoS, PacketID: id})
		m := c.expectPublish(2 * time.Second)
		if m.Topic != tc.topic || m.QoS != tc.wantQoS {
			t.Fatalf("publish %s at QoS %d: delivered %+v, want QoS %d", tc.topic, tc.pubQoS, m, tc.wantQoS)
		}
		switch m.QoS {
		case 1:
			c.send(&packets.Puback{PacketID: m.PacketID})
		case 2:
			c.send(&packets.Pubrec{PacketID: m.PacketID})
			c.expect(packets.PUBREL, m.PacketID)
			c.send(&packets.Pubcomp{PacketID: m.PacketID})
		}
	}
	// Topics only the rejected filters would have matched.
	pub.send(&packets.Publish{Topic: "a/x/b", Payload: []byte("no")})
	pub.send(&packets.Publish{Topic: "a/b+", Payload: []byte("no")})
	c.expectNothing(200 * time.Millisecond)
}

// [MQTT-3.8.3-4] a SUBSCRIBE asking for QoS 3 is malformed: the connection
// is closed and no SUBACK sent.
func TestSubscribeQoS3Closes(t *testing.T) {
	tb := startBroker(t, nil)
	c := dialRaw(t, tb.addr)
	c.mustConnect("qos3", true)
	c.write([]byte{0x82, 6, 0, 1, 0, 1, 'a', 3})
	c.expectClosed(2 * time.Second)
	if st := tb.Stats(); st.Subscriptions != 0 {
		t.Fatalf("subscriptions = %d", st.Subscriptions)
	}
}

// UNSUBSCRIBE stops delivery on that filter only ([MQTT-3.10.4-2]) and is
// answered with UNSUBACK carrying its packet id ([MQTT-3.10.4-4]), also when
// no filter matched a subscription ([MQTT-3.10.4-5]).
func TestUnsubscribe(t *testing.T) {
	tb := startBroker(t, nil)
	c := dialRaw(t, tb.addr)
	c.mustConnect("unsub", true)
	codes := c.subscribeOpts(1, 0,
		packets.Subscription{Filter: "u/a", QoS: 0},
		packets.Subscription{Filter: "v/+", QoS: 0})
	if !slices.Equal(codes, []packets.ReasonCode{0, 0}) {
		t.Fatalf("SUBACK %v", codes)
	}
	pub := dialRaw(t, tb.addr)
	pub.mustConnect("unsub-pub", true)
	pub.send(&packets.Publish{Topic: "u/a", Payload: []byte("1")})
	if m := c.expectPublish(2 * time.Second); m.Topic != "u/a" {
		t.Fatalf("got %+v", m)
	}

	c.send(&packets.Unsubscribe{PacketID: 77, Filters: []string{"u/a", "never/subscribed"}})
	c.expect(packets.UNSUBACK, 77)
	waitFor(t, "one subscription left", func() bool { return tb.Stats().Subscriptions == 1 })
	pub.send(&packets.Publish{Topic: "u/a", Payload: []byte("2")})
	pub.send(&packets.Publish{Topic: "v/a", Payload: []byte("3")})
	if m := c.expectPublish(2 * time.Second); m.Topic != "v/a" {
		t.Fatalf("after UNSUBSCRIBE u/a got %q, want v/a", m.Topic)
	}

	// Nothing subscribed under these filters: UNSUBACK all the same. A
	// filter is compared character by character ([MQTT-3.10.4-1]): "v/#"
	// does not remove "v/+".
	c.send(&packets.Unsubscribe{PacketID: 78, Filters: []string{"nothing/here", "v/#"}})
	c.expect(packets.UNSUBACK, 78)
	pub.send(&packets.Publish{Topic: "v/b", Payload: []byte("4")})
	if m := c.expectPublish(2 * time.Second); m.Topic != "v/b" {
		t.Fatalf("got %+v", m)
	}
	c.expectNothing(100 * time.Millisecond)
}

package mqtt

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// v5AliasPub builds a QoS 1 PUBLISH with a Topic Alias.
func v5AliasPub(topic string, alias uint16, pid uint16, payload string) *packets.Publish {
	p := &packets.Publish{Topic: topic, QoS: 1, PacketID: pid, Payload: []byte(payload)}
	p.Props.TopicAlias = alias
	p.Props.Set(packets.PropTopicAlias) // even when 0
	return p
}

// Topic aliases client → server ([MQTT5-3.3.2-12]): a PUBLISH with a topic
// and an alias sets it, one with only the alias uses it, a new topic
// re-maps it; subscribers get the full topic and never the publisher's
// alias. Aliases belong to one connection ([MQTT5-3.3.2-7]).
func TestV5TopicAliasInbound(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.TopicAliasMaximum = 3 })
	sub, _ := mustConnectV5(t, tb.addr, "v5-alias-sub", true, 0)
	sub.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/alias/#", QoS: 1})
	pub, ack := mustConnectV5(t, tb.addr, "v5-alias-pub", true, 0)
	if ack.Props.TopicAliasMaximum != 3 {
		t.Fatalf("Topic Alias Maximum %d, want 3", ack.Props.TopicAliasMaximum)
	}
	for i, step := range []struct {
		topic string
		alias uint16
		want  string
	}{
		{"v5/alias/a", 1, "v5/alias/a"},
		{"", 1, "v5/alias/a"},
		{"v5/alias/b", 1, "v5/alias/b"}, // re-mapped
		{"", 1, "v5/alias/b"},
		{"v5/alias/c", 3, "v5/alias/c"}, // the maximum itself
		{"", 3, "v5/alias/c"},
	} {
		pid := uint16(i + 1)
		pub.send(v5AliasPub(step.topic, step.alias, pid, fmt.Sprint(i)))
		pub.expect(packets.PUBACK, pid)
		m := sub.expectPublish(2 * time.Second)
		if m.Topic != step.want || string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("step %d: delivered %q %q, want %q", i, m.Topic, m.Payload, step.want)
		}
		if m.Props.Has(packets.PropTopicAlias) {
			t.Fatalf("step %d: the publisher's Topic Alias %d was forwarded", i, m.Props.TopicAlias)
		}
		sub.ack(m)
	}

	// A new connection of the same client starts with no aliases.
	pub.conn.Close()
	pub2, _ := mustConnectV5(t, tb.addr, "v5-alias-pub", true, 0)
	pub2.send(v5AliasPub("", 1, 1, "x"))
	pub2.expectDisconnect(packets.ProtocolError)

	// paho.golang sending its own aliases works the same.
	pc := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-alias-paho", CleanStart: true}, nil)
	pc.pub(&pahov5.Publish{Topic: "v5/alias/paho", QoS: 1, Payload: []byte("p1"), Properties: &pahov5.PublishProperties{TopicAlias: ptr[uint16](2)}})
	pc.pub(&pahov5.Publish{QoS: 1, Payload: []byte("p2"), Properties: &pahov5.PublishProperties{TopicAlias: ptr[uint16](2)}})
	for _, want := range []string{"p1", "p2"} {
		m := sub.expectPublish(2 * time.Second)
		if m.Topic != "v5/alias/paho" || string(m.Payload) != want {
			t.Fatalf("paho alias: delivered %q %q", m.Topic, m.Payload)
		}
		sub.ack(m)
	}
}

// An invalid Topic Alias ends the connection: 0, or above the Topic Alias
// Maximum the broker announced → DISCONNECT 0x94 "topic alias invalid"
// ([MQTT5-3.3.2-8], [MQTT5-3.3.2-9]); an alias that was never
// set, with no topic → protocol error 0x82.
func TestV5TopicAliasInvalid(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.TopicAliasMaximum = 3 })
	for _, tc := range []struct {
		name string
		pub  *packets.Publish
		code packets.ReasonCode
	}{
		{"alias above the maximum", v5AliasPub("v5/a", 4, 1, "x"), packets.TopicAliasInvalid},
		{"alias above the maximum, no topic", v5AliasPub("", 9, 1, "x"), packets.TopicAliasInvalid},
		{"alias 0", v5AliasPub("v5/a", 0, 1, "x"), packets.TopicAliasInvalid},
		{"alias never set", v5AliasPub("", 2, 1, "x"), packets.ProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := mustConnectV5(t, tb.addr, "v5-alias-bad", true, 0)
			c.send(tc.pub)
			c.expectDisconnect(tc.code)
		})
	}
}

// The client's Receive Maximum bounds the QoS 1 and QoS 2 deliveries the
// broker leaves unacknowledged ([MQTT5-3.3.4-9]): with 2, two arrive, the
// rest wait, and each acknowledgement lets one more out, in order. A QoS 2
// delivery holds its slot until PUBCOMP, not PUBREC (4.9).
func TestV5ReceiveMaximumOutbound(t *testing.T) {
	tb := startBroker(t, nil)
	connect := func(id string, recvMax uint16) *rawClient {
		c := dialRawV5(t, tb.addr)
		p := &packets.Connect{ClientID: id, CleanStart: true}
		p.Props.ReceiveMaximum = recvMax
		if ack := c.connectWith(p); ack.ReasonCode != packets.Success {
			t.Fatalf("CONNACK %v", ack.ReasonCode)
		}
		return c
	}
	pub := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-rm-pub", CleanStart: true}, nil)

	sub := connect("v5-rm-sub", 2)
	sub.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/rm", QoS: 1})
	for i := range 5 {
		pub.pub(&pahov5.Publish{Topic: "v5/rm", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	var pending []*packets.Publish
	next := 0
	take := func(n int) {
		t.Helper()
		for range n {
			m := sub.expectPublish(2 * time.Second)
			if string(m.Payload) != fmt.Sprint(next) {
				t.Fatalf("got message %q, want %d", m.Payload, next)
			}
			next++
			pending = append(pending, m)
		}
		sub.expectNothing(300 * time.Millisecond)
	}
	take(2) // the window is full
	for next < 5 {
		sub.ack(pending[0])
		pending = pending[1:]
		take(1)
	}

	q2 := connect("v5-rm-q2", 1)
	q2.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/rm2", QoS: 2})
	for i := range 2 {
		pub.pub(&pahov5.Publish{Topic: "v5/rm2", QoS: 2, Payload: []byte(fmt.Sprint(i))})
	}
	m := q2.expectPublish(2 * time.Second)
	q2.expectNothing(300 * time.Millisecond)
	q2.send(&packets.Pubrec{PacketID: m.PacketID})
	q2.expect(packets.PUBREL, m.PacketID)
	q2.expectNothing(300 * time.Millisecond) // still held until PUBCOMP
	q2.send(&packets.Pubcomp{PacketID: m.PacketID})
	if m2 := q2.expectPublish(2 * time.Second); string(m2.Payload) != "1" {
		t.Fatalf("second QoS 2 message %q", m2.Payload)
	}
}

// QoS 2 reason codes in both directions: a subscriber's PUBREC with a
// failure code ends the flow (no PUBREL, and its Receive Maximum slot is
// free again; 4.3.3), and a PUBREL for an unknown packet id is answered
// with PUBCOMP 0x92 "packet identifier not found".
func TestV5QoS2ReasonCodes(t *testing.T) {
	tb := startBroker(t, nil)
	c := dialRawV5(t, tb.addr)
	p := &packets.Connect{ClientID: "v5-q2rc", CleanStart: true}
	p.Props.ReceiveMaximum = 1
	if ack := c.connectWith(p); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	c.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/q2rc", QoS: 2})
	pub := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-q2rc-pub", CleanStart: true}, nil)
	pub.pub(&pahov5.Publish{Topic: "v5/q2rc", QoS: 2, Payload: []byte("refused")})
	pub.pub(&pahov5.Publish{Topic: "v5/q2rc", QoS: 2, Payload: []byte("next")})
	m := c.expectPublish(2 * time.Second)
	if string(m.Payload) != "refused" {
		t.Fatalf("first %q", m.Payload)
	}
	c.send(&packets.Pubrec{PacketID: m.PacketID, ReasonCode: packets.UnspecifiedError})
	m2 := c.expectPublish(2 * time.Second) // not a PUBREL: the flow ended, the slot is free
	if string(m2.Payload) != "next" {
		t.Fatalf("second %q", m2.Payload)
	}
	c.send(&packets.Pubrel{PacketID: 77})
	if a := c.expect(packets.PUBCOMP, 77).(*packets.Pubcomp); a.ReasonCode != packets.PacketIDNotFound {
		t.Fatalf("PUBCOMP %v, want 0x92", a.ReasonCode)
	}
}

// UNSUBACK carries one reason code per filter: 0x00 for a subscription
// removed, 0x11 "no subscription existed" otherwise (3.11.3).
func TestV5UnsubackReasonCodes(t *testing.T) {
	tb := startBroker(t, nil)
	c, _ := mustConnectV5(t, tb.addr, "v5-unsub", true, 0)
	c.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/u/a", QoS: 1}, packets.Subscription{Filter: "$share/g/v5/u/b", QoS: 1})
	c.send(&packets.Unsubscribe{PacketID: 2, Filters: []string{"v5/u/a", "v5/u/none", "$share/g/v5/u/b"}})
	got := c.expect(packets.UNSUBACK, 2).(*packets.Unsuback).ReasonCodes
	want := []packets.ReasonCode{packets.Success, packets.NoSubscriptionExisted, packets.Success}
	if !slices.Equal(got, want) {
		t.Fatalf("UNSUBACK %v, want %v", got, want)
	}
	c.send(&packets.Unsubscribe{PacketID: 3, Filters: []string{"v5/u/a"}})
	if got := c.expect(packets.UNSUBACK, 3).(*packets.Unsuback).ReasonCodes; !slices.Equal(got, []packets.ReasonCode{packets.NoSubscriptionExisted}) {
		t.Fatalf("second UNSUBACK %v", got)
	}
}

// The broker's Receive Maximum (Limits.MaxInboundQoS2, announced in
// CONNACK) bounds the QoS 2 publishes a client may leave awaiting PUBREL;
// one more is DISCONNECT 0x93 "receive maximum exceeded" ([MQTT5-3.3.4-7]).
// Releasing one makes room.
func TestV5ReceiveMaximumInbound(t *testing.T) {
	tb := startBroker(t, func(o *Options) { o.Limits.MaxInboundQoS2 = 2 })
	c, ack := mustConnectV5(t, tb.addr, "v5-rmi", true, 0)
	if ack.Props.ReceiveMaximum != 2 {
		t.Fatalf("CONNACK Receive Maximum %d, want 2", ack.Props.ReceiveMaximum)
	}
	q2 := func(pid uint16) {
		c.send(&packets.Publish{Topic: "v5/rmi", QoS: 2, PacketID: pid, Payload: []byte("x")})
	}
	q2(1)
	c.expect(packets.PUBREC, 1)
	q2(2)
	c.expect(packets.PUBREC, 2)
	c.send(&packets.Pubrel{PacketID: 1})
	c.expect(packets.PUBCOMP, 1)
	q2(3) // two outstanding again: 2 and 3
	c.expect(packets.PUBREC, 3)
	q2(4)
	c.expectDisconnect(packets.ReceiveMaxExceeded)
}

// The client's Maximum Packet Size: a message whose PUBLISH would exceed it
// is not sent to that client ([MQTT5-3.1.2-24], [MQTT5-3.1.2-25]) — it is
// dropped for it as if delivered, counted in DroppedTooLarge — while other
// subscribers get it and the small client keeps receiving what fits.
func TestV5MaximumPacketSizeOutbound(t *testing.T) {
	tb := startBroker(t, nil)
	small := dialRawV5(t, tb.addr)
	p := &packets.Connect{ClientID: "v5-mps-small", CleanStart: true}
	p.Props.MaximumPacketSize = 64
	if ack := small.connectWith(p); ack.ReasonCode != packets.Success {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	small.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/mps/#", QoS: 1})
	big := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-mps-big", CleanStart: true}, nil)
	big.sub(0, pahov5.SubscribeOptions{Topic: "v5/mps/#", QoS: 1})
	pub := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-mps-pub", CleanStart: true}, nil)

	large := string(make([]byte, 100))
	sends := []struct {
		payload string
		qos     byte
	}{{"fits-1", 1}, {large, 1}, {"fits-2", 0}, {large, 0}, {"fits-3", 1}}
	for _, s := range sends {
		pub.pub(&pahov5.Publish{Topic: "v5/mps/t", QoS: s.qos, Payload: []byte(s.payload)})
	}
	for _, s := range sends {
		if m := big.recv(3 * time.Second); string(m.Payload) != s.payload {
			t.Fatalf("unlimited subscriber got %d bytes, want %d", len(m.Payload), len(s.payload))
		}
	}
	for _, want := range []string{"fits-1", "fits-2", "fits-3"} {
		m := small.expectPublish(2 * time.Second)
		if string(m.Payload) != want {
			t.Fatalf("limited subscriber got %d bytes %q, want %q", len(m.Payload), m.Payload, want)
		}
		small.ack(m)
	}
	small.expectNothing(300 * time.Millisecond)
	if n := tb.Stats().DroppedTooLarge; n != 2 {
		t.Errorf("DroppedTooLarge %d, want 2", n)
	}
	// A dropped QoS 1 message must not hold a window slot for ever.
	waitFor(t, "no message inflight once everything fitting is acknowledged", func() bool { return tb.Stats().Inflight == 0 })
}

// The client's Maximum Packet Size bounds every packet the broker sends it,
// not only PUBLISH: a reason string (or user property) that would push a
// CONNACK, SUBACK or PUBACK past it is left out ([MQTT5-3.1.2-24],
// [MQTT5-3.2.2-19], [MQTT5-3.9.2-1], [MQTT5-3.4.2-2]); the reason code stays.
func TestV5ReasonStringWithinMaximumPacketSize(t *testing.T) {
	long := strings.Repeat("r", 200)
	tb := startBroker(t, func(o *Options) {
		o.Hooks.Auth = authFunc(func(_ context.Context, c *ClientInfo, _ []byte) AuthResult {
			if c.Username == "deny" {
				return AuthResult{ReasonCode: 0x87, Reason: long}
			}
			return AuthResult{Allow: true}
		})
		o.Hooks.Topics = topicFunc(func(_ context.Context, _ *ClientInfo, r TopicRequest) TopicResult {
			if strings.HasPrefix(r.Topic, "deny/") {
				return TopicResult{Reason: long}
			}
			return TopicResult{Allow: true}
		})
	})
	const limit = 64
	// readLimited reads one packet, failing if it is larger than limit.
	readLimited := func(t *testing.T, c *rawClient) packets.Packet {
		t.Helper()
		c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		p, err := packets.ReadPacket(c.r, packets.V5, limit)
		if err != nil {
			t.Fatalf("reading a packet of at most %d bytes: %v", limit, err)
		}
		return p
	}
	connect := func(t *testing.T, user string) *rawClient {
		c := dialRawV5(t, tb.addr)
		p := &packets.Connect{ProtocolVersion: packets.V5, ClientID: "v5-rsmps-" + user, CleanStart: true, Username: user}
		p.Props.MaximumPacketSize = limit
		c.send(p)
		if user != "deny" {
			if ack, ok := readLimited(t, c).(*packets.Connack); !ok || ack.ReasonCode != 0 {
				t.Fatalf("CONNACK %+v", ack)
			}
		}
		return c
	}

	t.Run("CONNACK", func(t *testing.T) {
		if ack, ok := readLimited(t, connect(t, "deny")).(*packets.Connack); !ok || ack.ReasonCode != packets.NotAuthorized {
			t.Fatalf("got %+v, want CONNACK 0x87", ack)
		}
	})
	t.Run("SUBACK", func(t *testing.T) {
		c := connect(t, "sub")
		c.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "deny/x", QoS: 1}}})
		if s, ok := readLimited(t, c).(*packets.Suback); !ok || len(s.ReasonCodes) != 1 || s.ReasonCodes[0] != packets.NotAuthorized {
			t.Fatalf("got %+v, want SUBACK [0x87]", s)
		}
	})
	t.Run("PUBACK", func(t *testing.T) {
		c := connect(t, "pub")
		c.send(&packets.Publish{Topic: "deny/x", QoS: 1, PacketID: 2, Payload: []byte("x")})
		if a, ok := readLimited(t, c).(*packets.Puback); !ok || a.ReasonCode != packets.NotAuthorized {
			t.Fatalf("got %+v, want PUBACK 0x87", a)
		}
	})
}

// No Local ([MQTT5-3.8.3-3]): a subscription with No Local does not get the
// subscriber's own publishes; other subscribers do, and so does the
// subscriber for what others publish, or through another matching
// subscription without No Local.
func TestV5NoLocal(t *testing.T) {
	tb := startBroker(t, nil)
	a := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-nl-a", CleanStart: true}, nil)
	b := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-nl-b", CleanStart: true}, nil)
	a.sub(0, pahov5.SubscribeOptions{Topic: "v5/nl", QoS: 1, NoLocal: true})
	b.sub(0, pahov5.SubscribeOptions{Topic: "v5/nl", QoS: 1})

	a.pub(&pahov5.Publish{Topic: "v5/nl", QoS: 1, Payload: []byte("from-a")})
	if m := b.recv(2 * time.Second); string(m.Payload) != "from-a" {
		t.Fatalf("b got %q", m.Payload)
	}
	b.pub(&pahov5.Publish{Topic: "v5/nl", QoS: 1, Payload: []byte("from-b")})
	if m := a.recv(2 * time.Second); string(m.Payload) != "from-b" {
		t.Fatalf("a got %q (its own message came back?)", m.Payload)
	}
	if m := b.recv(2 * time.Second); string(m.Payload) != "from-b" {
		t.Fatalf("b without No Local did not get its own message: %q", m.Payload)
	}
	a.none(300 * time.Millisecond)

	// Overlapping subscriptions: the one without No Local delivers (once).
	c, _ := mustConnectV5(t, tb.addr, "v5-nl-c", true, 0)
	c.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/nl2", QoS: 1, NoLocal: true})
	c.send(&packets.Publish{Topic: "v5/nl2", QoS: 1, PacketID: 2, Payload: []byte("own")})
	c.expect(packets.PUBACK, 2)
	c.expectNothing(300 * time.Millisecond)
	c.subscribeOpts(3, 0, packets.Subscription{Filter: "v5/+", QoS: 1})
	c.send(&packets.Publish{Topic: "v5/nl2", QoS: 1, PacketID: 4, Payload: []byte("own2")})
	var got []string
	for range 2 {
		switch p := c.read(2 * time.Second).(type) {
		case *packets.Publish:
			got = append(got, string(p.Payload))
			c.ack(p)
		case *packets.Puback:
		default:
			t.Fatalf("unexpected %v", p.Type())
		}
	}
	if len(got) != 1 || got[0] != "own2" {
		t.Fatalf("through the plain subscription got %q, want one own2", got)
	}
	c.expectNothing(300 * time.Millisecond)
}

// Retain As Published ([MQTT5-3.3.1-12], [MQTT5-3.3.1-13]): on live
// forwarding, the RETAIN flag is kept only for subscriptions with RAP; a
// retained message sent because of a new subscription always has RETAIN
// set (5.0 §3.8.3.1).
func TestV5RetainAsPublished(t *testing.T) {
	tb := startBroker(t, nil)
	rap, _ := mustConnectV5(t, tb.addr, "v5-rap-1", true, 0)
	rap.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/rap", QoS: 1, RetainAsPublished: true})
	plain, _ := mustConnectV5(t, tb.addr, "v5-rap-0", true, 0)
	plain.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/rap", QoS: 1})
	pc := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-rap-pub", CleanStart: true}, nil)

	for _, retain := range []bool{true, false} {
		pc.pub(&pahov5.Publish{Topic: "v5/rap", QoS: 1, Retain: retain, Payload: []byte(fmt.Sprint(retain))})
		if m := rap.expectPublish(2 * time.Second); m.Retain != retain {
			t.Errorf("RAP subscription: RETAIN %v for a publish with retain %v", m.Retain, retain)
		} else {
			rap.ack(m)
		}
		if m := plain.expectPublish(2 * time.Second); m.Retain {
			t.Errorf("subscription without RAP: RETAIN set on live forwarding (publish retain %v)", retain)
		} else {
			plain.ack(m)
		}
	}
	for _, opt := range []bool{true, false} {
		c, _ := mustConnectV5(t, tb.addr, fmt.Sprint("v5-rap-new-", opt), true, 0)
		c.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/rap", QoS: 1, RetainAsPublished: opt})
		if m := c.expectPublish(2 * time.Second); !m.Retain || string(m.Payload) != "true" {
			t.Errorf("retained on subscribe (RAP %v): RETAIN %v payload %q", opt, m.Retain, m.Payload)
		}
	}
}

// Retain Handling ([MQTT5-3.3.1-9], [MQTT5-3.3.1-10], [MQTT5-3.3.1-11]): 0
// sends retained messages on every subscribe, 1 only when the subscription
// is new, 2 never. Live messages flow in all three cases.
func TestV5RetainHandling(t *testing.T) {
	tb := startBroker(t, nil)
	pc := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-rh-pub", CleanStart: true}, nil)
	pc.pub(&pahov5.Publish{Topic: "v5/rh/x", QoS: 1, Retain: true, Payload: []byte("retained")})

	for _, tc := range []struct {
		rh                byte
		onNew, onResubscr bool
	}{{0, true, true}, {1, true, false}, {2, false, false}} {
		t.Run(fmt.Sprint("retain handling ", tc.rh), func(t *testing.T) {
			c, _ := mustConnectV5(t, tb.addr, fmt.Sprint("v5-rh-", tc.rh), true, 0)
			check := func(pid uint16, want bool, what string) {
				t.Helper()
				c.subscribeOpts(pid, 0, packets.Subscription{Filter: "v5/rh/#", QoS: 1, RetainHandling: tc.rh})
				if want {
					m := c.expectPublish(2 * time.Second)
					if !m.Retain || string(m.Payload) != "retained" {
						t.Fatalf("%s: got %q retain %v", what, m.Payload, m.Retain)
					}
					c.ack(m)
				} else {
					c.expectNothing(300 * time.Millisecond)
				}
			}
			check(1, tc.onNew, "new subscription")
			check(2, tc.onResubscr, "re-subscription")
			c.send(&packets.Unsubscribe{PacketID: 3, Filters: []string{"v5/rh/#"}})
			c.expect(packets.UNSUBACK, 3)
			check(4, tc.onNew, "subscription new again after UNSUBSCRIBE")
			pc.pub(&pahov5.Publish{Topic: "v5/rh/live", QoS: 1, Payload: []byte("live")})
			if m := c.expectPublish(2 * time.Second); string(m.Payload) != "live" || m.Retain {
				t.Fatalf("live message: %q retain %v", m.Payload, m.Retain)
			}
		})
	}
}

// Subscription Identifiers ([MQTT5-3.3.4-3], [MQTT5-3.3.4-4], [MQTT5-3.8.4-3]):
// a delivery carries the identifiers of every matching subscription of the
// session — one PUBLISH for two overlapping subscriptions with ids 1 and 2,
// at the higher QoS ([MQTT5-3.3.4-2]); a subscription without an identifier
// adds none; re-subscribing without one removes it; retained messages sent
// on subscribe carry the new subscription's identifier.
func TestV5SubscriptionIdentifiers(t *testing.T) {
	tb := startBroker(t, nil)
	c, _ := mustConnectV5(t, tb.addr, "v5-sid", true, 0)
	c.subscribeOpts(1, 1, packets.Subscription{Filter: "v5/sid/+", QoS: 0})
	c.subscribeOpts(2, 2, packets.Subscription{Filter: "v5/sid/#", QoS: 1})
	c.subscribeOpts(3, 0, packets.Subscription{Filter: "v5/plain", QoS: 1})
	pub, _ := mustConnectV5(t, tb.addr, "v5-sid-pub", true, 0)
	var pid uint16
	publish := func(topic string, retain bool) {
		pid++
		pub.send(&packets.Publish{Topic: topic, QoS: 1, PacketID: pid, Retain: retain, Payload: []byte(topic)})
		pub.expect(packets.PUBACK, pid)
	}
	expect := func(topic string, qos byte, ids ...uint32) {
		t.Helper()
		m := c.expectPublish(2 * time.Second)
		if m.Topic != topic || m.QoS != qos || !sameIDs(m.Props.SubscriptionIDs, ids) {
			t.Fatalf("got %s QoS %d ids %v, want %s QoS %d ids %v", m.Topic, m.QoS, m.Props.SubscriptionIDs, topic, qos, ids)
		}
		c.ack(m)
		c.expectNothing(200 * time.Millisecond) // one delivery, not one per subscription
	}
	publish("v5/sid/a", false)
	expect("v5/sid/a", 1, 1, 2)
	publish("v5/sid/a/b", false)
	expect("v5/sid/a/b", 1, 2)
	publish("v5/plain", false)
	expect("v5/plain", 1)

	c.subscribeOpts(4, 0, packets.Subscription{Filter: "v5/sid/#", QoS: 1}) // replaced without an id
	publish("v5/sid/a", false)
	expect("v5/sid/a", 1, 1)

	publish("v5/sid/r", true)
	expect("v5/sid/r", 1, 1)
	c.subscribeOpts(5, 77, packets.Subscription{Filter: "v5/sid/r", QoS: 1})
	m := c.expectPublish(2 * time.Second)
	if !m.Retain || !sameIDs(m.Props.SubscriptionIDs, []uint32{77}) {
		t.Fatalf("retained on subscribe: retain %v ids %v, want [77]", m.Retain, m.Props.SubscriptionIDs)
	}

	// paho.golang sees the identifier too.
	pc := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-sid-paho", CleanStart: true}, nil)
	pc.sub(9, pahov5.SubscribeOptions{Topic: "v5/sid/paho", QoS: 1})
	publish("v5/sid/paho", false)
	if m := pc.recv(2 * time.Second); m.Properties == nil || m.Properties.SubscriptionIdentifier == nil || *m.Properties.SubscriptionIdentifier != 9 {
		t.Fatalf("paho: subscription identifier %+v", m.Properties)
	}
}

// Properties travel with the message ([MQTT5-3.3.2-4], [MQTT5-3.3.2-15],
// [MQTT5-3.3.2-16], [MQTT5-3.3.2-17], [MQTT5-3.3.2-18], [MQTT5-3.3.2-20]):
// user properties (order and duplicates kept), payload format indicator,
// content type, response topic and correlation data from a v5 publisher
// reach v5 subscribers unchanged at every QoS; a 3.1.1 subscriber on the
// same topic gets the payload; a request/response round trip works; a
// 3.1.1 publisher's message reaches a v5 subscriber with no properties.
func TestV5PropertyPassthrough(t *testing.T) {
	tb := startBroker(t, nil)
	sub := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-pt-sub", CleanStart: true}, nil)
	sub.sub(0, pahov5.SubscribeOptions{Topic: "v5/pt/#", QoS: 2})
	raw, _ := mustConnectV5(t, tb.addr, "v5-pt-raw", true, 0)
	raw.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/pt/#", QoS: 0})
	v3got := make(chan paho.Message, 8)
	v3 := pahoClient(t, tb.addr, "v3-pt-sub", nil)
	waitToken(t, "3.1.1 subscribe", v3.Subscribe("v5/pt/#", 2, func(_ paho.Client, m paho.Message) { v3got <- m }))
	pub := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-pt-pub", CleanStart: true}, nil)

	user := pahov5.UserProperties{{Key: "k", Value: "1"}, {Key: "other", Value: "x"}, {Key: "k", Value: "2"}}
	for qos := byte(0); qos <= 2; qos++ {
		payload := fmt.Sprintf(`{"qos":%d}`, qos)
		pub.pub(&pahov5.Publish{Topic: "v5/pt/data", QoS: qos, Payload: []byte(payload), Properties: &pahov5.PublishProperties{
			PayloadFormat: ptr[byte](1), ContentType: "application/json", ResponseTopic: "v5/pt/reply",
			CorrelationData: []byte{0, 1, 2, 0xFF}, User: user}})

		m := sub.recv(3 * time.Second)
		pp := m.Properties
		if string(m.Payload) != payload || m.QoS != qos || pp == nil || pp.PayloadFormat == nil || *pp.PayloadFormat != 1 ||
			pp.ContentType != "application/json" || pp.ResponseTopic != "v5/pt/reply" ||
			string(pp.CorrelationData) != "\x00\x01\x02\xff" || !slices.Equal(pp.User, user) || pp.MessageExpiry != nil {
			t.Fatalf("QoS %d: paho subscriber got %q QoS %d %+v", qos, m.Payload, m.QoS, pp)
		}

		rm := raw.expectPublish(2 * time.Second)
		wantUser := []packets.UserProperty{{Key: "k", Value: "1"}, {Key: "other", Value: "x"}, {Key: "k", Value: "2"}}
		if string(rm.Payload) != payload || rm.Props.PayloadFormat != 1 || rm.Props.ContentType != "application/json" ||
			rm.Props.ResponseTopic != "v5/pt/reply" || string(rm.Props.CorrelationData) != "\x00\x01\x02\xff" ||
			!slices.Equal(rm.Props.User, wantUser) || rm.Props.Has(packets.PropTopicAlias) || rm.Props.Has(packets.PropMessageExpiry) {
			t.Fatalf("QoS %d: raw subscriber got %q %+v", qos, rm.Payload, rm.Props)
		}

		select {
		case m := <-v3got:
			if string(m.Payload()) != payload || m.Qos() != qos {
				t.Fatalf("QoS %d: 3.1.1 subscriber got %q QoS %d", qos, m.Payload(), m.Qos())
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("QoS %d: 3.1.1 subscriber got nothing", qos)
		}
	}

	// Request/response: a responder answers on the Response Topic with the
	// request's Correlation Data.
	responder := pahoV5(t, tb.addr, &pahov5.Connect{ClientID: "v5-pt-responder", CleanStart: true}, nil)
	responder.sub(0, pahov5.SubscribeOptions{Topic: "svc/req", QoS: 1})
	pub.sub(0, pahov5.SubscribeOptions{Topic: "v5/pt/reply/me", QoS: 1})
	pub.pub(&pahov5.Publish{Topic: "svc/req", QoS: 1, Payload: []byte("ping"), Properties: &pahov5.PublishProperties{
		ResponseTopic: "v5/pt/reply/me", CorrelationData: []byte("req-42")}})
	req := responder.recv(3 * time.Second)
	responder.pub(&pahov5.Publish{Topic: req.Properties.ResponseTopic, QoS: 1, Payload: []byte("pong"),
		Properties: &pahov5.PublishProperties{CorrelationData: req.Properties.CorrelationData}})
	if rep := pub.recv(3 * time.Second); string(rep.Payload) != "pong" || string(rep.Properties.CorrelationData) != "req-42" {
		t.Fatalf("reply %q correlation %q", rep.Payload, rep.Properties.CorrelationData)
	}
	// The reply also reached the v5/pt/# subscribers.
	sub.recv(3 * time.Second)
	raw.expectPublish(2 * time.Second)
	select {
	case <-v3got:
	case <-time.After(3 * time.Second):
		t.Fatal("3.1.1 subscriber did not get the reply")
	}

	// 3.1.1 publisher → v5 subscriber: the payload, no properties.
	waitToken(t, "3.1.1 publish", v3.Publish("v5/pt/from-v3", 1, false, "plain"))
	m := sub.recv(3 * time.Second)
	if string(m.Payload) != "plain" || m.QoS != 1 {
		t.Fatalf("from 3.1.1: %q QoS %d", m.Payload, m.QoS)
	}
	if pp := m.Properties; pp != nil && (pp.PayloadFormat != nil || pp.ContentType != "" || len(pp.User) != 0 || pp.CorrelationData != nil) {
		t.Fatalf("from 3.1.1: properties %+v", pp)
	}
}

// Payload Format Indicator 1 promises UTF-8: a payload that is not is
// refused with PUBACK/PUBREC 0x99 "payload format invalid" and not routed
// (5.0 §3.3.2.3.2); valid UTF-8 passes.
func TestV5PayloadFormatInvalid(t *testing.T) {
	tb := startBroker(t, nil)
	sub, _ := mustConnectV5(t, tb.addr, "v5-pfi-sub", true, 0)
	sub.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/pfi", QoS: 1})
	c, _ := mustConnectV5(t, tb.addr, "v5-pfi", true, 0)
	send := func(qos byte, pid uint16, payload string) {
		p := &packets.Publish{Topic: "v5/pfi", QoS: qos, PacketID: pid, Payload: []byte(payload)}
		p.Props.PayloadFormat = 1
		c.send(p)
	}
	send(1, 1, "\xff\xfe not utf-8")
	if a := c.expect(packets.PUBACK, 1).(*packets.Puback); a.ReasonCode != packets.PayloadFormatInvalid {
		t.Fatalf("PUBACK %v, want 0x99", a.ReasonCode)
	}
	send(2, 2, "\xc3\x28")
	if a := c.expect(packets.PUBREC, 2).(*packets.Pubrec); a.ReasonCode != packets.PayloadFormatInvalid {
		t.Fatalf("PUBREC %v, want 0x99", a.ReasonCode)
	}
	sub.expectNothing(300 * time.Millisecond)
	send(1, 3, "héllo ✓")
	if a := c.expect(packets.PUBACK, 3).(*packets.Puback); a.ReasonCode != packets.Success {
		t.Fatalf("valid UTF-8: PUBACK %v", a.ReasonCode)
	}
	if m := sub.expectPublish(2 * time.Second); string(m.Payload) != "héllo ✓" || m.Props.PayloadFormat != 1 {
		t.Fatalf("delivered %q format %d", m.Payload, m.Props.PayloadFormat)
	}
}

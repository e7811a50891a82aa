package mqtt

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// An MQTT 5 CONNACK announces the broker's limits, each taken from Limits:
// Server Keep Alive when MaxKeepAlive caps the client's ([MQTT5-3.2.2-21]),
// Receive Maximum from MaxInboundQoS2, Maximum Packet Size, Topic Alias
// Maximum; and an Assigned Client Identifier for an empty client id
// ([MQTT5-3.2.2-16]), with or without clean start.
func TestV5ConnackProperties(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Limits = Limits{MaxKeepAlive: 20, MaxInboundQoS2: 10, MaxPacketSize: 4096, TopicAliasMaximum: 5}
	})
	for _, tc := range []struct {
		name      string
		id        string
		clean     bool
		keepAlive uint16
		serverKA  uint16 // 0 = Server Keep Alive absent
	}{
		{"empty id, keep alive above the cap", "", false, 60, 20},
		{"empty id with clean start, keep alive 0 (none) is capped too", "", true, 0, 20},
		{"given id, keep alive under the cap", "v5-props", true, 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRawV5(t, tb.addr)
			ack := c.connectWith(&packets.Connect{ClientID: tc.id, CleanStart: tc.clean, KeepAlive: tc.keepAlive})
			if ack.ReasonCode != packets.Success || ack.SessionPresent {
				t.Fatalf("CONNACK %v present=%v", ack.ReasonCode, ack.SessionPresent)
			}
			pp := &ack.Props
			if tc.id == "" {
				if pp.AssignedClientID == "" {
					t.Error("no Assigned Client Identifier for an empty client id")
				}
			} else if pp.Has(packets.PropAssignedClientID) {
				t.Errorf("Assigned Client Identifier %q for a client that gave its own", pp.AssignedClientID)
			}
			if tc.serverKA != 0 {
				if !pp.Has(packets.PropServerKeepAlive) || pp.ServerKeepAlive != tc.serverKA {
					t.Errorf("Server Keep Alive %d (present %v), want %d", pp.ServerKeepAlive, pp.Has(packets.PropServerKeepAlive), tc.serverKA)
				}
			} else if pp.Has(packets.PropServerKeepAlive) {
				t.Errorf("Server Keep Alive %d sent though the client's %d is within the cap", pp.ServerKeepAlive, tc.keepAlive)
			}
			if !pp.Has(packets.PropReceiveMaximum) || pp.ReceiveMaximum != 10 {
				t.Errorf("Receive Maximum %d (present %v), want 10", pp.ReceiveMaximum, pp.Has(packets.PropReceiveMaximum))
			}
			if pp.MaximumPacketSize != 4096 {
				t.Errorf("Maximum Packet Size %d, want 4096", pp.MaximumPacketSize)
			}
			if pp.TopicAliasMaximum != 5 {
				t.Errorf("Topic Alias Maximum %d, want 5", pp.TopicAliasMaximum)
			}
			if pp.Has(packets.PropSessionExpiry) {
				t.Errorf("Session Expiry %d in CONNACK though nothing caps it", pp.SessionExpiry)
			}
			// The broker supports QoS 2, retain, wildcards, shared
			// subscriptions and subscription identifiers: it must not
			// announce otherwise (absent means supported).
			if pp.Has(packets.PropMaximumQoS) {
				t.Errorf("Maximum QoS %d announced", pp.MaximumQoS)
			}
			for id, v := range map[packets.PropID]byte{packets.PropRetainAvailable: pp.RetainAvailable,
				packets.PropWildcardSubAvailable: pp.WildcardSubAvailable, packets.PropSharedSubAvailable: pp.SharedSubAvailable,
				packets.PropSubIDAvailable: pp.SubIDAvailable} {
				if pp.Has(id) && v != 1 {
					t.Errorf("property %#x announces its feature as unavailable", byte(id))
				}
			}
		})
	}

	// The assigned id is the session's: a paho.golang client that connects
	// without one learns it and can use the connection.
	pc := pahoV5(t, tb.addr, &pahov5.Connect{CleanStart: true, KeepAlive: 10}, nil)
	if id := pc.ack.Properties.AssignedClientID; id == "" || pc.ClientID() != id {
		t.Fatalf("paho: assigned id %q, client id %q", id, pc.ClientID())
	}
	pc.sub(0, pahov5.SubscribeOptions{Topic: "v5/props/echo", QoS: 1})
	pc.pub(&pahov5.Publish{Topic: "v5/props/echo", QoS: 1, Payload: []byte("x")})
	if m := pc.recv(3 * time.Second); string(m.Payload) != "x" {
		t.Fatalf("echo payload %q", m.Payload)
	}

	// Receive Maximum is left out when the broker accepts the protocol's
	// maximum (absent means 65535).
	big := startBroker(t, func(o *Options) { o.Limits.MaxInboundQoS2 = 70000 })
	_, ack := mustConnectV5(t, big.addr, "v5-props-big", true, 0)
	if ack.Props.Has(packets.PropReceiveMaximum) {
		t.Errorf("Receive Maximum %d sent though the broker allows 65535 or more", ack.Props.ReceiveMaximum)
	}
	if ack.Props.TopicAliasMaximum != DefaultLimits.TopicAliasMaximum || ack.Props.MaximumPacketSize != uint32(DefaultLimits.MaxPacketSize) {
		t.Errorf("default limits: Topic Alias Maximum %d, Maximum Packet Size %d", ack.Props.TopicAliasMaximum, ack.Props.MaximumPacketSize)
	}
}

// A CONNECT whose properties break the rules of 5.0 §2.2.2.2 is answered
// with CONNACK 0x81 (malformed: an unknown identifier, or one CONNECT may
// not carry) or 0x82 (protocol error: a property given twice, a value out of
// range), then closed ([MQTT5-3.1.4-1], [MQTT5-4.13.1-1]); no session is made.
func TestV5ConnectMalformedProperties(t *testing.T) {
	tb := startBroker(t, nil)
	for _, tc := range []struct {
		name  string
		props []byte
		code  packets.ReasonCode
	}{
		{"Session Expiry twice", []byte{0x11, 0, 0, 0, 10, 0x11, 0, 0, 0, 20}, packets.ProtocolError},
		{"Receive Maximum twice", []byte{0x21, 0, 5, 0x21, 0, 5}, packets.ProtocolError},
		{"Payload Format Indicator is not a CONNECT property", []byte{0x01, 1}, packets.MalformedPacket},
		{"Topic Alias is not a CONNECT property", []byte{0x23, 0, 1}, packets.MalformedPacket},
		{"unknown property 0x7F", []byte{0x7F, 0}, packets.MalformedPacket},
		{"Receive Maximum 0", []byte{0x21, 0, 0}, packets.ProtocolError},
		{"Authentication Data without a method", []byte{0x16, 0, 1, 'x'}, packets.ProtocolError},
		{"truncated property value", []byte{0x11, 0, 0}, packets.MalformedPacket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tb.Stats().Malformed
			c := dialRawV5(t, tb.addr)
			c.write(connectBytes(5, tc.props, "v5-bad-props"))
			c.expectConnackClose(tc.code)
			if tb.Stats().Malformed <= before {
				t.Error("Stats().Malformed did not count the refused CONNECT")
			}
			if _, ok := tb.store.Get("v5-bad-props"); ok {
				t.Error("a refused CONNECT left a session behind")
			}
		})
	}
	// A well-formed hand-encoded CONNECT is accepted: the failures above
	// come from the properties, not from the encoding.
	c := dialRawV5(t, tb.addr)
	c.write(connectBytes(5, []byte{0x11, 0, 0, 0, 10, 0x21, 0, 5}, "v5-good-props"))
	if p := c.read(2 * time.Second); p.Type() != packets.CONNACK || p.(*packets.Connack).ReasonCode != packets.Success {
		t.Fatalf("valid CONNECT answered with %v %+v", p.Type(), p)
	}
}

// An unsupported protocol level (6) is answered with a 3.1.1-format CONNACK
// 0x01 "unacceptable protocol version" — exactly 20 02 00 01 — and the
// connection is closed ([MQTT-3.1.2-2]).
func TestV5UnsupportedProtocolLevel(t *testing.T) {
	tb := startBroker(t, nil)
	for _, props := range [][]byte{nil, {}} { // with and without a v5-style property block
		c := dialRaw(t, tb.addr)
		c.write(connectBytes(6, props, "v6"))
		got := make([]byte, 4)
		c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadFull(c.r, got); err != nil {
			t.Fatalf("reading CONNACK: %v", err)
		}
		if want := []byte{0x20, 0x02, 0x00, 0x01}; string(got) != string(want) {
			t.Fatalf("CONNACK bytes % x, want % x", got, want)
		}
		c.expectClosed(2 * time.Second)
	}
}

// Session Expiry Interval 0 (or absent): the session ends with the
// connection ([MQTT5-3.1.2-23] in reverse): nothing is kept, queued or
// resumed.
func TestV5SessionExpiryZero(t *testing.T) {
	tb := startBroker(t, nil)
	c, _ := mustConnectV5(t, tb.addr, "v5-se0", false, 0)
	c.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/se0", QoS: 1})
	c.disconnect()
	waitFor(t, "client gone", func() bool { return tb.Stats().ClientsConnected == 0 })
	if n := tb.Stats().ClientsPersisted; n != 0 {
		t.Fatalf("%d sessions kept after a Session Expiry 0 client left", n)
	}
	pub, _ := mustConnectV5(t, tb.addr, "v5-se0-pub", true, 0)
	pub.send(&packets.Publish{Topic: "v5/se0", QoS: 1, PacketID: 1, Payload: []byte("lost")})
	if a := pub.expect(packets.PUBACK, 1).(*packets.Puback); a.ReasonCode != packets.NoMatchingSubscribers {
		t.Errorf("PUBACK %v, want 0x10: the ended session must not be subscribed", a.ReasonCode)
	}
	c2, ack := mustConnectV5(t, tb.addr, "v5-se0", false, 0)
	if ack.SessionPresent {
		t.Fatal("session present after Session Expiry 0")
	}
	c2.expectNothing(300 * time.Millisecond)
}

// A session is kept while its Session Expiry Interval runs (session
// present, queued messages delivered) and ends once it has passed
// ([MQTT5-3.1.2-23]; 5.0 §4.1: the server deletes the session when it expires):
// the resuming CONNECT sets a short interval (2 s) that the broker's own
// sweep must honour.
func TestV5SessionExpiryShort(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	// A long interval while the test checks the session is kept: a loaded
	// machine may take seconds to get here. The reconnect sets the short one.
	c, _ := mustConnectV5(t, tb.addr, "v5-se1", false, 60)
	c.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/se1", QoS: 1})
	c.disconnect()
	pub, _ := mustConnectV5(t, tb.addr, "v5-se1-pub", true, 0)
	pub.send(&packets.Publish{Topic: "v5/se1", QoS: 1, PacketID: 1, Payload: []byte("kept")})
	pub.expect(packets.PUBACK, 1)

	c, ack := mustConnectV5(t, tb.addr, "v5-se1", false, 2)
	if !ack.SessionPresent {
		t.Fatal("session not present within its expiry")
	}
	m := c.expectPublish(2 * time.Second)
	if string(m.Payload) != "kept" {
		t.Fatalf("queued payload %q", m.Payload)
	}
	c.ack(m)
	c.disconnect()

	// Gone from the store: ClientsPersisted is also 0 while the closed
	// connection is still attached to it.
	waitFor(t, "the session with Session Expiry 2 s to be removed", func() bool {
		_, kept := tb.store.Get("v5-se1")
		return !kept
	})
	_, ack = mustConnectV5(t, tb.addr, "v5-se1", false, 2)
	if ack.SessionPresent {
		t.Fatal("session present after its Session Expiry Interval passed")
	}
}

// Session Expiry 0xFFFFFFFF means the session never expires; the CONNACK
// does not rewrite it when nothing caps it.
func TestV5SessionExpiryNever(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	c, ack := mustConnectV5(t, tb.addr, "v5-se-max", false, 0xFFFFFFFF)
	if ack.Props.Has(packets.PropSessionExpiry) {
		t.Errorf("CONNACK Session Expiry %d for an uncapped request", ack.Props.SessionExpiry)
	}
	c.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/se-max", QoS: 1})
	c.disconnect()
	pub, _ := mustConnectV5(t, tb.addr, "v5-se-max-pub", true, 0)
	pub.send(&packets.Publish{Topic: "v5/se-max", QoS: 1, PacketID: 1, Payload: []byte("forever")})
	pub.expect(packets.PUBACK, 1)
	waitOffline(t, tb, "v5-se-max")
	// A sweep 200 years on, past the 136 years 0xFFFFFFFF seconds would be.
	tb.expireSessions(time.Now().Add(200 * 365 * 24 * time.Hour))
	if n := tb.Stats().ClientsPersisted; n != 1 {
		t.Fatalf("%d sessions kept, want 1", n)
	}
	c, ack = mustConnectV5(t, tb.addr, "v5-se-max", false, 0xFFFFFFFF)
	if !ack.SessionPresent {
		t.Fatal("session with expiry 0xFFFFFFFF not present")
	}
	if m := c.expectPublish(2 * time.Second); string(m.Payload) != "forever" {
		t.Fatalf("payload %q", m.Payload)
	}
}

// Limits.SessionExpiry caps a v5 request, and the CONNACK says so with the
// capped Session Expiry Interval (5.0 §3.2.2.3.2: the server's value wins); the
// session then ends after the capped interval. A request under the cap is
// not echoed. A raise at DISCONNECT is capped as well.
func TestV5SessionExpiryCapped(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(o *Options) { o.Limits.SessionExpiry = time.Second })
	for _, tc := range []struct {
		req, want uint32 // want 0 = no Session Expiry in CONNACK
	}{{0xFFFFFFFF, 1}, {3600, 1}, {1, 0}, {0, 0}} {
		c := dialRawV5(t, tb.addr)
		p := &packets.Connect{ClientID: "v5-cap-probe", CleanStart: true}
		p.Props.SessionExpiry = tc.req
		ack := c.connectWith(p)
		if ack.ReasonCode != packets.Success {
			t.Fatalf("CONNACK %v", ack.ReasonCode)
		}
		has := ack.Props.Has(packets.PropSessionExpiry)
		if tc.want == 0 && has || tc.want != 0 && (!has || ack.Props.SessionExpiry != tc.want) {
			t.Errorf("request %d: CONNACK Session Expiry %d (present %v), want %d", tc.req, ack.Props.SessionExpiry, has, tc.want)
		}
		c.disconnect()
	}

	// The capped session ends after about a second.
	c, _ := mustConnectV5(t, tb.addr, "v5-cap", false, 0xFFFFFFFF)
	c.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/cap", QoS: 1})
	c.disconnect()
	waitFor(t, "the capped session to expire", func() bool { _, ok := tb.store.Get("v5-cap"); return !ok })

	// DISCONNECT may not raise it past the cap either.
	c, _ = mustConnectV5(t, tb.addr, "v5-cap2", false, 1)
	d := &packets.Disconnect{}
	d.Props.SessionExpiry = 3600
	c.send(d)
	c.expectClosed(2 * time.Second)
	waitFor(t, "the session raised past the cap to expire", func() bool { _, ok := tb.store.Get("v5-cap2"); return !ok })
}

// The Session Expiry Interval may change at DISCONNECT (5.0 §3.14.2.2.2
// forbids only 0 → non-zero): raised, the session outlives the interval it
// connected with; lowered to 0, it ends at once; set on a session that had
// 0, the server answers DISCONNECT 0x82 and keeps nothing.
func TestV5SessionExpiryChangedAtDisconnect(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)

	// Lowered to 0: ends now.
	c, _ := mustConnectV5(t, tb.addr, "v5-chg-zero", false, 3600)
	c.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/chg", QoS: 1})
	d := &packets.Disconnect{}
	d.Props.Set(packets.PropSessionExpiry) // present with the value 0
	c.send(d)
	c.expectClosed(2 * time.Second)
	waitFor(t, "the session lowered to 0 to end", func() bool { _, ok := tb.store.Get("v5-chg-zero"); return !ok })

	// 0 → non-zero: protocol error.
	c, _ = mustConnectV5(t, tb.addr, "v5-chg-from0", false, 0)
	d = &packets.Disconnect{}
	d.Props.SessionExpiry = 60
	c.send(d)
	c.expectDisconnect(packets.ProtocolError)
	waitFor(t, "client gone", func() bool { _, ok := tb.store.Get("v5-chg-from0"); return !ok })

	// Raised from 1 s to an hour: still there well after 1 s.
	c, _ = mustConnectV5(t, tb.addr, "v5-chg-raise", false, 1)
	c.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/chg", QoS: 1})
	d = &packets.Disconnect{}
	d.Props.SessionExpiry = 3600
	c.send(d)
	c.expectClosed(2 * time.Second)
	waitOffline(t, tb, "v5-chg-raise")
	tb.expireSessions(time.Now().Add(time.Minute)) // a sweep well past the 1 s it had at CONNECT
	_, ack := mustConnectV5(t, tb.addr, "v5-chg-raise", false, 3600)
	if !ack.SessionPresent {
		t.Fatal("session raised to 3600 s at DISCONNECT was not kept")
	}
}

// Clean Start 1 discards the existing session: no session present, its
// queued messages and subscriptions are gone ([MQTT5-3.1.2-4]); Clean Start
// 0 resumes it ([MQTT5-3.1.2-5]).
func TestV5CleanStartDiscards(t *testing.T) {
	tb := startBroker(t, nil)
	pub, _ := mustConnectV5(t, tb.addr, "v5-cs-pub", true, 0)
	publish := func(pid uint16, payload string) packets.ReasonCode {
		pub.send(&packets.Publish{Topic: "v5/cs", QoS: 1, PacketID: pid, Payload: []byte(payload)})
		return pub.expect(packets.PUBACK, pid).(*packets.Puback).ReasonCode
	}

	c, _ := mustConnectV5(t, tb.addr, "v5-cs", false, 3600)
	c.subscribeOpts(1, 0, packets.Subscription{Filter: "v5/cs", QoS: 1})
	c.disconnect()
	publish(1, "one")
	c, ack := mustConnectV5(t, tb.addr, "v5-cs", false, 3600)
	if !ack.SessionPresent {
		t.Fatal("Clean Start 0 did not resume the session")
	}
	m := c.expectPublish(2 * time.Second)
	c.ack(m)
	c.disconnect()

	publish(2, "two")
	c, ack = mustConnectV5(t, tb.addr, "v5-cs", true, 3600)
	if ack.SessionPresent {
		t.Fatal("Clean Start 1 reported session present")
	}
	c.expectNothing(300 * time.Millisecond)
	if code := publish(3, "three"); code != packets.NoMatchingSubscribers {
		t.Errorf("PUBACK %v after Clean Start 1: the old subscription survived", code)
	}
	c.expectNothing(300 * time.Millisecond)
}

// Request Problem Information 0 forbids reason strings on anything but
// CONNACK and DISCONNECT ([MQTT5-3.1.2-29]): a publish denied by the topic
// hook gets PUBACK 0x87 without one, while a client with the default (1)
// gets the hook's reason. Request Response Information 1 is accepted; the
// broker provides no Response Information.
func TestV5RequestProblemInformation(t *testing.T) {
	tb := startBroker(t, func(o *Options) {
		o.Hooks.Topics = topicFunc(func(_ context.Context, _ *ClientInfo, r TopicRequest) TopicResult {
			if strings.HasPrefix(r.Topic, "deny/") {
				return TopicResult{Reason: "no access to deny/"}
			}
			return TopicResult{Allow: true}
		})
	})
	for _, tc := range []struct {
		name       string
		props      func(*packets.Properties)
		wantReason bool
	}{
		{"Request Problem Information 0", func(p *packets.Properties) { p.Set(packets.PropRequestProblemInfo) }, false},
		{"default", func(*packets.Properties) {}, true},
		{"Request Problem Information 1, Request Response Information 1", func(p *packets.Properties) {
			p.RequestProblemInfo, p.RequestResponseInfo = 1, 1
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRawV5(t, tb.addr)
			p := &packets.Connect{ClientID: "v5-rpi", CleanStart: true}
			tc.props(&p.Props)
			ack := c.connectWith(p)
			if ack.ReasonCode != packets.Success {
				t.Fatalf("CONNACK %v", ack.ReasonCode)
			}
			if ack.Props.Has(packets.PropResponseInfo) {
				t.Errorf("Response Information %q, the broker offers none", ack.Props.ResponseInfo)
			}
			c.send(&packets.Publish{Topic: "deny/x", QoS: 1, PacketID: 7, Payload: []byte("x")})
			a := c.expect(packets.PUBACK, 7).(*packets.Puback)
			if a.ReasonCode != packets.NotAuthorized {
				t.Fatalf("PUBACK %v, want 0x87", a.ReasonCode)
			}
			if has := a.Props.Has(packets.PropReasonString); has != tc.wantReason {
				t.Fatalf("PUBACK reason string present=%v (%q), want %v", has, a.Props.ReasonString, tc.wantReason)
			}
			if tc.wantReason && a.Props.ReasonString != "no access to deny/" {
				t.Errorf("reason string %q, want the hook's", a.Props.ReasonString)
			}
			c.send(&packets.Subscribe{PacketID: 8, Subscriptions: []packets.Subscription{{Filter: "deny/#", QoS: 1}}})
			s := c.expect(packets.SUBACK, 8).(*packets.Suback)
			if len(s.ReasonCodes) != 1 || s.ReasonCodes[0] != packets.NotAuthorized {
				t.Fatalf("SUBACK %v, want [0x87]", s.ReasonCodes)
			}
			if has := s.Props.Has(packets.PropReasonString); has != tc.wantReason {
				t.Errorf("SUBACK reason string present=%v, want %v", has, tc.wantReason)
			}
			c.disconnect()
		})
	}
}

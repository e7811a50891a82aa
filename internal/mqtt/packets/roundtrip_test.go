package packets

import (
	"bytes"
	"testing"
)

// The v5*Props helpers return every property each packet may carry, so
// round trips exercise every property encoder and decoder.
func v5ConnectProps() Properties {
	return Properties{SessionExpiry: 3600, AuthMethod: "SCRAM-SHA-1", AuthData: []byte{1, 2},
		RequestProblemInfo: 1, RequestResponseInfo: 1, ReceiveMaximum: 20, TopicAliasMaximum: 10,
		MaximumPacketSize: 1 << 20, User: []UserProperty{{"a", "1"}, {"a", "2"}, {"b", ""}}}
}

func v5WillProps() Properties {
	return Properties{PayloadFormat: 1, MessageExpiry: 60, ContentType: "text/plain",
		ResponseTopic: "reply/here", CorrelationData: []byte("cd"), WillDelay: 5,
		User: []UserProperty{{"k", "v"}}}
}

func v5ConnackProps() Properties {
	return Properties{SessionExpiry: 10, AssignedClientID: "auto-1", ServerKeepAlive: 30,
		AuthMethod: "m", AuthData: []byte{9}, ResponseInfo: "ri", ServerReference: "other:1883",
		ReasonString: "welcome", ReceiveMaximum: 100, TopicAliasMaximum: 5, MaximumQoS: 1,
		RetainAvailable: 1, MaximumPacketSize: 4096, WildcardSubAvailable: 1, SubIDAvailable: 1,
		SharedSubAvailable: 1, User: []UserProperty{{"x", "y"}}}
}

func v5PublishProps() Properties {
	return Properties{PayloadFormat: 1, MessageExpiry: 120, ContentType: "application/json",
		ResponseTopic: "r/t", CorrelationData: []byte{0, 1, 2}, SubscriptionIDs: []uint32{1, 268435455},
		TopicAlias: 3, User: []UserProperty{{"u", "v"}}}
}

func ackProps5() Properties {
	return Properties{ReasonString: "why", User: []UserProperty{{"k", "v"}}}
}

func TestRoundTrip(t *testing.T) {
	type tc struct {
		name string
		v    Version
		p    Packet
	}
	cases := []tc{
		// MQTT 3.1.1
		{"connect minimal", V311, &Connect{ProtocolName: "MQTT", ProtocolVersion: V311, CleanStart: true, KeepAlive: 60, ClientID: "c1"}},
		{"connect empty id", V311, &Connect{ProtocolName: "MQTT", ProtocolVersion: V311, CleanStart: true}},
		{"connect full", V311, &Connect{ProtocolName: "MQTT", ProtocolVersion: V311, KeepAlive: 65535, ClientID: "dev/é",
			WillFlag: true, WillQoS: 2, WillRetain: true, WillTopic: "will/t", WillPayload: []byte("bye"),
			UsernameFlag: true, Username: "user", PasswordFlag: true, Password: []byte{0, 1, 0xff}}},
		{"connect empty password", V311, &Connect{ProtocolName: "MQTT", ProtocolVersion: V311, ClientID: "c",
			UsernameFlag: true, PasswordFlag: true}},
		{"connect 3.1", V31, &Connect{ProtocolName: "MQIsdp", ProtocolVersion: V31, CleanStart: true, ClientID: "old"}},
		{"connack accepted", V311, &Connack{}},
		{"connack present", V311, &Connack{SessionPresent: true}},
		{"connack refused", V311, &Connack{ReasonCode: ConnRefusedNotAuthorized}},
		{"publish qos0", V311, &Publish{Topic: "a/b", Payload: []byte("hello")}},
		{"publish qos0 empty payload retain", V311, &Publish{Topic: "a", Retain: true}},
		{"publish qos1", V311, &Publish{QoS: 1, Topic: "a/b", PacketID: 7, Payload: []byte{0}}},
		{"publish qos2 dup", V311, &Publish{QoS: 2, Dup: true, Retain: true, Topic: "ü/€", PacketID: 65535, Payload: bytes.Repeat([]byte("x"), 300)}},
		{"puback", V311, &Puback{PacketID: 1}},
		{"pubrec", V311, &Pubrec{PacketID: 2}},
		{"pubrel", V311, &Pubrel{PacketID: 3}},
		{"pubcomp", V311, &Pubcomp{PacketID: 65535}},
		{"subscribe", V311, &Subscribe{PacketID: 5, Subscriptions: []Subscription{{Filter: "a/+", QoS: 1}, {Filter: "#", QoS: 2}, {Filter: "x", QoS: 0}}}},
		{"subscribe bad filter syntax is decoded", V311, &Subscribe{PacketID: 5, Subscriptions: []Subscription{{Filter: "a/#/b"}}}},
		{"suback", V311, &Suback{PacketID: 5, ReasonCodes: []ReasonCode{GrantedQoS1, GrantedQoS2, SubackFailure, GrantedQoS0}}},
		{"unsubscribe", V311, &Unsubscribe{PacketID: 6, Filters: []string{"a/+", "b"}}},
		{"unsuback", V311, &Unsuback{PacketID: 6}},
		{"pingreq", V311, &Pingreq{}},
		{"pingresp", V311, &Pingresp{}},
		{"disconnect", V311, &Disconnect{}},

		// MQTT 5
		{"v5 connect minimal", V5, &Connect{ProtocolName: "MQTT", ProtocolVersion: V5, CleanStart: true, ClientID: "c"}},
		{"v5 connect full", V5, &Connect{ProtocolName: "MQTT", ProtocolVersion: V5, KeepAlive: 30, ClientID: "c",
			WillFlag: true, WillQoS: 1, WillTopic: "w", WillPayload: []byte("p"), WillProps: v5WillProps(),
			UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("pw"), Props: v5ConnectProps()}},
		{"v5 connect password without user", V5, &Connect{ProtocolName: "MQTT", ProtocolVersion: V5, ClientID: "c",
			PasswordFlag: true, Password: []byte("token")}},
		{"v5 connack", V5, &Connack{SessionPresent: true, Props: v5ConnackProps()}},
		{"v5 connack refused", V5, &Connack{ReasonCode: BadUsernameOrPassword, Props: Properties{ReasonString: "no"}}},
		{"v5 publish no props", V5, &Publish{QoS: 1, PacketID: 9, Topic: "t", Payload: []byte("x")}},
		{"v5 publish props", V5, &Publish{QoS: 2, PacketID: 9, Topic: "t/u", Payload: []byte("x"), Props: v5PublishProps()}},
		{"v5 publish alias only", V5, &Publish{Topic: "", Payload: []byte("x"), Props: Properties{TopicAlias: 4}}},
		{"v5 puback short", V5, &Puback{PacketID: 1}},
		{"v5 puback code", V5, &Puback{PacketID: 1, ReasonCode: NoMatchingSubscribers}},
		{"v5 puback props", V5, &Puback{PacketID: 1, ReasonCode: NotAuthorized, Props: ackProps5()}},
		{"v5 puback success props", V5, &Puback{PacketID: 1, Props: ackProps5()}},
		{"v5 pubrec", V5, &Pubrec{PacketID: 2, ReasonCode: QuotaExceeded, Props: ackProps5()}},
		{"v5 pubrel", V5, &Pubrel{PacketID: 3, ReasonCode: PacketIDNotFound}},
		{"v5 pubcomp", V5, &Pubcomp{PacketID: 4, Props: ackProps5()}},
		{"v5 subscribe", V5, &Subscribe{PacketID: 5, Props: Properties{SubscriptionIDs: []uint32{42}, User: []UserProperty{{"a", "b"}}},
			Subscriptions: []Subscription{{Filter: "a/+", QoS: 1, NoLocal: true}, {Filter: "$share/g/#", QoS: 2, RetainAsPublished: true, RetainHandling: 2}}}},
		{"v5 suback", V5, &Suback{PacketID: 5, ReasonCodes: []ReasonCode{GrantedQoS1, TopicFilterInvalid, WildcardSubsNotSupported}, Props: ackProps5()}},
		{"v5 unsubscribe", V5, &Unsubscribe{PacketID: 6, Filters: []string{"a"}, Props: Properties{User: []UserProperty{{"a", "b"}}}}},
		{"v5 unsuback", V5, &Unsuback{PacketID: 6, ReasonCodes: []ReasonCode{Success, NoSubscriptionExisted}, Props: ackProps5()}},
		{"v5 pingreq", V5, &Pingreq{}},
		{"v5 pingresp", V5, &Pingresp{}},
		{"v5 disconnect short", V5, &Disconnect{}},
		{"v5 disconnect code", V5, &Disconnect{ReasonCode: DisconnectWithWill}},
		{"v5 disconnect props", V5, &Disconnect{ReasonCode: ServerMoved, Props: Properties{ServerReference: "b:1883", ReasonString: "bye", SessionExpiry: 1}}},
		{"v5 auth short", V5, &Auth{}},
		{"v5 auth", V5, &Auth{ReasonCode: ContinueAuthentication, Props: Properties{AuthMethod: "m", AuthData: []byte("d"), ReasonString: "r"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { roundTrip(t, c.p, c.v) })
	}
}

// TestExactBytes checks encodings written by hand from the spec's figures,
// in both directions.
func TestExactBytes(t *testing.T) {
	cases := []struct {
		name string
		v    Version
		p    Packet
		raw  []byte
	}{
		{"3.1.1 CONNECT (3.1.2)", V311,
			&Connect{ProtocolName: "MQTT", ProtocolVersion: V311, CleanStart: true, KeepAlive: 60, ClientID: "abc"},
			[]byte{0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 3, 'a', 'b', 'c'}},
		{"3.1.1 CONNECT with will and credentials", V311,
			&Connect{ProtocolName: "MQTT", ProtocolVersion: V311, KeepAlive: 10, ClientID: "c",
				WillFlag: true, WillQoS: 1, WillRetain: true, WillTopic: "w", WillPayload: []byte("x"),
				UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("p")},
			[]byte{0x10, 25, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xEC, 0, 10, 0, 1, 'c', 0, 1, 'w', 0, 1, 'x', 0, 1, 'u', 0, 1, 'p'}},
		{"3.1 CONNECT", V31,
			&Connect{ProtocolName: "MQIsdp", ProtocolVersion: V31, CleanStart: true, ClientID: "c"},
			[]byte{0x10, 15, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x02, 0, 0, 0, 1, 'c'}},
		{"3.1.1 CONNACK", V311, &Connack{SessionPresent: true}, []byte{0x20, 2, 1, 0}},
		{"3.1.1 PUBLISH QoS 1", V311,
			&Publish{QoS: 1, Topic: "a/b", PacketID: 10, Payload: []byte("hi")},
			[]byte{0x32, 9, 0, 3, 'a', '/', 'b', 0, 10, 'h', 'i'}},
		{"3.1.1 PUBLISH QoS 0 retain", V311,
			&Publish{Retain: true, Topic: "t", Payload: []byte{1}},
			[]byte{0x31, 4, 0, 1, 't', 1}},
		{"3.1.1 PUBREL", V311, &Pubrel{PacketID: 7}, []byte{0x62, 2, 0, 7}},
		{"3.1.1 SUBSCRIBE", V311,
			&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a/#", QoS: 1}}},
			[]byte{0x82, 8, 0, 1, 0, 3, 'a', '/', '#', 1}},
		{"3.1.1 SUBACK", V311,
			&Suback{PacketID: 1, ReasonCodes: []ReasonCode{GrantedQoS0, GrantedQoS1, SubackFailure}},
			[]byte{0x90, 5, 0, 1, 0x00, 0x01, 0x80}},
		{"3.1.1 UNSUBACK", V311, &Unsuback{PacketID: 2}, []byte{0xB0, 2, 0, 2}},
		{"PINGREQ", V311, &Pingreq{}, []byte{0xC0, 0}},
		{"3.1.1 DISCONNECT", V311, &Disconnect{}, []byte{0xE0, 0}},
		{"v5 CONNECT with Session Expiry", V5,
			&Connect{ProtocolName: "MQTT", ProtocolVersion: V5, CleanStart: true, KeepAlive: 10, Props: Properties{SessionExpiry: 0x78}},
			[]byte{0x10, 18, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 10, 5, 0x11, 0, 0, 0, 0x78, 0, 0}},
		{"v5 PUBLISH with Topic Alias", V5,
			&Publish{Topic: "t", Payload: []byte("x"), Props: Properties{TopicAlias: 1}},
			[]byte{0x30, 8, 0, 1, 't', 3, 0x23, 0, 1, 'x'}},
		{"v5 PUBACK short form (3.4.2.1)", V5, &Puback{PacketID: 5}, []byte{0x40, 2, 0, 5}},
		{"v5 PUBACK reason only", V5, &Puback{PacketID: 5, ReasonCode: NoMatchingSubscribers}, []byte{0x40, 3, 0, 5, 0x10}},
		{"v5 PUBREC with reason string", V5, &Pubrec{PacketID: 5, ReasonCode: QuotaExceeded, Props: Properties{ReasonString: "q"}},
			[]byte{0x50, 8, 0, 5, 0x97, 4, 0x1F, 0, 1, 'q'}},
		{"v5 SUBSCRIBE options", V5,
			&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 1}}},
			[]byte{0x82, 7, 0, 1, 0, 0, 1, 'a', 0x1E}},
		{"v5 SUBACK", V5, &Suback{PacketID: 1, ReasonCodes: []ReasonCode{GrantedQoS2, NotAuthorized}},
			[]byte{0x90, 5, 0, 1, 0, 0x02, 0x87}},
		{"v5 CONNACK", V5, &Connack{ReasonCode: NotAuthorized}, []byte{0x20, 3, 0, 0x87, 0}},
		{"v5 DISCONNECT short", V5, &Disconnect{}, []byte{0xE0, 0}},
		{"v5 DISCONNECT with will", V5, &Disconnect{ReasonCode: DisconnectWithWill}, []byte{0xE0, 1, 0x04}},
		{"v5 AUTH short", V5, &Auth{}, []byte{0xF0, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mustEncode(t, c.p, c.v)
			if !bytes.Equal(got, c.raw) {
				t.Fatalf("encode\n got %x\nwant %x", got, c.raw)
			}
			roundTrip(t, c.p, c.v)
		})
	}
}

// TestDecodeLongForms checks that v5 acknowledgements in their long forms
// decode to the same packet as the short forms (3.4.2.1).
func TestDecodeLongForms(t *testing.T) {
	for _, raw := range [][]byte{
		{0x40, 3, 0, 5, 0},       // reason code, no properties
		{0x40, 4, 0, 5, 0, 0},    // reason code, empty properties
		{0xE0, 2, 0, 0},          // DISCONNECT with empty properties
		{0x62, 4, 0, 5, 0, 0},    // PUBREL
		{0xF0, 2, 0x00, 0},       // AUTH
		{0x70, 3, 0, 5, 0x00},    // PUBCOMP
		{0x50, 4, 0, 5, 0x00, 0}, // PUBREC
	} {
		p, err := decodeRaw(raw, V5)
		if err != nil {
			t.Fatalf("%x: %v", raw, err)
		}
		short := mustEncode(t, p, V5)
		if len(short) >= len(raw) {
			t.Errorf("%x re-encoded as %x, want the short form", raw, short)
		}
	}
}

// TestVersionSpecificFieldsIgnored checks that v5-only fields vanish in 3.1.1.
func TestVersionSpecificFieldsIgnored(t *testing.T) {
	p := &Publish{Topic: "t", Payload: []byte("x"), Props: Properties{MessageExpiry: 5}}
	raw := mustEncode(t, p, V311)
	if !bytes.Equal(raw, []byte{0x30, 4, 0, 1, 't', 'x'}) {
		t.Fatalf("got %x", raw)
	}
	a := &Puback{PacketID: 1, ReasonCode: NotAuthorized, Props: ackProps5()}
	if raw := mustEncode(t, a, V311); !bytes.Equal(raw, []byte{0x40, 2, 0, 1}) {
		t.Fatalf("got %x", raw)
	}
	s := &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a", QoS: 1, NoLocal: true, RetainHandling: 2}}}
	if raw := mustEncode(t, s, V311); raw[len(raw)-1] != 1 {
		t.Fatalf("3.1.1 options byte %#x, want 0x01", raw[len(raw)-1])
	}
	u := &Unsuback{PacketID: 3, ReasonCodes: []ReasonCode{Success}}
	if raw := mustEncode(t, u, V311); !bytes.Equal(raw, []byte{0xB0, 2, 0, 3}) {
		t.Fatalf("got %x", raw)
	}
	// A 3.1.1 CONNACK given an MQTT 5 reason code sends the 3.1.1 equivalent.
	c := &Connack{ReasonCode: BadUsernameOrPassword}
	if raw := mustEncode(t, c, V311); !bytes.Equal(raw, []byte{0x20, 2, 0, 4}) {
		t.Fatalf("got %x", raw)
	}
}

// TestConnectDefaults checks what Append fills in for a sparse CONNECT.
func TestConnectDefaults(t *testing.T) {
	p := &Connect{ClientID: "c", Username: "u", Password: []byte("p")}
	raw := mustEncode(t, p, V311)
	got, err := decodeRaw(raw, V311)
	if err != nil {
		t.Fatal(err)
	}
	c := got.(*Connect)
	if c.ProtocolName != "MQTT" || c.ProtocolVersion != V311 || !c.UsernameFlag || !c.PasswordFlag {
		t.Fatalf("got %+v", c)
	}
	raw = mustEncode(t, &Connect{ClientID: "c"}, V31)
	if got, err := decodeRaw(raw, V311); err != nil || got.(*Connect).ProtocolName != "MQIsdp" {
		t.Fatalf("3.1 default name: %v %v", got, err)
	}
}

// TestDecodeReuse decodes different packets into one struct and checks that
// nothing leaks from the previous packet.
func TestDecodeReuse(t *testing.T) {
	var p Publish
	first := mustEncode(t, &Publish{QoS: 1, PacketID: 3, Topic: "a", Payload: []byte("x"),
		Props: Properties{ContentType: "c", User: []UserProperty{{"k", "v"}}}}, V5)
	second := mustEncode(t, &Publish{Topic: "b"}, V5)
	for _, raw := range [][]byte{first, second} {
		fh, n, _ := DecodeFixedHeader(raw)
		if err := p.Decode(fh, raw[n:], V5); err != nil {
			t.Fatal(err)
		}
	}
	if p.PacketID != 0 || p.Payload != nil || p.Props.Has(PropContentType) || len(p.Props.User) != 0 || p.Topic != "b" {
		t.Fatalf("stale fields after reuse: %+v", p)
	}

	var s Subscribe
	for _, sub := range []*Subscribe{
		{PacketID: 1, Subscriptions: []Subscription{{Filter: "a"}, {Filter: "b"}}},
		{PacketID: 2, Subscriptions: []Subscription{{Filter: "c"}}},
	} {
		raw := mustEncode(t, sub, V311)
		fh, n, _ := DecodeFixedHeader(raw)
		if err := s.Decode(fh, raw[n:], V311); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.Subscriptions) != 1 || s.Subscriptions[0].Filter != "c" {
		t.Fatalf("got %+v", s.Subscriptions)
	}
}

// TestAliasing documents that decoded fields share the body's memory.
func TestAliasing(t *testing.T) {
	raw := mustEncode(t, &Publish{Topic: "t", Payload: []byte("abc")}, V311)
	fh, n, _ := DecodeFixedHeader(raw)
	var p Publish
	if err := p.Decode(fh, raw[n:], V311); err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] = 'z'
	if string(p.Payload) != "abz" {
		t.Fatalf("payload %q does not alias the body", p.Payload)
	}
	// ReadPacket copies: the packet survives changes to the source.
	src := mustEncode(t, &Publish{Topic: "t", Payload: []byte("abc")}, V311)
	pk, err := ReadPacket(bytes.NewReader(src), V311, 0)
	if err != nil {
		t.Fatal(err)
	}
	src[len(src)-1] = 'z'
	if string(pk.(*Publish).Payload) != "abc" {
		t.Fatal("ReadPacket result aliases its source")
	}
}

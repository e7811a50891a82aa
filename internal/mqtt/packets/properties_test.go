package packets

import (
	"errors"
	"reflect"
	"testing"
)

// TestPresence checks that an explicitly set zero survives a round trip and
// is told apart from an absent property.
func TestPresence(t *testing.T) {
	var props Properties
	props.Set(PropRetainAvailable) // "retain not available" is the value 0
	props.Set(PropSessionExpiry)
	props.MaximumQoS = 1
	ack := &Connack{Props: props}
	raw := mustEncode(t, ack, V5)
	got, err := decodeRaw(raw, V5)
	if err != nil {
		t.Fatal(err)
	}
	gp := &got.(*Connack).Props
	for id, want := range map[PropID]bool{
		PropRetainAvailable: true, PropSessionExpiry: true, PropMaximumQoS: true,
		PropReceiveMaximum: false, PropUser: false, PropWildcardSubAvailable: false,
	} {
		if gp.Has(id) != want {
			t.Errorf("Has(%#x) = %v, want %v", byte(id), gp.Has(id), want)
		}
	}
	if gp.RetainAvailable != 0 || gp.MaximumQoS != 1 {
		t.Fatalf("values %+v", gp)
	}

	gp.Clear(PropRetainAvailable)
	gp.Clear(PropMaximumQoS)
	if gp.Has(PropRetainAvailable) || gp.Has(PropMaximumQoS) || gp.MaximumQoS != 0 {
		t.Fatal("Clear")
	}
	if gp.Has(200) {
		t.Fatal("Has of an unknown id")
	}
}

// TestEmptyBinaryProperty checks that a present, empty Correlation Data is
// kept apart from an absent one.
func TestEmptyBinaryProperty(t *testing.T) {
	raw := pk(0x30, str("t"), 3, 0x09, 0, 0)
	p, err := decodeRaw(raw, V5)
	if err != nil {
		t.Fatal(err)
	}
	pub := p.(*Publish)
	if !pub.Props.Has(PropCorrelationData) || pub.Props.CorrelationData == nil || len(pub.Props.CorrelationData) != 0 {
		t.Fatalf("%+v", pub.Props)
	}
	if again := mustEncode(t, pub, V5); string(again) != string(raw) {
		t.Fatalf("re-encoded %x, want %x", again, raw)
	}
}

func TestResetKeepsCapacity(t *testing.T) {
	p := Properties{User: make([]UserProperty, 3, 8), SubscriptionIDs: []uint32{1, 2}, ContentType: "x"}
	p.Set(PropTopicAlias)
	p.Reset()
	if cap(p.User) != 8 || len(p.User) != 0 || len(p.SubscriptionIDs) != 0 || p.ContentType != "" || p.Has(PropTopicAlias) {
		t.Fatalf("%+v", p)
	}
}

// TestEncodeRejectsForeignProperties checks that Append refuses to send a
// property the packet may not carry, rather than produce a malformed packet.
func TestEncodeRejectsForeignProperties(t *testing.T) {
	cases := []Packet{
		&Publish{Topic: "t", Props: Properties{SessionExpiry: 1}},
		&Puback{PacketID: 1, Props: Properties{TopicAlias: 1}},
		&Connect{ClientID: "c", Props: Properties{TopicAlias: 1}},
		&Connect{ClientID: "c", WillTopic: "w", WillProps: Properties{SessionExpiry: 1}},
		&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a"}}, Props: Properties{SubscriptionIDs: []uint32{1, 2}}},
		&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a"}}, Props: Properties{SubscriptionIDs: []uint32{0}}},
		&Unsubscribe{PacketID: 1, Filters: []string{"a"}, Props: Properties{ReasonString: "r"}},
		&Disconnect{Props: Properties{AuthMethod: "m"}},
		&Auth{Props: Properties{SessionExpiry: 1}},
	}
	for _, p := range cases {
		if raw, err := p.Append(nil, V5); err == nil {
			t.Errorf("%v encoded as %x", p.Type(), raw)
		}
	}
}

// TestAllowedProperties walks the table of spec 2.2.2.2: every property id
// is decoded in every packet, and accepted exactly where the table allows it.
func TestAllowedProperties(t *testing.T) {
	allowed := map[string][]PropID{
		"CONNECT": {PropSessionExpiry, PropAuthMethod, PropAuthData, PropRequestProblemInfo,
			PropRequestResponseInfo, PropReceiveMaximum, PropTopicAliasMaximum, PropUser, PropMaximumPacketSize},
		"will": {PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
			PropCorrelationData, PropWillDelay, PropUser},
		"CONNACK": {PropSessionExpiry, PropAssignedClientID, PropServerKeepAlive, PropAuthMethod,
			PropAuthData, PropResponseInfo, PropServerReference, PropReasonString, PropReceiveMaximum,
			PropTopicAliasMaximum, PropMaximumQoS, PropRetainAvailable, PropUser,
			PropMaximumPacketSize, PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable},
		"PUBLISH": {PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
			PropCorrelationData, PropSubscriptionID, PropTopicAlias, PropUser},
		"PUBACK":      {PropReasonString, PropUser},
		"SUBSCRIBE":   {PropSubscriptionID, PropUser},
		"SUBACK":      {PropReasonString, PropUser},
		"UNSUBSCRIBE": {PropUser},
		"UNSUBACK":    {PropReasonString, PropUser},
		"DISCONNECT":  {PropSessionExpiry, PropServerReference, PropReasonString, PropUser},
		"AUTH":        {PropAuthMethod, PropAuthData, PropReasonString, PropUser},
	}
	// A valid encoding of each property with a non-zero value.
	value := func(id PropID) []byte {
		switch propKinds[id] {
		case wireByte:
			return []byte{byte(id), 1}
		case wireU16:
			return []byte{byte(id), 0, 1}
		case wireU32:
			return []byte{byte(id), 0, 0, 0, 1}
		case wireVarInt:
			return []byte{byte(id), 1}
		case wireString:
			return cat(byte(id), str("a"))
		case wireBinary:
			return cat(byte(id), str("a"))
		case wirePair:
			return cat(byte(id), str("k"), str("v"))
		}
		return []byte{byte(id), 0}
	}
	block := func(id PropID) []byte {
		b := value(id)
		if id == PropAuthData {
			b = append(b, value(PropAuthMethod)...) // data needs a method
		}
		return append(AppendVarInt(nil, len(b)), b...)
	}
	build := map[string]func([]byte) []byte{
		"CONNECT":     func(p []byte) []byte { return pk(0x10, connectHead(5, 2), p, str("c")) },
		"will":        func(p []byte) []byte { return pk(0x10, connectHead(5, 6), 0, str("c"), p, str("w"), str("x")) },
		"CONNACK":     func(p []byte) []byte { return pk(0x20, 0, 0, p) },
		"PUBLISH":     func(p []byte) []byte { return pk(0x30, str("t"), p) },
		"PUBACK":      func(p []byte) []byte { return pk(0x40, 0, 1, 0, p) },
		"SUBSCRIBE":   func(p []byte) []byte { return pk(0x82, 0, 1, p, str("f"), 0) },
		"SUBACK":      func(p []byte) []byte { return pk(0x90, 0, 1, p, 0) },
		"UNSUBSCRIBE": func(p []byte) []byte { return pk(0xA2, 0, 1, p, str("f")) },
		"UNSUBACK":    func(p []byte) []byte { return pk(0xB0, 0, 1, p, 0) },
		"DISCONNECT":  func(p []byte) []byte { return pk(0xE0, 0, p) },
		"AUTH":        func(p []byte) []byte { return pk(0xF0, 0, p) },
	}
	for name, ids := range allowed {
		ok := map[PropID]bool{}
		for _, id := range ids {
			ok[id] = true
		}
		for id := PropID(1); id < 0x30; id++ {
			raw := build[name](block(id))
			p, err := decodeRaw(raw, V5)
			switch {
			case propKinds[id] == wireNone:
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("%s unknown property %#x: %v", name, byte(id), err)
				}
			case ok[id] && err != nil:
				t.Errorf("%s property %#x rejected: %v", name, byte(id), err)
			case ok[id]:
				again := mustEncode(t, p, V5)
				if q, err := decodeRaw(again, V5); err != nil || !reflect.DeepEqual(p, q) {
					t.Errorf("%s property %#x: %x re-encoded as %x: %v", name, byte(id), raw, again, err)
				}
			case !errors.Is(err, ErrMalformed):
				t.Errorf("%s property %#x: got %v, want malformed", name, byte(id), err)
			}
		}
	}
}

// TestMultipleValues checks the two properties that may repeat.
func TestMultipleValues(t *testing.T) {
	raw := pk(0x30, str("t"), 5, 0x0B, 1, 0x0B, 0x85, 0x01)
	p, err := decodeRaw(raw, V5)
	if err != nil {
		t.Fatal(err)
	}
	if ids := p.(*Publish).Props.SubscriptionIDs; len(ids) != 2 || ids[0] != 1 || ids[1] != 133 {
		t.Fatalf("ids %v", ids)
	}
	raw = pk(0xE0, 0, 14, 0x26, str("k"), str("1"), 0x26, str("k"), str("2"))
	p, err = decodeRaw(raw, V5)
	if err != nil {
		t.Fatal(err)
	}
	if u := p.(*Disconnect).Props.User; len(u) != 2 || u[0].Value != "1" || u[1].Value != "2" {
		t.Fatalf("user %v", u)
	}
}

func TestClone(t *testing.T) {
	raw := mustEncode(t, &Publish{Topic: "t", Props: v5PublishProps()}, V5)
	p, err := decodeRaw(raw, V5)
	if err != nil {
		t.Fatal(err)
	}
	orig := &p.(*Publish).Props
	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatalf("clone differs:\n%+v\n%+v", c, orig)
	}
	for i := range raw {
		raw[i] = 0xAA // scribble over the buffer the original aliases
	}
	want := v5PublishProps()
	want.set = want.present()
	if !reflect.DeepEqual(c, &want) {
		t.Fatalf("clone aliases the buffer: %+v", c)
	}
	if e := (&Properties{CorrelationData: []byte{}}).Clone(); e.CorrelationData == nil {
		t.Fatal("empty correlation data became absent")
	}
}

// Present answers what Has answers, for every identifier.
func TestPresentAgreesWithHas(t *testing.T) {
	var p Properties
	p.ContentType = "text/plain"
	p.MessageExpiry = 60
	p.Set(PropPayloadFormat) // present with its zero value
	p.User = []UserProperty{{Key: "k", Value: "v"}}
	set := p.Present()
	for id := range PropID(70) {
		if set.Has(id) != p.Has(id) {
			t.Errorf("property %#x: Present says %v, Has %v", byte(id), set.Has(id), p.Has(id))
		}
	}
	if !set.Has(PropPayloadFormat) || !set.Has(PropContentType) || set.Has(PropResponseTopic) {
		t.Errorf("Present = %#x", uint64(set))
	}
}

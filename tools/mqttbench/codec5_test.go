package main

import (
	"bytes"
	"testing"
)

// Expected encodings are written out byte by byte from the MQTT 5.0
// specification's field descriptions (chapter 3), not produced by the
// encoder under test.

func TestAppendConnect5(t *testing.T) {
	got := appendConnect5(nil, connectOptions{clientID: "ab", keepAlive: 300, cleanSession: true, v5: true})
	want := []byte{
		0x10, 15, // CONNECT, remaining length
		0, 4, 'M', 'Q', 'T', 'T', // protocol name
		5,     // protocol level 5.0
		0x02,  // Clean Start
		1, 44, // keep-alive 300
		0,              // property length: no properties
		0, 2, 'a', 'b', // client id
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("CONNECT\n got % x\nwant % x", got, want)
	}

	got = appendConnect5(nil, connectOptions{clientID: "c", username: "u", password: "pw"})
	want = []byte{
		0x10, 21,
		0, 4, 'M', 'Q', 'T', 'T', 5,
		0xC0, // user name + password, no Clean Start
		0, 0,
		0,
		0, 1, 'c',
		0, 1, 'u',
		0, 2, 'p', 'w',
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("CONNECT with credentials\n got % x\nwant % x", got, want)
	}

	// 5.0 allows a password without a user name (section 3.1.2.9).
	got = appendConnect5(nil, connectOptions{clientID: "c", password: "pw"})
	want = []byte{0x10, 18, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x40, 0, 0, 0, 0, 1, 'c', 0, 2, 'p', 'w'}
	if !bytes.Equal(got, want) {
		t.Fatalf("CONNECT with password only\n got % x\nwant % x", got, want)
	}
}

func TestParseConnack5(t *testing.T) {
	// Minimal success: flags, reason code, property length 0.
	sp, reason, lim, err := parseConnack5([]byte{0x01, 0x00, 0x00})
	if err != nil || !sp || reason != 0 || lim != defaultLimits {
		t.Fatalf("minimal CONNACK: %v %#x %+v %v", sp, reason, lim, err)
	}

	props := []byte{
		0x21, 0x00, 0x14, // Receive Maximum 20
		0x27, 0x00, 0x10, 0x00, 0x00, // Maximum Packet Size 1 MiB
		0x13, 0x00, 0x1E, // Server Keep Alive 30
		0x24, 0x01, // Maximum QoS 1
		0x22, 0x00, 0x0A, // Topic Alias Maximum 10: skipped
		0x1F, 0x00, 0x02, 'o', 'k', // Reason String: skipped
		0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b', // User Property: skipped
	}
	body := append([]byte{0x00, 0x00, byte(len(props))}, props...)
	_, reason, lim, err = parseConnack5(body)
	wantLim := serverLimits{receiveMax: 20, maxPacket: 1 << 20, keepAlive: 30, maxQoS: 1}
	if err != nil || reason != 0 || lim != wantLim {
		t.Fatalf("CONNACK with properties: %#x %+v %v, want %+v", reason, lim, err, wantLim)
	}

	// A refusal in the 3.1.1 format (a broker without 5.0).
	if _, reason, _, err := parseConnack5([]byte{0x00, 0x01}); err != nil || reason != 0x01 {
		t.Fatalf("3.1.1-format refusal: %#x %v", reason, err)
	}
	// A 5.0 refusal with a reason string.
	if _, reason, _, err := parseConnack5([]byte{0x00, 0x87, 0x04, 0x1F, 0x00, 0x01, 'x'}); err != nil || reason != 0x87 {
		t.Fatalf("refusal 0x87: %#x %v", reason, err)
	}

	for name, body := range map[string][]byte{
		"one byte":                {0x00},
		"receive maximum 0":       {0x00, 0x00, 0x03, 0x21, 0x00, 0x00},
		"maximum packet size 0":   {0x00, 0x00, 0x05, 0x27, 0, 0, 0, 0},
		"maximum QoS 2":           {0x00, 0x00, 0x02, 0x24, 0x02},
		"unknown property 0x05":   {0x00, 0x00, 0x02, 0x05, 0x00},
		"truncated two-byte":      {0x00, 0x00, 0x02, 0x21, 0x00},
		"string beyond props":     {0x00, 0x00, 0x04, 0x1F, 0x00, 0x05, 'x'},
		"property length too big": {0x00, 0x00, 0x09, 0x21, 0x00, 0x01},
		"bytes after properties":  {0x00, 0x00, 0x00, 0xFF},
		"five-byte varint length": {0x00, 0x00, 0x80, 0x80, 0x80, 0x80, 0x01},
	} {
		if _, _, _, err := parseConnack5(body); err == nil {
			t.Errorf("%s: % x accepted", name, body)
		}
	}
}

func TestAppendSubscribe5(t *testing.T) {
	got := appendSubscribe5(nil, 7, "a/+", 1)
	want := []byte{
		0x82, 9, // SUBSCRIBE, flags 0010 [MQTT-3.8.1-1]
		0, 7, // packet id
		0,                      // property length
		0, 3, 'a', '/', '+', 1, // filter, options: QoS 1
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("SUBSCRIBE\n got % x\nwant % x", got, want)
	}
}

func TestParseSuback5(t *testing.T) {
	if id, codes, err := parseSuback5([]byte{0, 9, 0, 1}); err != nil || id != 9 || !bytes.Equal(codes, []byte{1}) {
		t.Fatalf("SUBACK: %d % x %v", id, codes, err)
	}
	// Reason String property, then a refusal.
	if id, codes, err := parseSuback5([]byte{0, 9, 3, 0x1F, 0, 0, 0x87}); err != nil || id != 9 || !bytes.Equal(codes, []byte{0x87}) {
		t.Fatalf("SUBACK with properties: %d % x %v", id, codes, err)
	}
	for _, body := range [][]byte{{0, 9, 0}, {0, 9}, {0, 9, 4, 0x1F, 0, 0}, {0, 9, 2, 0x77, 0, 1}} {
		if _, _, err := parseSuback5(body); err == nil {
			t.Errorf("% x accepted", body)
		}
	}
}

func TestAppendPublish5(t *testing.T) {
	got := appendPublish5(nil, "t/1", 0, 99, nil, []byte("hi"))
	want := []byte{0x30, 8, 0, 3, 't', '/', '1', 0, 'h', 'i'} // no packet id at QoS 0; property length 0
	if !bytes.Equal(got, want) {
		t.Fatalf("PUBLISH QoS 0\n got % x\nwant % x", got, want)
	}
	got = appendPublish5(nil, "t", 2, 0x0102, nil, []byte("x"))
	want = []byte{0x34, 7, 0, 1, 't', 1, 2, 0, 'x'}
	if !bytes.Equal(got, want) {
		t.Fatalf("PUBLISH QoS 2\n got % x\nwant % x", got, want)
	}

	props := appendPublishProps(nil, 3600, "k", "v")
	wantProps := []byte{
		0x02, 0x00, 0x00, 0x0E, 0x10, // Message Expiry Interval 3600
		0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // User Property k=v
	}
	if !bytes.Equal(props, wantProps) {
		t.Fatalf("properties\n got % x\nwant % x", props, wantProps)
	}
	got = appendPublish5(nil, "t", 1, 5, props, []byte("x"))
	want = append([]byte{0x32, 19, 0, 1, 't', 0, 5, 12}, wantProps...)
	want = append(want, 'x')
	if !bytes.Equal(got, want) {
		t.Fatalf("PUBLISH QoS 1 with properties\n got % x\nwant % x", got, want)
	}
}

func TestParsePublish5(t *testing.T) {
	// QoS 1, id 5, topic "t", properties as sent by -v5-props but with
	// the expiry counted down by a second, payload "x".
	body := []byte{0, 1, 't', 0, 5, 12, 0x02, 0, 0, 0x0E, 0x0F, 0x26, 0, 1, 'k', 0, 1, 'v', 'x'}
	topic, props, payload, qos, id, err := parsePublish5(0x02, body)
	if err != nil || string(topic) != "t" || len(props) != 12 || string(payload) != "x" || qos != 1 || id != 5 {
		t.Fatalf("topic %q props % x payload %q qos %d id %d err %v", topic, props, payload, qos, id, err)
	}
	if !publishPropsOK(props, 3600, "k", "v") {
		t.Error("properties with expiry 3599 rejected")
	}
	if publishPropsOK(props, 3600, "k", "w") || publishPropsOK(props, 3000, "k", "v") {
		t.Error("wrong value or expiry above the maximum accepted")
	}
	if publishPropsOK([]byte{0x26, 0, 1, 'k', 0, 1, 'v'}, 3600, "k", "v") {
		t.Error("missing expiry accepted")
	}
	if publishPropsOK([]byte{0x02, 0, 0, 0, 0, 0x26, 0, 1, 'k', 0, 1, 'v'}, 3600, "k", "v") {
		t.Error("expiry 0 accepted")
	}
	// Other properties (a Subscription Identifier, a Content Type) are
	// allowed around ours.
	if !publishPropsOK([]byte{0x0B, 0x81, 0x01, 0x02, 0, 0, 0, 9, 0x03, 0, 1, 'c', 0x26, 0, 1, 'k', 0, 1, 'v'}, 3600, "k", "v") {
		t.Error("properties among others rejected")
	}

	// QoS 0: no packet id, empty properties, empty payload.
	topic, props, payload, qos, id, err = parsePublish5(0x00, []byte{0, 2, 'a', 'b', 0})
	if err != nil || string(topic) != "ab" || len(props) != 0 || len(payload) != 0 || qos != 0 || id != 0 {
		t.Fatalf("QoS 0: %q % x %q %d %d %v", topic, props, payload, qos, id, err)
	}
	for name, c := range map[string]struct {
		flags byte
		body  []byte
	}{
		"QoS 3":                     {0x06, []byte{0, 1, 'a', 0}},
		"no property length":        {0x00, []byte{0, 1, 'a'}},
		"properties beyond body":    {0x02, []byte{0, 1, 'a', 0, 1, 5, 0x01}},
		"QoS 1 without a packet id": {0x02, []byte{0, 1, 'a', 0}},
	} {
		if _, _, _, _, _, err := parsePublish5(c.flags, c.body); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseAck5(t *testing.T) {
	cases := []struct {
		body   []byte
		id     uint16
		reason byte
	}{
		{[]byte{0x12, 0x34}, 0x1234, 0x00},                           // short form: success
		{[]byte{0x12, 0x34, 0x10}, 0x1234, 0x10},                     // reason code only
		{[]byte{0x12, 0x34, 0x87, 0x00}, 0x1234, 0x87},               // reason code, no properties
		{[]byte{0x12, 0x34, 0x92, 4, 0x1F, 0, 1, 'x'}, 0x1234, 0x92}, // with a Reason String
	}
	for _, c := range cases {
		id, reason, err := parseAck5(c.body)
		if err != nil || id != c.id || reason != c.reason {
			t.Errorf("% x: id %#x reason %#x err %v", c.body, id, reason, err)
		}
	}
	for _, body := range [][]byte{{0x12}, {0x12, 0x34, 0, 5, 0x1F, 0, 1, 'x'}, {0x12, 0x34, 0, 0, 0xFF}, {0x12, 0x34, 0, 2, 0x99, 0}} {
		if _, _, err := parseAck5(body); err == nil {
			t.Errorf("% x accepted", body)
		}
	}
	// We send the short form, identical to 3.1.1's.
	if got := appendAck(nil, typePubrel, 0x1234); !bytes.Equal(got, []byte{0x62, 2, 0x12, 0x34}) {
		t.Errorf("PUBREL: % x", got)
	}
}

func TestDisconnect5(t *testing.T) {
	if got := appendDisconnect5(nil, 0x00); !bytes.Equal(got, []byte{0xE0, 1, 0x00}) {
		t.Errorf("DISCONNECT: % x", got)
	}
	for _, c := range []struct {
		body   []byte
		reason byte
	}{
		{nil, 0x00},                              // remaining length 0: normal disconnection
		{[]byte{0x8E}, 0x8E},                     // session taken over
		{[]byte{0x8B, 0}, 0x8B},                  // server shutting down, no properties
		{[]byte{0x95, 4, 0x1F, 0, 1, 'x'}, 0x95}, // packet too large, reason string
		{[]byte{0x8D, 3, 0x1C, 0, 0}, 0x8D},      // keep alive timeout, server reference
	} {
		if reason, err := parseDisconnect5(c.body); err != nil || reason != c.reason {
			t.Errorf("% x: reason %#x err %v", c.body, reason, err)
		}
	}
	for _, body := range [][]byte{
		{0x81, 5, 0x1F, 0, 1, 'x'},  // properties beyond the packet
		{0x81, 3, 0x26, 0, 0, 0, 0}, // bytes after the properties
		{0x81, 3, 0x26, 0, 0},       // truncated string pair
		{0x81, 2, 0x00, 0x00},       // property id 0
	} {
		if _, err := parseDisconnect5(body); err == nil {
			t.Errorf("% x accepted", body)
		}
	}
}

func TestNextPropVarint(t *testing.T) {
	id, val, rest, err := nextProp([]byte{0x0B, 0x80, 0x01, 0x01, 0x01})
	if err != nil || id != propSubscriptionID || !bytes.Equal(val, []byte{0x80, 0x01}) || !bytes.Equal(rest, []byte{0x01, 0x01}) {
		t.Fatalf("id %#x val % x rest % x err %v", id, val, rest, err)
	}
	if v, n, err := readVarint([]byte{0xFF, 0xFF, 0xFF, 0x7F}); err != nil || v != 268435455 || n != 4 {
		t.Fatalf("readVarint max: %d %d %v", v, n, err)
	}
	if _, _, err := readVarint([]byte{0x80, 0x80}); err == nil {
		t.Fatal("truncated varint accepted")
	}
}

// The 5.0 per-message paths must not allocate either.
func TestCodec5ZeroAllocs(t *testing.T) {
	payload := make([]byte, 64)
	buf := make([]byte, 0, 256)
	props := appendPublishProps(nil, 3600, "k", "v")
	pkt := appendPublish5(nil, "bench/1", 1, 1, props, payload)
	ack := []byte{0x12, 0x34, 0x00, 0x00}
	var sink int
	allocs := testing.AllocsPerRun(1000, func() {
		b := appendPublish5(buf[:0], "bench/1", 1, 77, props, payload)
		b = appendAck(b, typePuback, 77)
		stampPayload(b[len(b)-4-len(payload):], 1, 2, 3)
		_, flags, body, n, _, _ := parsePacket(pkt)
		topic, pr, pl, _, id, _ := parsePublish5(flags, body)
		if publishPropsOK(pr, 3600, "k", "v") {
			sink++
		}
		_, seq, _, _ := readPayload(pl)
		aid, _, _ := parseAck5(ack)
		sink += n + len(topic) + int(id) + int(seq) + int(aid)
	})
	if allocs != 0 {
		t.Fatalf("5.0 codec path allocates %.1f times per message", allocs)
	}
	_ = sink
}

func BenchmarkParsePublish5(b *testing.B) {
	payload := make([]byte, 64)
	stampPayload(payload, 1, 2, 3)
	pkt := appendPublish5(nil, "bench/1", 1, 77, appendPublishProps(nil, 3600, "k", "v"), payload)
	b.ReportAllocs()
	for b.Loop() {
		_, flags, body, _, _, _ := parsePacket(pkt)
		_, pr, pl, _, _, _ := parsePublish5(flags, body)
		publishPropsOK(pr, 3600, "k", "v")
		readPayload(pl)
	}
}

// -persistent-subs in 5.0: a Session Expiry Interval property.
func TestAppendConnect5SessionExpiry(t *testing.T) {
	got := appendConnect5(nil, connectOptions{clientID: "s", cleanSession: true, sessionExpiry: 3600, v5: true})
	want := []byte{
		0x10, 19,
		0, 4, 'M', 'Q', 'T', 'T', 5,
		0x02, 0, 0,
		5, 0x11, 0, 0, 0x0e, 0x10, // properties: Session Expiry Interval 3600
		0, 1, 's',
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("CONNECT with session expiry\n got % x\nwant % x", got, want)
	}
}

package main

import (
	"bytes"
	"testing"
)

// Expected encodings are written out byte by byte from the MQTT 3.1.1
// specification's field tables, not produced by the encoder under test.

func TestAppendConnect(t *testing.T) {
	got := appendConnect(nil, connectOptions{clientID: "ab", keepAlive: 300, cleanSession: true})
	want := []byte{
		0x10, 14, // CONNECT, remaining length
		0, 4, 'M', 'Q', 'T', 'T', // protocol name [MQTT-3.1.2-1]
		4,     // protocol level 3.1.1
		0x02,  // clean session
		1, 44, // keep-alive 300
		0, 2, 'a', 'b', // client id
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("CONNECT\n got % x\nwant % x", got, want)
	}

	got = appendConnect(nil, connectOptions{clientID: "c", username: "u", password: "pw"})
	want = []byte{
		0x10, 20,
		0, 4, 'M', 'Q', 'T', 'T', 4,
		0xC0, // user name + password, no clean session
		0, 0,
		0, 1, 'c',
		0, 1, 'u',
		0, 2, 'p', 'w',
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("CONNECT with credentials\n got % x\nwant % x", got, want)
	}
}

func TestAppendSubscribe(t *testing.T) {
	got := appendSubscribe(nil, 7, "a/+", 1)
	want := []byte{0x82, 8, 0, 7, 0, 3, 'a', '/', '+', 1} // flags 0010 [MQTT-3.8.1-1]
	if !bytes.Equal(got, want) {
		t.Fatalf("SUBSCRIBE\n got % x\nwant % x", got, want)
	}
}

func TestAppendPublish(t *testing.T) {
	got := appendPublish(nil, "t/1", 0, 99, []byte("hi"))
	want := []byte{0x30, 7, 0, 3, 't', '/', '1', 'h', 'i'} // no packet id at QoS 0
	if !bytes.Equal(got, want) {
		t.Fatalf("PUBLISH QoS 0\n got % x\nwant % x", got, want)
	}
	got = appendPublish(nil, "t", 2, 0x0102, []byte("x"))
	want = []byte{0x34, 6, 0, 1, 't', 1, 2, 'x'}
	if !bytes.Equal(got, want) {
		t.Fatalf("PUBLISH QoS 2\n got % x\nwant % x", got, want)
	}
}

func TestAppendAcks(t *testing.T) {
	cases := []struct {
		typ  byte
		want []byte
	}{
		{typePuback, []byte{0x40, 2, 0x12, 0x34}},
		{typePubrec, []byte{0x50, 2, 0x12, 0x34}},
		{typePubrel, []byte{0x62, 2, 0x12, 0x34}}, // [MQTT-3.6.1-1]
		{typePubcomp, []byte{0x70, 2, 0x12, 0x34}},
	}
	for _, c := range cases {
		if got := appendAck(nil, c.typ, 0x1234); !bytes.Equal(got, c.want) {
			t.Errorf("ack type %d: got % x, want % x", c.typ, got, c.want)
		}
	}
	if got := appendPingreq(nil); !bytes.Equal(got, []byte{0xC0, 0}) {
		t.Errorf("PINGREQ: % x", got)
	}
	if got := appendDisconnect(nil); !bytes.Equal(got, []byte{0xE0, 0}) {
		t.Errorf("DISCONNECT: % x", got)
	}
}

func TestVarint(t *testing.T) {
	// Boundaries from the specification's table in section 2.2.3.
	cases := []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7F}},
		{128, []byte{0x80, 0x01}},
		{16383, []byte{0xFF, 0x7F}},
		{16384, []byte{0x80, 0x80, 0x01}},
		{2097151, []byte{0xFF, 0xFF, 0x7F}},
		{2097152, []byte{0x80, 0x80, 0x80, 0x01}},
		{268435455, []byte{0xFF, 0xFF, 0xFF, 0x7F}},
	}
	for _, c := range cases {
		got := appendVarint(nil, c.n)
		if !bytes.Equal(got, c.want) {
			t.Errorf("appendVarint(%d) = % x, want % x", c.n, got, c.want)
		}
		if varintLen(c.n) != len(c.want) {
			t.Errorf("varintLen(%d) = %d, want %d", c.n, varintLen(c.n), len(c.want))
		}
		// parsePacket must report the full size from the header alone.
		hdr := append([]byte{0x30}, c.want...)
		_, _, _, n, need, err := parsePacket(hdr)
		if err != nil || (c.n > 0 && n != 0) || need != len(hdr)+c.n {
			t.Errorf("parsePacket(header for %d) = n %d need %d err %v, want need %d", c.n, n, need, err, len(hdr)+c.n)
		}
	}
}

func TestParsePacketPartialAndMalformed(t *testing.T) {
	pkt := appendPublish(nil, "a/b", 1, 5, make([]byte, 200)) // two-byte length
	for i := 0; i < len(pkt); i++ {
		_, _, _, n, _, err := parsePacket(pkt[:i])
		if n != 0 || err != nil {
			t.Fatalf("prefix of %d bytes: n=%d err=%v, want incomplete", i, n, err)
		}
	}
	typ, flags, body, n, _, err := parsePacket(append(pkt, 0xC0, 0)) // followed by another packet
	if err != nil || n != len(pkt) || typ != typePublish || flags != 0x02 || len(body) != len(pkt)-3 {
		t.Fatalf("whole packet: typ %d flags %x body %d n %d err %v", typ, flags, len(body), n, err)
	}
	if _, _, _, _, _, err := parsePacket([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}); err != errMalformedLength {
		t.Fatalf("five-byte remaining length: err %v, want %v", err, errMalformedLength)
	}
	if _, _, _, _, _, err := parsePacket([]byte{0x30, 0x80, 0x80, 0x80, 0x80}); err != errMalformedLength {
		t.Fatalf("four continuation bytes: err %v, want %v", err, errMalformedLength)
	}
}

func TestParsePublish(t *testing.T) {
	for qos := byte(0); qos <= 2; qos++ {
		pkt := appendPublish(nil, "x/y", qos, 4242, []byte("payload"))
		_, flags, body, _, _, err := parsePacket(pkt)
		if err != nil {
			t.Fatal(err)
		}
		topic, payload, gotQoS, id, err := parsePublish(flags, body)
		if err != nil {
			t.Fatalf("QoS %d: %v", qos, err)
		}
		wantID := uint16(4242)
		if qos == 0 {
			wantID = 0
		}
		if string(topic) != "x/y" || string(payload) != "payload" || gotQoS != qos || id != wantID {
			t.Errorf("QoS %d: topic %q payload %q qos %d id %d", qos, topic, payload, gotQoS, id)
		}
	}
	if _, _, _, _, err := parsePublish(0x06, []byte{0, 1, 'a'}); err != errBadFlags {
		t.Errorf("QoS 3: err %v", err)
	}
	if _, _, _, _, err := parsePublish(0x02, []byte{0, 5, 'a'}); err != errShortPacket {
		t.Errorf("topic longer than body: err %v", err)
	}
	if _, _, _, _, err := parsePublish(0x02, []byte{0, 1, 'a', 0}); err != errShortPacket {
		t.Errorf("QoS 1 without full packet id: err %v", err)
	}
}

func TestParseAcksAndConnack(t *testing.T) {
	if sp, code, err := parseConnack([]byte{1, 5}); err != nil || !sp || code != 5 {
		t.Errorf("CONNACK: %v %d %v", sp, code, err)
	}
	if _, _, err := parseConnack([]byte{0}); err == nil {
		t.Error("short CONNACK accepted")
	}
	if id, codes, err := parseSuback([]byte{0, 9, 1, 0x80}); err != nil || id != 9 || !bytes.Equal(codes, []byte{1, 0x80}) {
		t.Errorf("SUBACK: %d % x %v", id, codes, err)
	}
	if id, err := parseAck([]byte{0xAB, 0xCD}); err != nil || id != 0xABCD {
		t.Errorf("ack: %x %v", id, err)
	}
	if _, err := parseAck([]byte{1, 2, 3}); err == nil {
		t.Error("three-byte 3.1.1 ack accepted")
	}
}

func TestPayloadStamp(t *testing.T) {
	p := make([]byte, 64)
	stampPayload(p, 7, 1<<40+3, 123456789)
	pub, seq, ts, ok := readPayload(p)
	if !ok || pub != 7 || seq != 1<<40+3 || ts != 123456789 {
		t.Fatalf("readPayload = %d %d %d %v", pub, seq, ts, ok)
	}
	p[0] = 'X'
	if _, _, _, ok := readPayload(p); ok {
		t.Error("bad magic accepted")
	}
	if _, _, _, ok := readPayload(p[:payloadHeader-1]); ok {
		t.Error("short payload accepted")
	}
}

// The per-message paths must not allocate: an allocation per message would
// put the load generator's GC in the measurement.
func TestCodecZeroAllocs(t *testing.T) {
	payload := make([]byte, 64)
	buf := make([]byte, 0, 256)
	pkt := appendPublish(nil, "bench/1", 1, 1, payload)
	var sink int
	allocs := testing.AllocsPerRun(1000, func() {
		b := appendPublish(buf[:0], "bench/1", 1, 77, payload)
		b = appendAck(b, typePuback, 77)
		stampPayload(b[len(b)-4-len(payload):], 1, 2, 3)
		_, flags, body, n, _, _ := parsePacket(pkt)
		topic, pl, _, id, _ := parsePublish(flags, body)
		_, seq, _, _ := readPayload(pl)
		sink += n + len(topic) + int(id) + int(seq)
	})
	if allocs != 0 {
		t.Fatalf("codec path allocates %.1f times per message", allocs)
	}
	_ = sink
}

func BenchmarkAppendPublish(b *testing.B) {
	payload := make([]byte, 64)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendPublish(buf[:0], "bench/1", 1, 77, payload)
	}
}

func BenchmarkParsePublish(b *testing.B) {
	payload := make([]byte, 64)
	stampPayload(payload, 1, 2, 3)
	pkt := appendPublish(nil, "bench/1", 1, 77, payload)
	b.ReportAllocs()
	for b.Loop() {
		_, flags, body, _, _, _ := parsePacket(pkt)
		_, pl, _, _, _ := parsePublish(flags, body)
		readPayload(pl)
	}
}

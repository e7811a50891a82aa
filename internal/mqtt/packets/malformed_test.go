package packets

import (
	"errors"
	"testing"
)

// cat concatenates bytes, strings and byte slices into one buffer.
func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case byte:
			b = append(b, p)
		case int:
			b = append(b, byte(p))
		case rune:
			b = append(b, byte(p))
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		default:
			panic("cat: unsupported part")
		}
	}
	return b
}

// str is an MQTT length-prefixed string.
func str(s string) []byte { return appendString(nil, s) }

// pk builds a packet from its first byte and body, computing the remaining length.
func pk(first byte, body ...any) []byte {
	b := cat(body...)
	return append(AppendVarInt([]byte{first}, len(b)), b...)
}

// connectHead is the start of a CONNECT for level, up to the flags byte.
func connectHead(level byte, flags byte) []byte {
	return cat(str("MQTT"), level, flags, 0, 60)
}

func TestMalformed(t *testing.T) {
	mqtt5 := func(flags byte) []byte { return connectHead(5, flags) }
	cases := []struct {
		name string
		v    Version
		raw  []byte
		want error
	}{
		// Fixed header.
		{"five-byte remaining length", V311, []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, ErrMalformed},
		{"four continuation bytes", V311, []byte{0x30, 0x80, 0x80, 0x80, 0x80}, ErrMalformed},
		{"empty header", V311, []byte{}, ErrIncomplete},
		{"one byte", V311, []byte{0x30}, ErrIncomplete},
		{"length cut", V311, []byte{0x30, 0xFF, 0xFF}, ErrIncomplete},
		{"type 0 [MQTT-2.2.2-2]", V311, []byte{0x00, 0}, ErrMalformed},
		{"PUBREL flags 0000 [MQTT-3.6.1-1]", V311, []byte{0x60, 2, 0, 1}, ErrMalformed},
		{"SUBSCRIBE flags 0000 [MQTT-3.8.1-1]", V311, pk(0x80, 0, 1, str("a"), 0), ErrMalformed},
		{"UNSUBSCRIBE flags 0000 [MQTT-3.10.1-1]", V311, pk(0xA0, 0, 1, str("a")), ErrMalformed},
		{"PINGREQ flags 0001", V311, []byte{0xC1, 0}, ErrMalformed},
		{"PUBACK flags 0010", V311, []byte{0x42, 2, 0, 1}, ErrMalformed},
		{"CONNECT flags 0001", V311, pk(0x11, connectHead(4, 2), str("c")), ErrMalformed},

		// PUBLISH.
		{"QoS 3 [MQTT-3.3.1-4]", V311, pk(0x36, str("a"), 0, 1), ErrMalformed},
		{"QoS 3 v5", V5, pk(0x36, str("a"), 0, 1, 0), ErrMalformed},
		{"QoS 1 packet id 0 [MQTT-2.3.1-1]", V311, pk(0x32, str("a"), 0, 0), ErrMalformed},
		{"QoS 2 packet id 0 v5 [MQTT5-2.2.1-3]", V5, pk(0x34, str("a"), 0, 0, 0), ErrMalformed},
		{"DUP with QoS 0 [MQTT-3.3.1-2]", V311, pk(0x38, str("a")), ErrMalformed},
		{"DUP with QoS 0 v5", V5, pk(0x38, str("a"), 0), ErrMalformed},
		{"topic invalid UTF-8 [MQTT-1.5.3-1]", V311, pk(0x30, str("\xC3\x28")), ErrMalformed},
		{"topic overlong encoding", V311, pk(0x30, str("\xC0\xAF")), ErrMalformed},
		{"topic U+0000 [MQTT-1.5.3-2]", V311, pk(0x30, str("a\x00b")), ErrMalformed},
		{"topic surrogate U+D800", V311, pk(0x30, str("\xED\xA0\x80")), ErrMalformed},
		{"topic with + [MQTT-3.3.2-2]", V311, pk(0x30, str("a/+")), ErrMalformed},
		{"topic with #", V5, pk(0x30, str("#"), 0), ErrMalformed},
		{"empty topic 3.1.1", V311, pk(0x30, str("")), ErrMalformed},
		{"empty topic v5 without alias", V5, pk(0x30, str(""), 0), ErrMalformed},
		{"topic truncated", V311, pk(0x30, 0, 5, "ab"), ErrMalformed},
		{"packet id truncated", V311, pk(0x32, str("a"), 0), ErrMalformed},
		{"v5 properties truncated", V5, pk(0x30, str("a"), 5, 0x23, 0), ErrMalformed},
		{"v5 property length past body", V5, pk(0x30, str("a"), 9), ErrMalformed},
		{"v5 duplicate property", V5, pk(0x30, str("a"), 6, 0x23, 0, 1, 0x23, 0, 2), ErrProtocolError},
		{"v5 property not allowed in PUBLISH", V5, pk(0x30, str("a"), 5, 0x11, 0, 0, 0, 1), ErrMalformed},
		{"v5 unknown property id", V5, pk(0x30, str("a"), 2, 0x05, 0), ErrMalformed},
		{"v5 topic alias 0 [MQTT5-3.3.2-8]", V5, pk(0x30, str("a"), 3, 0x23, 0, 0), ErrProtocolError},
		{"v5 payload format 2", V5, pk(0x30, str("a"), 2, 0x01, 2), ErrProtocolError},
		{"v5 subscription id 0", V5, pk(0x30, str("a"), 2, 0x0B, 0), ErrProtocolError},
		{"v5 response topic wildcard [MQTT5-3.3.2-14]", V5, pk(0x30, str("a"), 6, 0x08, str("r/#")), ErrProtocolError},
		{"v5 content type invalid UTF-8", V5, pk(0x30, str("a"), 5, 0x03, str("\xff\xfe")), ErrMalformed},
		{"v5 user property U+0000", V5, pk(0x30, str("a"), 8, 0x26, str("k"), str("\x00v")), ErrMalformed},
		{"v5 user property value missing", V5, pk(0x30, str("a"), 4, 0x26, str("k")), ErrMalformed},
		{"v5 property id varint too long", V5, pk(0x30, str("a"), 4, 0x80, 0x80, 0x80, 0x80), ErrMalformed},

		// Acknowledgements.
		{"PUBACK packet id 0", V311, []byte{0x40, 2, 0, 0}, ErrMalformed},
		{"PUBREC packet id 0 v5", V5, []byte{0x50, 3, 0, 0, 0x10}, ErrMalformed},
		{"PUBACK trailing bytes 3.1.1", V311, []byte{0x40, 3, 0, 1, 0}, ErrMalformed},
		{"PUBACK truncated", V311, []byte{0x40, 1, 0}, ErrMalformed},
		{"PUBACK v5 invalid reason code", V5, []byte{0x40, 3, 0, 1, 0x05}, ErrProtocolError},
		{"PUBREL v5 PUBACK-only reason code", V5, []byte{0x62, 3, 0, 1, 0x10}, ErrProtocolError},
		{"PUBACK v5 disallowed property", V5, []byte{0x40, 6, 0, 1, 0, 2, 0x01, 1}, ErrMalformed},
		{"PUBCOMP v5 trailing after properties", V5, []byte{0x70, 5, 0, 1, 0, 0, 9}, ErrMalformed},

		// CONNECT.
		{"bad protocol name [MQTT-3.1.2-1]", V311, pk(0x10, str("MQTX"), 4, 2, 0, 60, str("c")), ErrProtocolName},
		{"protocol name not UTF-8", V311, pk(0x10, str("MQ\xffT"), 4, 2, 0, 60, str("c")), ErrMalformed},
		{"unknown level [MQTT-3.1.2-2]", V311, pk(0x10, connectHead(6, 2), str("c")), ErrUnsupportedVersion},
		{"MQIsdp with level 4", V311, pk(0x10, str("MQIsdp"), 4, 2, 0, 60, str("c")), ErrUnsupportedVersion},
		{"MQTT with level 3", V311, pk(0x10, connectHead(3, 2), str("c")), ErrUnsupportedVersion},
		{"CONNECT truncated name", V311, pk(0x10, 0, 4, "MQ"), ErrMalformed},
		{"reserved flag [MQTT-3.1.2-3]", V311, pk(0x10, connectHead(4, 0x03), str("c")), ErrMalformed},
		{"reserved flag v5", V5, pk(0x10, mqtt5(0x01), 0, str("c")), ErrMalformed},
		{"will QoS without will [MQTT-3.1.2-11]", V311, pk(0x10, connectHead(4, 0x0A), str("c")), ErrMalformed},
		{"will retain without will [MQTT-3.1.2-15]", V311, pk(0x10, connectHead(4, 0x22), str("c")), ErrMalformed},
		{"will QoS 3 [MQTT-3.1.2-14]", V311, pk(0x10, connectHead(4, 0x1E), str("c"), str("w"), str("p")), ErrMalformed},
		{"password without user name [MQTT-3.1.2-22]", V311, pk(0x10, connectHead(4, 0x42), str("c"), str("p")), ErrMalformed},
		{"client id invalid UTF-8 [MQTT-3.1.3-4]", V311, pk(0x10, connectHead(4, 2), str("\xff")), ErrMalformed},
		{"client id truncated", V311, pk(0x10, connectHead(4, 2), 0, 5, "abc"), ErrMalformed},
		{"will topic missing", V311, pk(0x10, connectHead(4, 0x06), str("c")), ErrMalformed},
		{"will topic wildcard", V311, pk(0x10, connectHead(4, 0x06), str("c"), str("w/#"), str("p")), ErrMalformed},
		{"user name surrogate", V311, pk(0x10, connectHead(4, 0x82), str("c"), str("\xED\xBF\xBF")), ErrMalformed},
		{"password truncated", V311, pk(0x10, connectHead(4, 0xC2), str("c"), str("u"), 0, 3, "p"), ErrMalformed},
		{"CONNECT trailing bytes", V311, pk(0x10, connectHead(4, 2), str("c"), 0), ErrMalformed},
		{"v5 CONNECT receive maximum 0", V5, pk(0x10, mqtt5(2), 3, 0x21, 0, 0, str("c")), ErrProtocolError},
		{"v5 CONNECT maximum packet size 0", V5, pk(0x10, mqtt5(2), 5, 0x27, 0, 0, 0, 0, str("c")), ErrProtocolError},
		{"v5 CONNECT request problem info 2", V5, pk(0x10, mqtt5(2), 2, 0x17, 2, str("c")), ErrProtocolError},
		{"v5 CONNECT duplicate session expiry", V5, pk(0x10, mqtt5(2), 10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1, str("c")), ErrProtocolError},
		{"v5 CONNECT auth data without method", V5, pk(0x10, mqtt5(2), 4, 0x16, str("d"), str("c")), ErrProtocolError},
		{"v5 CONNECT topic alias not allowed", V5, pk(0x10, mqtt5(2), 3, 0x23, 0, 1, str("c")), ErrMalformed},
		{"v5 will property not allowed", V5, pk(0x10, mqtt5(0x06), 0, str("c"), 5, 0x11, 0, 0, 0, 1, str("w"), str("p")), ErrMalformed},

		// CONNACK.
		{"CONNACK reserved flags (3.1.1 §3.2.2.1)", V311, []byte{0x20, 2, 2, 0}, ErrMalformed},
		{"CONNACK reserved return code", V311, []byte{0x20, 2, 0, 6}, ErrProtocolError},
		{"CONNACK refused with session present", V311, []byte{0x20, 2, 1, 5}, ErrProtocolError},
		{"v5 CONNACK invalid reason", V5, []byte{0x20, 3, 0, 0x01, 0}, ErrProtocolError},
		{"v5 CONNACK maximum QoS 2", V5, []byte{0x20, 5, 0, 0, 2, 0x24, 2}, ErrProtocolError},

		// SUBSCRIBE family.
		{"SUBSCRIBE packet id 0", V311, pk(0x82, 0, 0, str("a"), 0), ErrMalformed},
		{"SUBSCRIBE no filters [MQTT-3.8.3-3]", V311, pk(0x82, 0, 1), ErrProtocolError},
		{"SUBSCRIBE no filters v5", V5, pk(0x82, 0, 1, 0), ErrProtocolError},
		{"SUBSCRIBE reserved bits [MQTT-3.8.3-4]", V311, pk(0x82, 0, 1, str("a"), 0x04), ErrMalformed},
		{"SUBSCRIBE QoS 3", V311, pk(0x82, 0, 1, str("a"), 0x03), ErrMalformed},
		{"SUBSCRIBE v5 reserved bits [MQTT5-3.8.3-5]", V5, pk(0x82, 0, 1, 0, str("a"), 0x40), ErrMalformed},
		{"SUBSCRIBE v5 QoS 3", V5, pk(0x82, 0, 1, 0, str("a"), 0x03), ErrProtocolError},
		{"SUBSCRIBE v5 retain handling 3", V5, pk(0x82, 0, 1, 0, str("a"), 0x30), ErrProtocolError},
		{"SUBSCRIBE v5 No Local on shared [MQTT5-3.8.3-4]", V5, pk(0x82, 0, 1, 0, str("$share/g/a"), 0x04), ErrProtocolError},
		{"SUBSCRIBE options missing", V311, pk(0x82, 0, 1, str("a")), ErrMalformed},
		{"SUBSCRIBE filter U+0000 [MQTT-3.8.3-1]", V311, pk(0x82, 0, 1, str("a\x00"), 0), ErrMalformed},
		{"SUBSCRIBE v5 two subscription ids", V5, pk(0x82, 0, 1, 4, 0x0B, 1, 0x0B, 2, str("a"), 0), ErrProtocolError},
		{"SUBSCRIBE v5 subscription id 0", V5, pk(0x82, 0, 1, 2, 0x0B, 0, str("a"), 0), ErrProtocolError},
		{"SUBSCRIBE v5 reason string not allowed", V5, pk(0x82, 0, 1, 3, 0x1F, str(""), str("a"), 0), ErrMalformed},
		{"SUBACK reserved code 3.1.1 [MQTT-3.9.3-2]", V311, []byte{0x90, 3, 0, 1, 0x03}, ErrProtocolError},
		{"SUBACK v5 invalid code", V5, []byte{0x90, 4, 0, 1, 0, 0x10}, ErrProtocolError},
		{"UNSUBSCRIBE no filters [MQTT-3.10.3-2]", V311, pk(0xA2, 0, 1), ErrProtocolError},
		{"UNSUBSCRIBE packet id 0", V311, pk(0xA2, 0, 0, str("a")), ErrMalformed},
		{"UNSUBSCRIBE filter invalid UTF-8 [MQTT-3.10.3-1]", V311, pk(0xA2, 0, 1, str("\xc3")), ErrMalformed},
		{"UNSUBSCRIBE filter truncated", V311, pk(0xA2, 0, 1, 0, 4, "ab"), ErrMalformed},
		{"UNSUBACK 3.1.1 trailing", V311, []byte{0xB0, 3, 0, 1, 0}, ErrMalformed},
		{"UNSUBACK v5 invalid code", V5, []byte{0xB0, 4, 0, 1, 0, 0x10}, ErrProtocolError},

		// Others.
		{"PINGREQ with body", V311, []byte{0xC0, 1, 0}, ErrMalformed},
		{"PINGRESP with body", V5, []byte{0xD0, 1, 0}, ErrMalformed},
		{"DISCONNECT 3.1.1 with body", V311, []byte{0xE0, 1, 0}, ErrMalformed},
		{"DISCONNECT v5 invalid reason", V5, []byte{0xE0, 1, 0x05}, ErrProtocolError},
		{"DISCONNECT v5 disallowed property", V5, []byte{0xE0, 4, 0, 2, 0x17, 1}, ErrMalformed},
		{"AUTH in 3.1.1", V311, []byte{0xF0, 0}, ErrProtocolError},
		{"AUTH v5 invalid reason", V5, []byte{0xF0, 1, 0x10}, ErrProtocolError},
		{"AUTH v5 flags", V5, []byte{0xF1, 0}, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := decodeRaw(c.raw, c.v)
			if err == nil {
				t.Fatalf("%x decoded as %+v, want %v", c.raw, p, c.want)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("%x: got %v, want %v", c.raw, err, c.want)
			}
			if c.want != ErrIncomplete {
				for _, other := range []error{ErrMalformed, ErrProtocolError, ErrProtocolName, ErrUnsupportedVersion} {
					if other != c.want && errors.Is(err, other) {
						t.Fatalf("%v also matches %v", err, other)
					}
				}
			}
		})
	}
}

// TestUnsupportedVersionFillsFields checks that the server can still tell
// which protocol the client asked for.
func TestUnsupportedVersionFillsFields(t *testing.T) {
	raw := pk(0x10, connectHead(6, 2), str("c"))
	fh, n, _ := DecodeFixedHeader(raw)
	var c Connect
	err := c.Decode(fh, raw[n:], V311)
	if !errors.Is(err, ErrUnsupportedVersion) || c.ProtocolName != "MQTT" || c.ProtocolVersion != 6 {
		t.Fatalf("err %v, name %q, version %v", err, c.ProtocolName, c.ProtocolVersion)
	}
	if CodeOf(err) != UnsupportedProtocolVersion {
		t.Fatalf("code %v", CodeOf(err))
	}
}

// TestDecodeMismatch checks the framing contract of Decode.
func TestDecodeMismatch(t *testing.T) {
	if _, err := Decode(FixedHeader{Type: PUBACK, Remaining: 3}, []byte{0, 1}, V311); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short body: %v", err)
	}
	var p Puback
	if err := p.Decode(FixedHeader{Type: PUBREC, Remaining: 2}, []byte{0, 1}, V311); !errors.Is(err, ErrMalformed) {
		t.Fatalf("wrong type: %v", err)
	}
	if _, err := Decode(FixedHeader{Type: 0}, nil, V311); !errors.Is(err, ErrMalformed) {
		t.Fatalf("type 0: %v", err)
	}
}

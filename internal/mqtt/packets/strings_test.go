package packets

import (
	"strings"
	"testing"
)

func TestValidUTF8(t *testing.T) {
	cases := []struct {
		s  string
		ok bool
	}{
		{"", true},
		{"plain/ascii", true},
		{"é€𝄞", true},
		{"\uFFFF", true},            // non-character: allowed, not a reason to close
		{"\uFEFF", true},            // BOM is a normal character ([MQTT-1.5.3-3])
		{"a\x00b", false},           // [MQTT-1.5.3-2] U+0000
		{"\xED\xA0\x80", false},     // [MQTT-1.5.3-1] surrogate U+D800
		{"\xED\xBF\xBF", false},     // surrogate U+DFFF
		{"\xC0\x80", false},         // overlong U+0000
		{"\xC3", false},             // truncated sequence
		{"\xF4\x90\x80\x80", false}, // beyond U+10FFFF
		{"\xff", false},
	}
	for _, c := range cases {
		if got := ValidUTF8(c.s); got != c.ok {
			t.Errorf("ValidUTF8(%q) = %v, want %v", c.s, got, c.ok)
		}
	}
}

func TestValidTopicName(t *testing.T) {
	for s, ok := range map[string]bool{
		"a":                        true,
		"a/b/c":                    true,
		"/":                        true,
		"$SYS/broker":              true,
		"a//b":                     true,
		"":                         false, // [MQTT-4.7.3-1]
		"a/+":                      false, // [MQTT-3.3.2-2]
		"#":                        false,
		"a+b":                      false,
		"a\x00":                    false,
		strings.Repeat("a", 65535): true,
		strings.Repeat("a", 65536): false,
	} {
		if got := ValidTopicName(s); got != ok {
			t.Errorf("ValidTopicName(%.20q) = %v, want %v", s, got, ok)
		}
	}
}

func TestValidTopicFilter(t *testing.T) {
	for s, ok := range map[string]bool{
		"a":          true,
		"#":          true,
		"+":          true,
		"a/#":        true,
		"a/+/b":      true,
		"+/+":        true,
		"/+":         true,
		"+/":         true,
		"a//#":       true,
		"$share/g/a": true,
		"":           false, // [MQTT-4.7.3-1]
		"a#":         false, // [MQTT-4.7.1-2]
		"a/#/b":      false,
		"#/":         false,
		"a/b#":       false,
		"a+":         false, // [MQTT-4.7.1-3]
		"a/+b":       false,
		"+a/b":       false,
		"++":         false,
		"a/\xff":     false,
	} {
		if got := ValidTopicFilter(s); got != ok {
			t.Errorf("ValidTopicFilter(%q) = %v, want %v", s, got, ok)
		}
	}
}

func TestStringTooLongOnEncode(t *testing.T) {
	long := strings.Repeat("x", 65536)
	for _, p := range []Packet{
		&Publish{Topic: long},
		&Connect{ClientID: long},
		&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: long}}},
		&Unsubscribe{PacketID: 1, Filters: []string{long}},
	} {
		if _, err := p.Append(nil, V311); err == nil {
			t.Errorf("%v with a 64 KiB string encoded", p.Type())
		}
	}
	p := &Puback{PacketID: 1, Props: Properties{ReasonString: long}}
	if _, err := p.Append(nil, V5); err == nil {
		t.Error("reason string of 64 KiB encoded")
	}
}

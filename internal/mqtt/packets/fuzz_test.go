package packets

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to DecodeFixedHeader and Decode for 3.1.1
// and 5. Nothing may panic, and a packet that decodes must encode and decode
// back to an equal packet. Seeds live in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []Version{V311, V5} {
			fh, n, err := DecodeFixedHeader(data)
			if err != nil {
				if err != ErrIncomplete && !errors.Is(err, ErrMalformed) {
					t.Fatalf("DecodeFixedHeader error of unexpected kind: %v", err)
				}
				return
			}
			if n+fh.Remaining > len(data) {
				return
			}
			p, err := Decode(fh, data[n:n+fh.Remaining], v)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("%v: error %v is not an *Error", v, err)
				}
				continue
			}
			checkReencode(t, p, v)
		}
	})
}

// FuzzConnect feeds arbitrary CONNECT bodies to Connect.Decode. Seeds live
// in testdata/fuzz/FuzzConnect.
func FuzzConnect(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		var p Connect
		err := p.Decode(FixedHeader{Type: CONNECT, Remaining: len(body)}, body, V311)
		if errors.Is(err, ErrUnsupportedVersion) {
			if p.ProtocolName != "MQTT" && p.ProtocolName != "MQIsdp" {
				t.Fatalf("unsupported version with protocol name %q", p.ProtocolName)
			}
			return
		}
		if err != nil {
			return
		}
		if p.ProtocolVersion != V31 && p.ProtocolVersion != V311 && p.ProtocolVersion != V5 {
			t.Fatalf("accepted level %d", p.ProtocolVersion)
		}
		checkReencode(t, &p, V311)
	})
}

// checkReencode encodes p and requires the result to decode to p again.
func checkReencode(t *testing.T, p Packet, v Version) {
	t.Helper()
	raw, err := p.Append(nil, v)
	if err != nil {
		t.Fatalf("%v: decoded %+v but cannot encode it: %v", v, p, err)
	}
	q, err := decodeRaw(raw, v)
	if err != nil {
		t.Fatalf("%v: re-encoded %+v as %x, which fails to decode: %v", v, p, raw, err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("%v: re-decode differs\nfirst:  %+v\nsecond: %+v", v, p, q)
	}
}

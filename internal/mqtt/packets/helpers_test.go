package packets

import (
	"reflect"
	"testing"
)

// decodeRaw frames and decodes one whole packet held in raw.
func decodeRaw(raw []byte, v Version) (Packet, error) {
	fh, n, err := DecodeFixedHeader(raw)
	if err != nil {
		return nil, err
	}
	if n+fh.Remaining != len(raw) {
		return nil, malformed("test vector length does not match its remaining length")
	}
	return Decode(fh, raw[n:], v)
}

// normalize marks every non-zero property as present, which is what Decode
// reports, so that a hand-built packet compares equal to its decoded form.
func normalize(p Packet) Packet {
	fix := func(pp *Properties) { pp.set = pp.present() }
	switch p := p.(type) {
	case *Connect:
		fix(&p.Props)
		fix(&p.WillProps)
	case *Connack:
		fix(&p.Props)
	case *Publish:
		fix(&p.Props)
	case *Puback:
		fix(&p.Props)
	case *Pubrec:
		fix(&p.Props)
	case *Pubrel:
		fix(&p.Props)
	case *Pubcomp:
		fix(&p.Props)
	case *Subscribe:
		fix(&p.Props)
	case *Suback:
		fix(&p.Props)
	case *Unsubscribe:
		fix(&p.Props)
	case *Unsuback:
		fix(&p.Props)
	case *Disconnect:
		fix(&p.Props)
	case *Auth:
		fix(&p.Props)
	}
	return p
}

// mustEncode encodes p for v and fails the test on error.
func mustEncode(t testing.TB, p Packet, v Version) []byte {
	t.Helper()
	b, err := p.Append(nil, v)
	if err != nil {
		t.Fatalf("%v.Append(%v): %v", p.Type(), v, err)
	}
	return b
}

// roundTrip encodes p, decodes it back and compares.
func roundTrip(t *testing.T, p Packet, v Version) []byte {
	t.Helper()
	raw := mustEncode(t, p, v)
	got, err := decodeRaw(raw, v)
	if err != nil {
		t.Fatalf("decode %x: %v", raw, err)
	}
	want := normalize(p)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip mismatch\n got: %+v\nwant: %+v\n raw: %x", got, want, raw)
	}
	return raw
}

package packets

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestVarInt(t *testing.T) {
	// Boundary values from the table in spec 1.5.5 / 2.2.3.
	cases := []struct {
		v   int
		raw []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7F}},
		{128, []byte{0x80, 0x01}},
		{16383, []byte{0xFF, 0x7F}},
		{16384, []byte{0x80, 0x80, 0x01}},
		{2097151, []byte{0xFF, 0xFF, 0x7F}},
		{2097152, []byte{0x80, 0x80, 0x80, 0x01}},
		{MaxVarInt, []byte{0xFF, 0xFF, 0xFF, 0x7F}},
	}
	for _, c := range cases {
		got := AppendVarInt(nil, c.v)
		if !bytes.Equal(got, c.raw) {
			t.Errorf("AppendVarInt(%d) = %x, want %x", c.v, got, c.raw)
		}
		if VarIntLen(c.v) != len(c.raw) {
			t.Errorf("VarIntLen(%d) = %d, want %d", c.v, VarIntLen(c.v), len(c.raw))
		}
		raw := append([]byte{0x30}, c.raw...)
		fh, n, err := DecodeFixedHeader(raw)
		if err != nil || n != len(raw) || fh.Remaining != c.v || fh.Type != PUBLISH {
			t.Errorf("DecodeFixedHeader(%x) = %+v, %d, %v", raw, fh, n, err)
		}
		// Every strict prefix is incomplete, never malformed.
		for i := 0; i < len(raw); i++ {
			if _, _, err := DecodeFixedHeader(raw[:i]); err != ErrIncomplete {
				t.Errorf("DecodeFixedHeader(%x) = %v, want ErrIncomplete", raw[:i], err)
			}
		}
	}
}

func TestFixedHeaderFlags(t *testing.T) {
	for ty := Type(0); ty < 16; ty++ {
		for flags := byte(0); flags < 16; flags++ {
			_, _, err := DecodeFixedHeader([]byte{byte(ty)<<4 | flags, 0})
			ok := ty != 0 && (ty == PUBLISH || flags == requiredFlags[ty])
			if ok != (err == nil) {
				t.Errorf("%v flags %04b: err %v", ty, flags, err)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Errorf("%v flags %04b: %v is not malformed", ty, flags, err)
			}
		}
	}
	// [MQTT-2.2.2-2] PUBREL, SUBSCRIBE and UNSUBSCRIBE carry 0010.
	for _, ty := range []Type{PUBREL, SUBSCRIBE, UNSUBSCRIBE} {
		if _, _, err := DecodeFixedHeader([]byte{byte(ty)<<4 | 2, 0}); err != nil {
			t.Errorf("%v 0010: %v", ty, err)
		}
	}
}

func TestAppendFixedHeader(t *testing.T) {
	got := AppendFixedHeader([]byte{0xAA}, FixedHeader{Type: PUBREL, Flags: 2, Remaining: 321})
	if want := []byte{0xAA, 0x62, 0xC1, 0x02}; !bytes.Equal(got, want) {
		t.Fatalf("got %x want %x", got, want)
	}
}

func TestReadPacket(t *testing.T) {
	var stream []byte
	stream = append(stream, mustEncode(t, &Connack{SessionPresent: true}, V311)...)
	stream = append(stream, mustEncode(t, &Publish{QoS: 1, PacketID: 1, Topic: "t", Payload: bytes.Repeat([]byte("p"), 200)}, V311)...)
	stream = append(stream, mustEncode(t, &Pingresp{}, V311)...)
	r := bytes.NewReader(stream)
	want := []Type{CONNACK, PUBLISH, PINGRESP}
	for _, ty := range want {
		p, err := ReadPacket(r, V311, 1024)
		if err != nil || p.Type() != ty {
			t.Fatalf("got %v, %v; want %v", p, err, ty)
		}
	}
	if _, err := ReadPacket(r, V311, 1024); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}

	big := mustEncode(t, &Publish{Topic: "t", Payload: make([]byte, 100)}, V311)
	if _, err := ReadPacket(bytes.NewReader(big), V311, 50); !errors.Is(err, ErrPacketTooLarge) || CodeOf(err) != PacketTooLarge {
		t.Fatalf("oversize: %v", err)
	}
	if _, err := ReadPacket(bytes.NewReader(big[:20]), V311, 0); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated body: %v", err)
	}
	if _, err := ReadPacket(bytes.NewReader([]byte{0x30, 0x80}), V311, 0); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated header: %v", err)
	}
	if _, err := ReadPacket(bytes.NewReader([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0}), V311, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("long header: %v", err)
	}
}

func TestTypeAndVersionStrings(t *testing.T) {
	if PUBLISH.String() != "PUBLISH" || AUTH.String() != "AUTH" || Type(0).String() != "Type(0)" {
		t.Fatal("Type.String")
	}
	if V311.String() != "3.1.1" || V5.String() != "5.0" || V31.String() != "3.1" || Version(9).String() != "Version(9)" {
		t.Fatal("Version.String")
	}
	for ty := CONNECT; ty <= AUTH; ty++ {
		if p := New(ty); p == nil || p.Type() != ty {
			t.Fatalf("New(%v) = %v", ty, p)
		}
	}
	if New(0) != nil || New(16) != nil {
		t.Fatal("New of an invalid type is not nil")
	}
}

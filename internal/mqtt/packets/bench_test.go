package packets

import (
	"bytes"
	"testing"
)

// benchPublish returns a PUBLISH with a 64-byte payload; for v5 it carries a
// couple of properties, as a typical MQTT 5 publisher sends.
func benchPublish(v Version) *Publish {
	p := &Publish{QoS: 1, PacketID: 42, Topic: "sensors/building-1/floor-3/temperature", Payload: bytes.Repeat([]byte("x"), 64)}
	if v == V5 {
		p.Props = Properties{MessageExpiry: 3600, ContentType: "application/json"}
	}
	return p
}

func BenchmarkDecodePublish(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run("v"+v.String(), func(b *testing.B) {
			raw := mustEncode(b, benchPublish(v), v)
			fh, n, _ := DecodeFixedHeader(raw)
			body := raw[n:]
			var p Publish
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Decode(fh, body, v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodePublishSeen decodes the same PUBLISH as
// BenchmarkDecodePublish through DecodeSeen, as a connection repeating its
// topic does: the topic is compared with the last one validated instead of
// scanned.
func BenchmarkDecodePublishSeen(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run("v"+v.String(), func(b *testing.B) {
			raw := mustEncode(b, benchPublish(v), v)
			fh, n, _ := DecodeFixedHeader(raw)
			body := raw[n:]
			var p Publish
			var seen []byte
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if err := p.DecodeSeen(fh, body, v, &seen); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodePublish(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run("v"+v.String(), func(b *testing.B) {
			p := benchPublish(v)
			buf := make([]byte, 0, 256)
			b.SetBytes(int64(len(mustEncode(b, p, v))))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = p.Append(buf[:0], v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeFixedHeader(b *testing.B) {
	raw := []byte{0x32, 0xC1, 0x02} // PUBLISH QoS 1, remaining length 321
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeFixedHeader(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeConnect(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run("v"+v.String(), func(b *testing.B) {
			c := &Connect{ProtocolVersion: v, CleanStart: true, KeepAlive: 60, ClientID: "device-0042",
				WillFlag: true, WillQoS: 1, WillTopic: "devices/0042/status", WillPayload: []byte("offline"),
				UsernameFlag: true, Username: "device", PasswordFlag: true, Password: []byte("secret")}
			if v == V5 {
				c.Props = Properties{SessionExpiry: 300, ReceiveMaximum: 32, TopicAliasMaximum: 8}
			}
			raw := mustEncode(b, c, v)
			fh, n, _ := DecodeFixedHeader(raw)
			var p Connect
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Decode(fh, raw[n:], v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAcks(b *testing.B) {
	raw := mustEncode(b, &Puback{PacketID: 42}, V5)
	fh, n, _ := DecodeFixedHeader(raw)
	buf := make([]byte, 0, 16)
	b.ReportAllocs()
	for b.Loop() {
		var p Puback
		if err := p.Decode(fh, raw[n:], V5); err != nil {
			b.Fatal(err)
		}
		buf, _ = p.Append(buf[:0], V5)
	}
}

// TestHotPathAllocs guards the zero-allocation promise of the hot path.
func TestHotPathAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts in -short mode are not worth the time")
	}
	buf := make([]byte, 0, 512)
	for _, v := range []Version{V311, V5} {
		pub := benchPublish(v)
		pub.Props.User = []UserProperty{{"k", "v"}}
		if v != V5 {
			pub.Props = Properties{}
		}
		raw := mustEncode(t, pub, v)
		fh, n, _ := DecodeFixedHeader(raw)
		var p Publish
		_ = p.Decode(fh, raw[n:], v) // grows p.Props.User once
		check := func(name string, f func() error) {
			t.Helper()
			var err error
			if a := testing.AllocsPerRun(100, func() { err = f() }); a != 0 || err != nil {
				t.Errorf("%s %v: %v allocs/op, err %v", name, v, a, err)
			}
		}
		check("DecodeFixedHeader", func() error { _, _, err := DecodeFixedHeader(raw); return err })
		check("Publish.Decode", func() error { return p.Decode(fh, raw[n:], v) })
		check("Publish.Append", func() (err error) { buf, err = pub.Append(buf[:0], v); return })
		for _, a := range []Packet{&Puback{PacketID: 1}, &Pubrec{PacketID: 1}, &Pubrel{PacketID: 1}, &Pubcomp{PacketID: 1}, &Pingreq{}} {
			araw := mustEncode(t, a, v)
			afh, an, _ := DecodeFixedHeader(araw)
			check(a.Type().String()+".Decode", func() error { return a.Decode(afh, araw[an:], v) })
			check(a.Type().String()+".Append", func() (err error) { buf, err = a.Append(buf[:0], v); return })
		}
	}
}

package mqtt

import (
	"testing"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// BenchmarkPublishShared measures the publish path to a shared subscription
// of two members with no topic checker: one member gets each message.
func BenchmarkPublishShared(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run([]string{"qos0", "qos1"}[qos], func(b *testing.B) {
			br, pub, subs := benchBroker(b, 0, "bench/t", qos)
			for _, id := range []string{"m1", "m2"} {
				c := &client{b: br, version: packets.V311, closed: true} // closed: no writer goroutine
				c.info.ClientID = id
				s := newSession(id, true)
				s.client = c
				c.sess = s
				br.store.Put(s)
				v := shareSub{sub: subscription{qos: qos}, id: "$share/g/bench/t"}
				br.subscribeShared(s, "g", "bench/t", v, false)
				subs = append(subs, c)
			}
			pk := packets.Publish{Topic: "bench/t", Payload: make([]byte, 64), QoS: qos, PacketID: 1}
			raw, _ := pk.Append(nil, packets.V311)
			fh, n, _ := packets.DecodeFixedHeader(raw)
			body := raw[n:]
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := pub.handle(fh, body); err != nil {
					b.Fatal(err)
				}
				if i%64 == 63 {
					pub.out = pub.out[:0]
					drain(subs)
				}
			}
		})
	}
}

package mqtt

import (
	"fmt"
	"testing"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// benchBroker is a broker with n subscribers on topic, each attached to an
// in-memory client whose write buffer the benchmark drains: it measures the
// publish path from decoded bytes to encoded deliveries, without sockets.
func benchBroker(b *testing.B, nsubs int, filter string, subQoS byte) (*Broker, *client, []*client) {
	b.Helper()
	br, err := New(Options{Limits: Limits{MaxInflight: 65535, MaxOutboundBytes: 1 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	attach := func(id string) *client {
		c := &client{b: br, version: packets.V311, closed: true} // closed: no writer goroutine
		c.info.ClientID = id
		s := newSession(id, true)
		s.client = c
		c.sess = s
		br.store.Put(s)
		return c
	}
	subs := make([]*client, nsubs)
	for i := range subs {
		subs[i] = attach(fmt.Sprintf("sub-%d", i))
		subs[i].sess.subs[filter] = subscription{qos: subQoS}
		br.subs.Subscribe(filter, subs[i].sess, subscription{qos: subQoS})
	}
	return br, attach("pub"), subs
}

// drain empties the subscribers' buffers and acknowledges their inflight
// messages, as their writers and readers would.
func drain(subs []*client) {
	for _, c := range subs {
		s := c.sess
		c.out = c.out[:0]
		for s.inflight.live > 0 {
			e := &s.inflight.ents[s.inflight.head]
			s.inflight.done(e)
		}
	}
}

func BenchmarkPublishPath(b *testing.B) {
	for _, bc := range []struct {
		name   string
		nsubs  int
		filter string
		qos    byte
		alias  int // MQTT 5 subscribers that accept this many topic aliases; -1: MQTT 5, none; 0: 3.1.1
	}{
		{"qos0/1sub", 1, "bench/t", 0, 0},
		{"qos0/1sub-wildcard", 1, "bench/+", 0, 0},
		{"qos0/100subs", 100, "bench/#", 0, 0},
		{"qos0/100subs-v5", 100, "bench/#", 0, -1},
		{"qos0/100subs-v5-alias", 100, "bench/#", 0, 10},
		{"qos1/1sub", 1, "bench/t", 1, 0},
		{"qos1/100subs", 100, "bench/t", 1, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			_, pub, subs := benchBroker(b, bc.nsubs, bc.filter, bc.qos)
			for _, c := range subs {
				if bc.alias != 0 {
					c.version, c.aliasMax = packets.V5, uint16(max(bc.alias, 0))
				}
			}
			pk := packets.Publish{Topic: "bench/t", Payload: make([]byte, 64), QoS: bc.qos, PacketID: 1}
			raw, _ := pk.Append(nil, packets.V311)
			fh, n, _ := packets.DecodeFixedHeader(raw)
			body := raw[n:]
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
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
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*bc.nsubs), "ns/delivery")
		})
	}
}

package cluster

import (
	"testing"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// BenchmarkOutboxAdd: what forwarding one QoS 1 message of 64 bytes costs
// the publisher's reader in the outbox, batches of 64 messages of one
// topic being taken and confirmed as sendLoop and the answers would (the
// NATS publish left out).
func BenchmarkOutboxAdd(b *testing.B) {
	n := &Node{opts: Options{Name: "me", Prefix: "mqttd"}}
	o := &outbox{n: n, open: make(map[string]*outBatch), wake: make(chan struct{}, 1), limit: batchTarget}
	payload := make([]byte, 64)
	expect := []string{"n2"}
	done := func(error) {}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := o.add("bench/pair/3", payload, 1, false, "p-r0-3", nil, expect, done); err != nil {
			b.Fatal(err)
		}
		if i++; i%64 == 0 {
			o.mu.Lock()
			batches := o.list
			o.list = nil
			clear(o.open)
			o.mu.Unlock()
			for _, bt := range batches {
				putDones(bt.dones) // as the wait does once it called them
				bt.dones, bt.count = nil, 0
				o.free = append(o.free, bt)
			}
		}
	}
}

// BenchmarkEachEnvelope: what decoding a batch of 64 messages (one topic,
// 64-byte payloads) costs the receiving node; ns/msg and allocs/msg per
// message.
func BenchmarkEachEnvelope(b *testing.B) {
	n := &Node{opts: Options{Name: "me", Prefix: "mqttd"}}
	o := &outbox{n: n, open: make(map[string]*outBatch), wake: make(chan struct{}, 1), limit: batchTarget}
	payload := make([]byte, 64)
	for range 64 {
		if err := o.add("bench/pair/3", payload, 1, false, "p-r0-3", nil, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	data := o.list[0].data
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		k := 0
		if err := eachEnvelope(data, func(m *mqtt.Message) {
			if k++; len(m.Payload) != 64 {
				b.Fatal("payload")
			}
		}); err != nil || k != 64 {
			b.Fatal(k, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/64, "ns/msg")
	b.ReportMetric(testing.AllocsPerRun(10, func() {
		eachEnvelope(data, func(*mqtt.Message) {})
	})/64, "allocs/msg")
}

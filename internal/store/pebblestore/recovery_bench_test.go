package pebblestore

import (
	"context"
	"fmt"
	"testing"

	"github.com/mqttd/mqttd/internal/store"
)

// BenchmarkRecovery: open a store of 10,000 persistent sessions (two
// subscriptions and a will each) with 100,000 queued messages, and read
// every session, as a broker's restart does. Queues are not read: the
// cost must follow sessions, not messages.
func BenchmarkRecovery(b *testing.B) {
	const sessions, perSession = 10_000, 10
	dir := b.TempDir()
	s, err := Open(dir, Options{Durability: store.None, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < sessions; i += 100 {
		var bt store.Batch
		for j := i; j < i+100; j++ {
			id := fmt.Sprintf("client-%06d", j)
			bt.PutSession(&store.SessionRecord{ClientID: id, Expiry: 3600, Will: &store.MessageRecord{Topic: "wills/" + id, Payload: payload64},
				Subs: []store.SubscriptionRecord{{Filter: "sensors/+/temp", QoS: 1}, {Filter: "cmd/" + id, QoS: 2}}})
			for range perSession {
				bt.Enqueue(&store.MessageRecord{Topic: "sensors/x/temp", Payload: payload64, QoS: 1}, []store.Delivery{{ClientID: id, QoS: 1}})
			}
		}
		if err := s.Commit(context.Background(), &bt); err != nil {
			b.Fatal(err)
		}
	}
	must(b, s.Close())
	b.ResetTimer()
	for range b.N {
		s, err := Open(dir, Options{Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		must(b, s.Sessions(func(*store.SessionRecord) error { n++; return nil }))
		if n != sessions {
			b.Fatalf("%d sessions", n)
		}
		b.StopTimer()
		must(b, s.Close())
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*sessions), "µs/session")
}

package spool

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkSpool is the spool's throughput as the pipeline uses it while a
// plugin is down and then back: batches of events (about 300 bytes each, a
// typical message event) appended and fsynced, then read back and
// released. One op is one event through the spool; the batch is what one
// lane moves at once (up to queue.max-events).
func BenchmarkSpool(b *testing.B) {
	for _, batch := range []int{100, 1000} {
		b.Run(fmt.Sprint("batch=", batch), func(b *testing.B) { benchSpool(b, batch) })
	}
}

func benchSpool(b *testing.B, batch int) {
	s := open(b, b.TempDir(), 1<<30)
	defer s.Close()
	es := make([]Entry, batch)
	for i := range es {
		id := fmt.Sprintf("01J8Z00000000000000000%04d", i)
		es[i] = Entry{ID: id, JSON: []byte(`{"id":"` + id + `","type":"broker_message_received","pad":"` + strings.Repeat("x", 200) + `"}`)}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(es[0].JSON)))
	n := 0
	for b.Loop() {
		if n%batch == 0 {
			if _, _, err := s.Append(es); err != nil {
				b.Fatal(err)
			}
			if err := s.Sync(); err != nil {
				b.Fatal(err)
			}
			recs, err := s.Peek(batch, 1<<30)
			if err != nil || len(recs) != batch {
				b.Fatalf("peeked %d: %v", len(recs), err)
			}
			if err := s.Release(recs[len(recs)-1].Seq); err != nil {
				b.Fatal(err)
			}
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

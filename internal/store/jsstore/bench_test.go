package jsstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/pebblestore"
)

// The benchmarks run each case on this store (an embedded nats-server,
// R1, file storage; and three embedded servers in one process, R3) and on
// pebblestore with sync durability, the baseline in the same run:
//
//	go test -run '^$' -bench . -benchtime 2s ./internal/store/jsstore/

func benchStores(b *testing.B, f func(b *testing.B, s store.Store)) {
	b.Run("store=jetstream", func(b *testing.B) {
		ns := startNATS(b, b.TempDir(), -1)
		f(b, open(b, connect(b, ns.ClientURL()), Options{}))
	})
	b.Run("store=jetstream-r3", func(b *testing.B) {
		s, err := openReplicated(b, startCluster3(b), 0, "bench")
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		f(b, s)
	})
	b.Run("store=pebble", func(b *testing.B) {
		s, err := pebblestore.Open(b.TempDir(), pebblestore.Options{Durability: store.Sync, Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		f(b, s)
	})
}

func fan(s store.Store, client string, n int) error {
	var b store.Batch
	ds := make([]store.Delivery, n)
	for i := range ds {
		ds[i] = store.Delivery{ClientID: fmt.Sprint(client, "-", i), QoS: 1}
	}
	b.Enqueue(&store.MessageRecord{Topic: "bench/topic", Payload: make([]byte, 64), QoS: 1}, ds)
	return s.Commit(context.Background(), &b)
}

// BenchmarkCommitFan10: commits of one message queued for 10 sessions,
// from 1 writer and from 16 concurrent ones (grouped into shared atomic
// batches).
func BenchmarkCommitFan10(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprint("writers=", writers), func(b *testing.B) {
			benchStores(b, func(b *testing.B, s store.Store) {
				var id atomic.Int64
				b.SetParallelism(writers)
				if writers == 1 {
					b.SetParallelism(1)
				}
				b.ResetTimer()
				cpu0 := cpuTime()
				b.RunParallel(func(pb *testing.PB) {
					client := fmt.Sprint("w", id.Add(1))
					for pb.Next() {
						if err := fan(s, client, 10); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
				b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/commit")
			})
		})
	}
}

// BenchmarkScan: reading a 5000-entry queue in pages of 100; shared: each
// message was queued for another session too (one Enqueue).
func BenchmarkScan(b *testing.B) {
	for _, shared := range []bool{false, true} {
		b.Run(fmt.Sprint("shared=", shared), func(b *testing.B) {
			benchStores(b, func(b *testing.B, s store.Store) {
				for i := 0; i < 5000; i += 250 {
					var bt store.Batch
					for range 250 {
						ds := []store.Delivery{{ClientID: "q", QoS: 1}}
						if shared {
							ds = append(ds, store.Delivery{ClientID: "other", QoS: 1})
						}
						bt.Enqueue(&store.MessageRecord{Topic: "bench/topic", Payload: make([]byte, 64), QoS: 1}, ds)
					}
					if err := s.Commit(context.Background(), &bt); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				n, cpu0 := 0, cpuTime()
				for range b.N {
					from := uint64(0)
					for {
						q, err := s.Scan("q", from, 100)
						if err != nil {
							b.Fatal(err)
						}
						if len(q) == 0 {
							break
						}
						n += len(q)
						from = q[len(q)-1].Seq + 1
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
				// The process's CPU, the embedded servers' included.
				b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(n), "cpu-ns/entry")
			})
		})
	}
}

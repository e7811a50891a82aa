package pebblestore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/store"
)

// payload64 is 64 random bytes: zeros would compress to nothing and flatter
// the disk figures.
var payload64 = func() []byte {
	b := make([]byte, 64)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}()

// enqueueOne commits one 64-byte message queued for client.
func enqueueOne(s store.Store, client string) error { return enqueueFan(s, client, 1) }

// enqueueFan commits one 64-byte message queued for client (fan 1) or
// for fan sessions client/0, client/1, ...
func enqueueFan(s store.Store, client string, fan int) error {
	var b store.Batch
	ds := make([]store.Delivery, fan)
	for i := range ds {
		ds[i] = store.Delivery{ClientID: client, QoS: 1}
		if fan > 1 {
			ds[i].ClientID += "/" + strconv.Itoa(i)
		}
	}
	b.Enqueue(&store.MessageRecord{Topic: "bench/topic", Payload: payload64, QoS: 1}, ds)
	return s.Commit(context.Background(), &b)
}

// BenchmarkAppendFan10: 32 writers each committing one message queued for
// 10 persistent sessions (the 10 -> 10 QoS 1 case), sync durability.
func BenchmarkAppendFan10(b *testing.B) {
	s := mustOpenB(b, Options{Durability: store.Sync})
	defer s.Close()
	b.ReportAllocs()
	var id atomic.Int64
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		client := fmt.Sprintf("s%d", id.Add(1))
		for pb.Next() {
			if err := enqueueFan(s, client, 10); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*10)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkAppend: one 64-byte message queued for one session per commit,
// from 1 writer and from 32 concurrent writers (group commit shares the
// fsync). Durability none is the baseline without fsync.
func BenchmarkAppend(b *testing.B) {
	for _, d := range []store.Durability{store.Sync, store.None} {
		for _, writers := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/writers=%d", d, writers), func(b *testing.B) {
				s := mustOpenB(b, Options{Durability: d})
				defer s.Close()
				b.ReportAllocs()
				b.ResetTimer()
				if writers == 1 {
					for range b.N {
						if err := enqueueOne(s, "s0"); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				var id atomic.Int64
				b.SetParallelism((writers + 1) / 2) // x GOMAXPROCS (2 here) goroutines
				b.RunParallel(func(pb *testing.PB) {
					client := fmt.Sprintf("s%d", id.Add(1))
					for pb.Next() {
						if err := enqueueOne(s, client); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkScan reads a 10,000-entry queue in pages of 100.
func BenchmarkScan(b *testing.B) {
	s := mustOpenB(b, Options{Durability: store.None})
	defer s.Close()
	const n = 10_000
	for i := 0; i < n; i += 500 {
		var bt store.Batch
		for range 500 {
			bt.Enqueue(&store.MessageRecord{Topic: "bench/topic", Payload: payload64, QoS: 1}, []store.Delivery{{ClientID: "q", QoS: 1}})
		}
		if err := s.Commit(context.Background(), &bt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		read := 0
		for from := uint64(0); ; {
			page, err := s.Scan("q", from, 100)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			read += len(page)
			from = page[len(page)-1].Seq + 1
		}
		if read != n {
			b.Fatalf("read %d", read)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}

// BenchmarkDiskBytesPerMessage: 50,000 64-byte messages queued for one
// session each, then for 10 sessions each; bytes on disk per queued
// message after a clean close (log replayed into tables) and reopen.
func BenchmarkDiskBytesPerMessage(b *testing.B) {
	for _, fan := range []int{1, 10} {
		b.Run(fmt.Sprintf("sessions=%d", fan), func(b *testing.B) {
			const n = 50_000
			var perMsg float64
			r := rand.New(rand.NewPCG(3, 4))
			for range b.N {
				dir := b.TempDir()
				s, err := Open(dir, Options{Durability: store.None, Logger: quiet()})
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < n; i += 1000 {
					var bt store.Batch
					for range 1000 {
						ds := make([]store.Delivery, fan)
						for j := range ds {
							ds[j] = store.Delivery{ClientID: fmt.Sprintf("session-%d", j), QoS: 1}
						}
						p := make([]byte, 64) // distinct random payloads: nothing to compress
						for k := range p {
							p[k] = byte(r.UintN(256))
						}
						bt.Enqueue(&store.MessageRecord{Topic: "sensors/site-1/temperature", Payload: p, QoS: 1}, ds)
					}
					if err := s.Commit(context.Background(), &bt); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.db.Flush(); err != nil {
					b.Fatal(err)
				}
				if err := s.db.Compact([]byte{0}, []byte{0xff}, true); err != nil {
					b.Fatal(err)
				}
				must(b, s.Close())
				perMsg = float64(dirSize(b, dir)) / float64(n*fan)
			}
			b.ReportMetric(perMsg, "disk-B/delivery")
			b.ReportMetric(perMsg*float64(fan), "disk-B/message")
		})
	}
}

func dirSize(b *testing.B, dir string) int64 {
	var total int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	return total
}

func mustOpenB(b *testing.B, o Options) *Store {
	o.Logger = quiet()
	s, err := Open(b.TempDir(), o)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkDrainBesideLiveAcks: one session drains a backlog older than
// the index (each acknowledgement reads its entry back from Pebble) while
// another acknowledges its fresh messages in order, one commit per op. In
// "ranges" the live session's acknowledgements are a run (one range
// deletion per commit, were it not for the reads: see noteRead); in
// "points" every other one is acknowledged, so each is a point deletion.
// A read after a range deletion makes Pebble fragment the memtable's
// range deletions again: this shows what that would cost the drain
// ("ranges-always" keeps range deletions despite the reads).
func BenchmarkDrainBesideLiveAcks(b *testing.B) {
	for _, mode := range []string{"ranges", "ranges-always", "points"} {
		b.Run(mode, func(b *testing.B) {
			defer func(n int, q time.Duration) { indexBudget, readQuiet = n, q }(indexBudget, readQuiet)
			indexBudget = 1000
			if mode == "ranges-always" {
				readQuiet = 0
			}
			s := mustOpenB(b, Options{Durability: store.None})
			defer s.Close()
			backlog := b.N + 1
			for i := 0; i < backlog; i += 500 {
				var bt store.Batch
				for range min(500, backlog-i) {
					bt.Enqueue(&store.MessageRecord{Topic: "bench/topic", Payload: payload64, QoS: 1}, []store.Delivery{{ClientID: "old", QoS: 1}})
				}
				if err := s.Commit(context.Background(), &bt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				var bt store.Batch
				ds := make([]store.Delivery, 16)
				for j := range ds {
					ds[j] = store.Delivery{ClientID: "live", QoS: 1}
					bt.Enqueue(&store.MessageRecord{Topic: "bench/topic", Payload: payload64, QoS: 1}, ds[j:j+1])
				}
				if err := s.Commit(context.Background(), &bt); err != nil {
					b.Fatal(err)
				}
				bt.Reset()
				for j, d := range ds {
					if mode != "points" || j%2 == 0 {
						bt.Ack("live", d.Seq)
					}
				}
				bt.Ack("old", uint64(i+1))
				if err := s.Commit(context.Background(), &bt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package cache

import (
	"testing"
	"time"
)

// BenchmarkHitParallel is the decision hot path: build the salted key of an
// authenticate request and find a fresh entry. Goal: < 300 ns/op, 0 allocs.
func BenchmarkHitParallel(b *testing.B) {
	k := NewKeyer()
	c, _ := New[bool](10000)
	pw := []byte("correct horse battery staple")
	key := authKey(k, "sensor-17", "alice", pw)
	c.Add(key, &Entry[bool]{Value: true, Expires: time.Now().Add(time.Hour).UnixNano()})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e, ok := c.Get(authKey(k, "sensor-17", "alice", pw))
			if !ok || !e.Fresh(time.Now()) {
				b.Fatal("miss")
			}
		}
	})
}

// BenchmarkKey is the key alone, to see how the hit splits between hashing
// and the LRU's lock.
func BenchmarkKey(b *testing.B) {
	k := NewKeyer()
	pw := []byte("correct horse battery staple")
	b.ReportAllocs()
	for b.Loop() {
		authKey(k, "sensor-17", "alice", pw)
	}
}

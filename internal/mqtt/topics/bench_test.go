package topics

import (
	"fmt"
	"runtime"
	"testing"
)

// subOpts stands in for the broker's per-subscription value.
type subOpts struct {
	qos     uint8
	noLocal bool
	id      uint32
}

// benchFilters returns 100,000 filters shaped like a device fleet: one exact
// filter per device (site/<i%100>/dev/<i>/temp), 1% wildcard filters that
// each watch one device in one of four shapes, and a few broad ones. Device
// 970 (site 70) is watched by all four wildcard shapes and by site/70/#, so
// its temp topic hits six subscriptions.
func benchFilters() []string {
	const n, wild = 100_000, 1_000
	filters := make([]string, 0, n)
	for i := range n - wild - 3 {
		filters = append(filters, fmt.Sprintf("site/%d/dev/%d/temp", i%100, i))
	}
	for k := range wild {
		d := (k / 4) * 97
		var f string
		switch k % 4 {
		case 0:
			f = fmt.Sprintf("site/+/dev/%d/temp", d)
		case 1:
			f = fmt.Sprintf("site/%d/dev/%d/#", d%100, d)
		case 2:
			f = fmt.Sprintf("site/%d/+/%d/temp", d%100, d)
		case 3:
			f = fmt.Sprintf("+/%d/dev/%d/+", d%100, d)
		}
		filters = append(filters, f)
	}
	return append(filters, "site/70/#", "site/+/dev/+/alarm", "$SYS/#")
}

func benchTree(b *testing.B) *Tree[int, subOpts] {
	b.Helper()
	tree := NewTree[int, subOpts]()
	for i, f := range benchFilters() {
		tree.Subscribe(f, i, subOpts{qos: 1, id: uint32(i)})
	}
	return tree
}

func BenchmarkMatch100k(b *testing.B) {
	tree := benchTree(b)
	for _, bc := range []struct {
		name, topic string
		hits        int
	}{
		{"hit1", "site/12/dev/4512/temp", 1},
		{"hit6", "site/70/dev/970/temp", 6},
		{"miss", "site/12/dev/999999/temp", 0},
		{"sys", "$SYS/broker/uptime", 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			calls := 0
			fn := func(int, subOpts) { calls++ }
			b.ReportAllocs()
			for b.Loop() {
				tree.Match(bc.topic, fn)
			}
			if got := calls / b.N; got != bc.hits {
				b.Fatalf("Match(%q) made %d callbacks, want %d", bc.topic, got, bc.hits)
			}
		})
	}
	b.Run("fanout1000", func(b *testing.B) {
		for i := range 1000 {
			tree.Subscribe("broadcast/all", -i-1, subOpts{})
		}
		defer func() {
			for i := range 1000 {
				tree.Unsubscribe("broadcast/all", -i-1)
			}
		}()
		calls := 0
		fn := func(int, subOpts) { calls++ }
		b.ReportAllocs()
		for b.Loop() {
			tree.Match("broadcast/all", fn)
		}
		b.ReportMetric(float64(calls)/float64(b.N), "callbacks/op")
		if calls != 1000*b.N {
			b.Fatalf("fan-out made %d callbacks per Match, want 1000", calls/b.N)
		}
	})
}

// BenchmarkMatchParallel matches from every core at once. With RWMutex the
// readers only share the lock's reader count, so ns/op should fall with
// GOMAXPROCS; compare with BenchmarkMatch100k/mixed at -cpu=1.
func BenchmarkMatchParallel(b *testing.B) {
	tree := benchTree(b)
	topics := make([]string, 1024)
	for i := range topics {
		d := i * 89
		topics[i] = fmt.Sprintf("site/%d/dev/%d/temp", d%100, d)
	}
	b.ReportAllocs()
	b.ResetTimer() // RunParallel, unlike b.Loop, does not exclude the setup
	b.RunParallel(func(pb *testing.PB) {
		calls, i := 0, 0
		fn := func(int, subOpts) { calls++ }
		for pb.Next() {
			tree.Match(topics[i%len(topics)], fn)
			i++
		}
		if calls < i {
			b.Error("a device topic matched nothing")
		}
	})
}

// BenchmarkMatch100kMixed is the serial twin of BenchmarkMatchParallel: the
// same topics, one goroutine.
func BenchmarkMatch100kMixed(b *testing.B) {
	tree := benchTree(b)
	topics := make([]string, 1024)
	for i := range topics {
		d := i * 89
		topics[i] = fmt.Sprintf("site/%d/dev/%d/temp", d%100, d)
	}
	fn := func(int, subOpts) {}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tree.Match(topics[i%len(topics)], fn)
		i++
	}
}

// BenchmarkSubscribeUnsubscribe adds and removes one subscription on a tree
// of 100,000, so each op creates and prunes the filter's private nodes.
func BenchmarkSubscribeUnsubscribe(b *testing.B) {
	tree := benchTree(b)
	filters := make([]string, 1024)
	for i := range filters {
		filters[i] = fmt.Sprintf("site/%d/dev/new%d/temp", i%100, i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f := filters[i%len(filters)]
		tree.Subscribe(f, i, subOpts{})
		tree.Unsubscribe(f, i)
		i++
	}
	if tree.Len() != 100_000 {
		b.Fatalf("Len = %d after churn", tree.Len())
	}
}

func BenchmarkRetainedMatch(b *testing.B) {
	r := NewRetained[subOpts]()
	for i := range 10_000 {
		r.Set(fmt.Sprintf("site/%d/dev/%d/temp", i%100, i), subOpts{id: uint32(i)})
	}
	for _, bc := range []struct {
		filter string
		hits   int
	}{
		{"site/+/dev/#", 10_000},
		{"site/7/dev/+/temp", 100},
		{"site/+/dev/4507/temp", 1},
	} {
		b.Run(bc.filter, func(b *testing.B) {
			calls := 0
			fn := func(string, subOpts) { calls++ }
			b.ReportAllocs()
			for b.Loop() {
				r.Match(bc.filter, fn)
			}
			if got := calls / b.N; got != bc.hits {
				b.Fatalf("Match(%q) made %d callbacks, want %d", bc.filter, got, bc.hits)
			}
		})
	}
}

func BenchmarkMatchFilter(b *testing.B) {
	for _, bc := range []struct{ name, filter, topic string }{
		{"exact", "site/12/dev/4512/temp", "site/12/dev/4512/temp"},
		{"wildcards", "site/+/dev/+/#", "site/12/dev/4512/temp/celsius"},
		{"earlyMiss", "site/13/dev/4512/temp", "site/12/dev/4512/temp"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				MatchFilter(bc.filter, bc.topic)
			}
		})
	}
}

// BenchmarkMemoryPerSubscription measures the heap the tree adds per
// subscription for the 100,000-filter fleet. The filter strings are built
// beforehand and stay alive, so only the tree's own memory counts.
// Run with -benchtime=1x; the result is the B/sub metric.
func BenchmarkMemoryPerSubscription(b *testing.B) {
	filters := benchFilters()
	var perSub, perNode float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tree := NewTree[int, subOpts]()
		for i, f := range filters {
			tree.Subscribe(f, i, subOpts{qos: 1, id: uint32(i)})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		used := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		perSub = used / float64(tree.Len())
		perNode = float64(tree.nodeCount()) / float64(tree.Len())
		runtime.KeepAlive(tree)
	}
	runtime.KeepAlive(filters)
	b.ReportMetric(perSub, "B/sub")
	b.ReportMetric(perNode, "nodes/sub")
}

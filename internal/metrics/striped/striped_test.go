package striped

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Increments from many goroutines at once all count: the sum is exact.
func TestConcurrentIncrementsSumExactly(t *testing.T) {
	c := NewCounter(prometheus.CounterOpts{Name: "test_total", Help: "h"})
	const goroutines, each = 16, 10000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if i%2 == 0 {
					c.Inc()
				} else {
					c.Add(uint64(g))
				}
			}
		})
	}
	wg.Wait()
	want := uint64(goroutines * each / 2)
	for g := range goroutines {
		want += uint64(g * each / 2)
	}
	if got := c.Value(); got != want {
		t.Fatalf("Value %d, want %d", got, want)
	}
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != float64(want) {
		t.Fatalf("written value %v, want %d", got, want)
	}
}

// A striped CounterVec is exported exactly as a prometheus.CounterVec with
// the same options and increments: name, help, type, labels and values,
// and series deleted alike.
func TestCounterVecExportsLikePrometheus(t *testing.T) {
	opts := prometheus.CounterOpts{Namespace: "ns", Name: "decisions_total", Help: "Answers, by result.",
		ConstLabels: prometheus.Labels{"node": "a"}}
	labels := []string{"plugin", "result"}
	theirs, ours := prometheus.NewCounterVec(opts, labels), NewCounterVec(opts, labels)
	regTheirs, regOurs := prometheus.NewPedanticRegistry(), prometheus.NewPedanticRegistry()
	regTheirs.MustRegister(theirs)
	regOurs.MustRegister(ours)
	for _, s := range []struct {
		plugin, result string
		n              int
	}{{"acl", "allow", 3}, {"acl", "deny", 1}, {"web", "allow", 2}, {"gone", "allow", 5}} {
		for range s.n {
			theirs.WithLabelValues(s.plugin, s.result).Inc()
			ours.WithLabelValues(s.plugin, s.result).Inc()
		}
	}
	theirs.WithLabelValues("idle", "allow") // a series at 0
	ours.WithLabelValues("idle", "allow")
	if a, b := theirs.DeletePartialMatch(prometheus.Labels{"plugin": "gone"}), ours.DeletePartialMatch(prometheus.Labels{"plugin": "gone"}); a != b || b != 1 {
		t.Fatalf("DeletePartialMatch removed %d (prometheus) and %d (striped), want 1", a, b)
	}
	want, got := gatherAll(t, regTheirs), gatherAll(t, regOurs)
	if len(got) != 1 || len(want) != 1 {
		t.Fatalf("gathered %d families, want 1 (prometheus gathered %d)", len(got), len(want))
	}
	if got[0].String() != want[0].String() {
		t.Fatalf("striped exports\n%v\nprometheus.CounterVec exports\n%v", got[0], want[0])
	}
}

// gatherAll gathers reg with created timestamps left out: they are when
// each series was made, which differs between the two vectors.
func gatherAll(t *testing.T, reg prometheus.Gatherer) []*dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			if m.GetCounter().GetCreatedTimestamp() == nil {
				t.Fatalf("%s%v has no created timestamp", f.GetName(), m.GetLabel())
			}
			m.Counter.CreatedTimestamp = nil
		}
	}
	return fams
}

// A vector registered twice is refused as prometheus.CounterVec is, so
// callers that share one collector per registry find the first.
func TestCounterVecAlreadyRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "x_total", Help: "h"}
	first := NewCounterVec(opts, []string{"l"})
	reg.MustRegister(first)
	err := reg.Register(NewCounterVec(opts, []string{"l"}))
	are, ok := err.(prometheus.AlreadyRegisteredError)
	if !ok || are.ExistingCollector != first {
		t.Fatalf("second Register: %v, want AlreadyRegisteredError naming the first", err)
	}
}

var sink atomic.Uint64

// BenchmarkInc compares a striped counter with a prometheus.Counter and a
// bare atomic when every goroutine increments the same counter, as the
// topic chain's counters are on every delivery. With -cpu 2 and more,
// striped should stay near its -cpu 1 cost; the others pay a cache line
// transfer per increment.
func BenchmarkInc(b *testing.B) {
	opts := prometheus.CounterOpts{Name: "bench_total", Help: "h"}
	for _, bc := range []struct {
		name string
		inc  func()
	}{
		{"striped", NewCounter(opts).Inc},
		{"prometheus", prometheus.NewCounter(opts).Inc},
		{"atomic", func() { sink.Add(1) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bc.inc()
				}
			})
		})
	}
}

// Holds and releases from many goroutines, each release on another
// goroutine than its hold, leave Held exact once they are done.
func TestRefsCountsHolders(t *testing.T) {
	r := NewRefs()
	const goroutines, each = 16, 10000
	handoff := make(chan struct{}, 64)
	var holders, releaser sync.WaitGroup
	releaser.Go(func() {
		for range handoff {
			r.Release()
		}
	})
	for g := range goroutines {
		holders.Go(func() {
			for i := range each {
				r.Hold()
				if g%2 == 0 || i%2 == 0 {
					handoff <- struct{}{}
				}
			}
		})
	}
	holders.Wait()
	close(handoff)
	releaser.Wait()
	want := int64(goroutines / 2 * each / 2) // odd goroutines keep every odd hold
	if got := r.Held(); got != want {
		t.Fatalf("Held = %d, want %d", got, want)
	}
	for range want {
		r.Release()
	}
	if got := r.Held(); got != 0 {
		t.Fatalf("Held = %d after every release, want 0", got)
	}
}

// Every way one holder can sit on the shards while Held reads them, and
// another call holds and releases on any two shards at any point of the
// reads (as a nested hold given back by another goroutine does): Held is
// never below 1. The same schedules run on one signed count per shard, the
// striping Refs replaced, and must find it reading 0, or the schedules
// would prove nothing.
func TestRefsHeldNeverMissesAHolder(t *testing.T) {
	const shards = 4
	signedZero := false
	for holder := range shards {
		for at := range 2 * shards { // which shard read the race comes before
			for hold := range shards {
				for release := range shards {
					r := &Refs{shards: make([]refShard, shards)}
					r.shards[holder].holds.Add(1)
					got := r.held(func(releases bool, shard int) {
						if releases == (at < shards) && shard == at%shards {
							r.shards[hold].holds.Add(1)
							r.shards[release].releases.Add(1)
						}
					})
					if got < 1 {
						t.Fatalf("holder on shard %d, race before read %d, hold on %d, release on %d: Held = %d, want >= 1",
							holder, at, hold, release, got)
					}
					if signedSum(shards, holder, at%shards, hold, release) == 0 {
						signedZero = true
					}
				}
			}
		}
	}
	if !signedZero {
		t.Fatal("no schedule made a signed count per shard read 0: the schedules are too weak to test Refs")
	}
}

// signedSum is what one signed count per shard reads when a holder sits
// on shard holder and, just before shard at is read, another call adds 1
// on shard hold and -1 on shard release.
func signedSum(shards, holder, at, hold, release int) int64 {
	counts := make([]int64, shards)
	counts[holder]++
	var sum int64
	for i := range counts {
		if i == at {
			counts[hold]++
			counts[release]--
		}
		sum += counts[i]
	}
	return sum
}

var word atomic.Int64

// BenchmarkHoldRelease is the pair every broker event pays on the plugin
// set, from every core at once: Refs against one shared atomic word, the
// simpler scheme, which pays a cache line transfer per change with -cpu 2
// and more.
func BenchmarkHoldRelease(b *testing.B) {
	r := NewRefs()
	for _, bc := range []struct {
		name          string
		hold, release func()
	}{
		{"refs", r.Hold, r.Release},
		{"atomic", func() { word.Add(1) }, func() { word.Add(-1) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bc.hold()
					bc.release()
				}
			})
		})
	}
}

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

// An Int's sum is exact once the changes are done, however the increments
// and decrements fell on the shards, and it goes negative like an int64.
func TestIntSumsSignedChanges(t *testing.T) {
	n := NewInt()
	const goroutines, each = 16, 10000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				n.Add(1)
				if i%2 == 0 || g%2 == 0 {
					n.Add(-1)
				}
			}
		})
	}
	wg.Wait()
	want := int64(goroutines / 2 * each / 2) // odd goroutines keep every odd increment
	if got := n.Sum(); got != want {
		t.Fatalf("Sum = %d, want %d", got, want)
	}
	n.Add(-want - 5)
	if got := n.Sum(); got != -5 {
		t.Fatalf("Sum = %d, want -5", got)
	}
}

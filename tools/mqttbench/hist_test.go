package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistIndexBounds(t *testing.T) {
	// Every value must land in a bucket whose upper bound is at least the
	// value and whose predecessor's upper bound is below it; indexes must
	// not decrease with the value and must stay in range.
	vals := []int64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, 1<<20 + 1, 1e9, 1<<62 + 12345, math.MaxInt64}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		vals = append(vals, r.Int64N(1<<40))
	}
	slices.Sort(vals)
	prev := -1
	for _, v := range vals {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d out of range", v, i)
		}
		if i < prev {
			t.Fatalf("histIndex not monotonic at %d", v)
		}
		prev = i
		if histUpper(i) < v {
			t.Fatalf("histUpper(%d) = %d < %d", i, histUpper(i), v)
		}
		if i > 0 && histUpper(i-1) >= v {
			t.Fatalf("value %d also fits bucket %d (upper %d)", v, i-1, histUpper(i-1))
		}
		if v >= histSub {
			lower := histUpper(i-1) + 1
			if rel := float64(histUpper(i)-lower) / float64(lower); rel > 1.0/histSub+1e-9 {
				t.Fatalf("bucket %d relative width %.4f", i, rel)
			}
		}
	}
	if histIndex(-5) != 0 {
		t.Fatal("negative values must clamp to bucket 0")
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 || h.mean() != 0 {
		t.Fatal("empty histogram must report zeros")
	}
	r := rand.New(rand.NewPCG(3, 4))
	var vals []int64
	for range 100000 {
		// Latency-like: log-normal around 100 µs in nanoseconds.
		v := int64(math.Exp(r.NormFloat64()*1.2 + math.Log(100e3)))
		vals = append(vals, v)
		h.record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/histSub+1 {
			t.Errorf("p%v = %d, exact %d", q*100, got, exact)
		}
	}
	if h.quantile(1) != vals[len(vals)-1] || h.max != vals[len(vals)-1] || h.min != vals[0] {
		t.Errorf("max/min: %d %d %d, want %d %d", h.quantile(1), h.max, h.min, vals[len(vals)-1], vals[0])
	}
	var sum float64
	for _, v := range vals {
		sum += float64(v)
	}
	if m := h.mean(); math.Abs(m-sum/float64(len(vals))) > 1e-6*m {
		t.Errorf("mean %f, want %f", m, sum/float64(len(vals)))
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all histogram
	for i := int64(1); i <= 1000; i++ {
		if i%3 == 0 {
			a.record(i * 1000)
		} else {
			b.record(i * 1000)
		}
		all.record(i * 1000)
	}
	var m histogram
	m.merge(&a)
	m.merge(&b)
	m.merge(&histogram{}) // merging an empty one must not reset min
	if m.n != all.n || m.min != all.min || m.max != all.max || m.counts != all.counts {
		t.Fatalf("merged histogram differs: n %d/%d min %d/%d max %d/%d", m.n, all.n, m.min, all.min, m.max, all.max)
	}
	if m.quantile(0.5) != all.quantile(0.5) {
		t.Fatal("merged median differs")
	}
}

func TestHistogramRecordZeroAllocs(t *testing.T) {
	h := new(histogram)
	v := int64(1)
	if a := testing.AllocsPerRun(1000, func() { h.record(v); v = v*3 + 7 }); a != 0 {
		t.Fatalf("record allocates %.1f times", a)
	}
}

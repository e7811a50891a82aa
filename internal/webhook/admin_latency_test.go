package webhook

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The admin status estimates latency quantiles inside the histogram's
// buckets, as Prometheus's histogram_quantile does.
func TestQuantileFromBuckets(t *testing.T) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "t", Buckets: []float64{.001, .01, .1}})
	if q := quantile(histogramOf(h), 0.5); q != 0 {
		t.Fatalf("empty histogram: %v, want 0", q)
	}
	for range 90 {
		h.Observe(.0005) // first bucket
	}
	for range 10 {
		h.Observe(.05) // third bucket
	}
	d := histogramOf(h)
	if d.GetSampleCount() != 100 {
		t.Fatalf("count %d", d.GetSampleCount())
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	if q := quantile(d, 0.5); !near(q, .001*50/90) {
		t.Errorf("p50 = %v, want %v", q, .001*50/90)
	}
	if q := quantile(d, 0.99); !near(q, .01+(.1-.01)*(99-90)/10) {
		t.Errorf("p99 = %v, want %v", q, .01+(.1-.01)*(99-90)/10)
	}
	h.Observe(10) // beyond the last bucket
	if q := quantile(histogramOf(h), 1); q != .1 {
		t.Errorf("p100 beyond the buckets = %v, want the last bound", q)
	}
	if histogramOf(prometheus.NewSummary(prometheus.SummaryOpts{Name: "s"})) != nil {
		t.Error("a summary read as a histogram")
	}
}

package pebblestore

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mqttd/mqttd/internal/store"
)

// gather returns the registry's families by name.
func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// Every committed batch is counted with its latency, the log's fsyncs are
// a histogram, the size on disk is reported, and a batch refused after a
// write error is counted as an error, not as a batch.
func TestMetrics(t *testing.T) {
	m := NewMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	var full atomic.Bool
	s := mustOpen(t, t.TempDir(), Options{Durability: store.Sync, Metrics: m, FS: fullDisk(&full)})
	defer s.Close()
	fill(t, s)
	for range 4 {
		must(t, enqueueOne(s, "a"))
	}
	if n := value(t, reg, "mqttd_store_write_batches_total"); n != 5 {
		t.Errorf("write batches = %v, want 5", n)
	}
	f := gather(t, reg)
	if c := f["mqttd_store_commit_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); c != 5 {
		t.Errorf("commit latency samples = %d, want 5", c)
	}
	fs := f["mqttd_store_fsync_seconds"].GetMetric()[0].GetHistogram()
	if fs.GetSampleCount() < 5 || len(fs.GetBucket()) < 10 || fs.GetBucket()[len(fs.GetBucket())-1].GetCumulativeCount() == 0 {
		t.Errorf("fsync histogram: %d samples, %d buckets; want at least one fsync per synced batch, counted in the buckets", fs.GetSampleCount(), len(fs.GetBucket()))
	}
	if b := f["mqttd_store_disk_bytes"].GetMetric()[0].GetGauge().GetValue(); b < 100 {
		t.Errorf("disk bytes = %v, want the store's size", b)
	}
	m.SetRecovery(1500 * 1e6)
	if r := value(t, reg, "mqttd_store_recovery_seconds"); r != 1.5 {
		t.Errorf("recovery seconds = %v, want 1.5", r)
	}

	full.Store(true)
	failed := 0
	for i := 0; i < 100 && failed < 2; i++ {
		if enqueueOne(s, "a") != nil {
			failed++
		}
	}
	if failed != 2 {
		t.Fatal("the full disk failed no commit")
	}
	if n := value(t, reg, "mqttd_store_write_errors_total"); n != 2 {
		t.Errorf("write errors = %v, want 2 (the failed commit and the refused one)", n)
	}
	if n := value(t, reg, "mqttd_store_write_batches_total"); n != 5 {
		t.Errorf("write batches = %v after failures, want still 5", n)
	}
	s.Close()
	if strings.Contains(dump(t, reg), "mqttd_store_disk_bytes") {
		t.Error("a closed store still reports its size")
	}
}

func dump(t *testing.T, reg *prometheus.Registry) string {
	var b strings.Builder
	for name := range gather(t, reg) {
		b.WriteString(name + "\n")
	}
	return b.String()
}

// value is the counter or gauge name's value.
func value(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	f, ok := gather(t, reg)[name]
	if !ok {
		t.Fatalf("no series %s", name)
	}
	m := f.GetMetric()[0]
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

// The metrics' cost per commit, measured where it shows most: no fsync,
// one writer. Compare metrics=off with metrics=on.
func BenchmarkCommitMetrics(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", map[bool]string{false: "off", true: "on"}[on]), func(b *testing.B) {
			o := Options{Durability: store.None}
			if on {
				o.Metrics = NewMetrics()
			}
			s := mustOpenB(b, o)
			defer s.Close()
			b.ReportAllocs()
			for range b.N {
				if err := enqueueOne(s, "s0"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

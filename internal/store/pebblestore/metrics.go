package pebblestore

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metrics exports a store's writes and size as mqttd_store_* series. Give
// it to Open in Options.Metrics and register it once; it follows the
// store Open returned last (the one a quarantine started, not the one it
// moved aside).
type Metrics struct {
	batches  prometheus.Counter
	errors   prometheus.Counter
	commit   prometheus.Histogram
	recovery prometheus.Gauge
	failures prometheus.Counter // writable -> failed
	recovers prometheus.Counter // failed -> writable

	mu sync.Mutex
	s  *Store
}

var (
	descDiskBytes = prometheus.NewDesc("mqttd_store_disk_bytes",
		"Bytes the store takes on disk: its tables, its write-ahead log and its manifest.", nil, nil)
	descFsync = prometheus.NewDesc("mqttd_store_fsync_seconds",
		"Duration of each fsync of the store's write-ahead log.", nil, nil)
	descHealthy = prometheus.NewDesc("mqttd_store_healthy",
		"1 while the store accepts writes, 0 while it refuses them after a write error (disk full, I/O error) until its recovery probe reopens it.", nil, nil)
)

// fsyncBounds are the bucket bounds exported for the log's fsyncs. Each
// is rounded to a bound of Pebble's own histogram, so the counts are exact.
var fsyncBounds = []time.Duration{
	100 * time.Microsecond, 200 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 10 * time.Second,
}

// NewMetrics returns the store's series, unregistered.
func NewMetrics() *Metrics {
	return &Metrics{
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "mqttd_store_write_batches_total",
			Help: "Write batches committed to the store (one per PUBLISH to persistent sessions, session change or acknowledgement group)."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "mqttd_store_write_errors_total",
			Help: "Write batches the store failed or refused after a write error (disk full, I/O error); nothing in them was acknowledged."}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mqttd_store_commit_seconds",
			Help:    "Time from a write batch applied to it being as durable as storage.durability says (with sync: the fsync it shares with concurrent batches).",
			Buckets: []float64{.0001, .0002, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}}),
		recovery: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mqttd_store_recovery_seconds",
			Help: "How long the last start took to open the store and restore sessions and retained messages from it."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "mqttd_store_failures_total",
			Help: "Times the store started refusing writes after a write error (disk full, I/O error)."}),
		recovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "mqttd_store_recoveries_total",
			Help: "Times the store accepted writes again after a write error, once the disk took writes again (storage.retry-interval)."}),
	}
}

// SetRecovery records how long the start took to recover from the store.
func (m *Metrics) SetRecovery(d time.Duration) { m.recovery.Set(d.Seconds()) }

func (m *Metrics) attach(s *Store) {
	m.mu.Lock()
	m.s = s
	m.mu.Unlock()
}

// committed counts one batch that was applied at start; err is how its
// commit ended.
func (m *Metrics) committed(start time.Time, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.errors.Inc()
		return
	}
	m.batches.Inc()
	m.commit.Observe(time.Since(start).Seconds())
}

// failedOnce counts a transition to refusing writes.
func (m *Metrics) failedOnce() { m.failures.Inc() }

// recovered counts a transition back to accepting writes.
func (m *Metrics) recovered() { m.recovers.Inc() }

// refused counts a batch refused before it was applied.
func (m *Metrics) refused() {
	if m != nil {
		m.errors.Inc()
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range []prometheus.Collector{m.batches, m.errors, m.commit, m.recovery, m.failures, m.recovers} {
		c.Describe(ch)
	}
	ch <- descDiskBytes
	ch <- descFsync
	ch <- descHealthy
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range []prometheus.Collector{m.batches, m.errors, m.commit, m.recovery, m.failures, m.recovers} {
		c.Collect(ch)
	}
	m.mu.Lock()
	s := m.s
	m.mu.Unlock()
	if s == nil {
		return
	}
	healthy := 0.0
	if s.Healthy() {
		healthy = 1
	}
	ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, healthy)
	size, fsync, ok := s.diskMetrics()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(descDiskBytes, prometheus.GaugeValue, float64(size))
	if fsync != nil {
		ch <- fsync
	}
}

// diskMetrics reads the size on disk and the log's fsync histogram from
// Pebble; ok is false once the store is closed.
func (s *Store) diskMetrics() (size uint64, fsync prometheus.Metric, ok bool) {
	s.rmu.RLock()
	defer s.rmu.RUnlock()
	if s.rclosed {
		return 0, nil, false
	}
	pm := s.db.Metrics()
	if h := pm.LogWriter.FsyncLatency; h != nil {
		var d dto.Metric
		if err := h.Write(&d); err == nil && d.Histogram != nil {
			fsync = fsyncHistogram(d.Histogram)
		}
	}
	return pm.DiskSpaceUsage(), fsync, true
}

// fsyncHistogram converts Pebble's fsync histogram (nanoseconds, a hundred
// buckets) to seconds and the coarser fsyncBounds: each exported bound is
// the largest of Pebble's at or below the wanted one, with its exact count.
func fsyncHistogram(h *dto.Histogram) prometheus.Metric {
	buckets := map[float64]uint64{}
	pb := h.GetBucket()
	for _, want := range fsyncBounds {
		best := -1
		for i, b := range pb {
			if b.GetUpperBound() <= float64(want) {
				best = i
			}
		}
		if best >= 0 {
			buckets[pb[best].GetUpperBound()/float64(time.Second)] = pb[best].GetCumulativeCount()
		}
	}
	return prometheus.MustNewConstHistogram(descFsync, h.GetSampleCount(), h.GetSampleSum()/float64(time.Second), buckets)
}

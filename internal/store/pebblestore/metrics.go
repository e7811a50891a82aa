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

	mu sync.Mutex
	s  *Store
}

var (
	descDiskBytes = prometheus.NewDesc("mqttd_store_disk_bytes",
		"Bytes the store takes on disk: its tables, its write-ahead log and its manifest.", nil, nil)
	descFsync = prometheus.NewDesc("mqttd_store_fsync_seconds",
		"Duration of each fsync of the store's write-ahead log.", nil, nil)
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

// refused counts a batch refused before it was applied.
func (m *Metrics) refused() {
	if m != nil {
		m.errors.Inc()
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range []prometheus.Collector{m.batches, m.errors, m.commit, m.recovery} {
		c.Describe(ch)
	}
	ch <- descDiskBytes
	ch <- descFsync
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range []prometheus.Collector{m.batches, m.errors, m.commit, m.recovery} {
		c.Collect(ch)
	}
	m.mu.Lock()
	s := m.s
	m.mu.Unlock()
	if s == nil {
		return
	}
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

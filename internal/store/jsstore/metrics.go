package jsstore

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what the store meets on the way to JetStream. It is a
// prometheus.Collector; a nil *Metrics counts nothing.
type Metrics struct {
	conflicts prometheus.Counter
	split     prometheus.Counter
	failed    prometheus.Counter
	reclaim   prometheus.Counter
}

// NewMetrics returns the store's counters, to register and pass in
// Options.
func NewMetrics() *Metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "mqttd_store_jetstream_" + name, Help: help})
	}
	return &Metrics{
		conflicts: c("conflicts_total", "commits rebuilt because another writer changed a session head they read"),
		split:     c("split_batches_total", "commits over storage.jetstream-max-batch, stored in several atomic parts"),
		failed:    c("commit_failures_total", "commits that failed (NATS unreachable, JetStream timeout or error): nothing in them acknowledged"),
		reclaim:   c("reclaim_failures_total", "purges of acknowledged or deleted queue chunks that failed after their commit (left for the session's next purge; no read sees them)"),
	}
}

func (m *Metrics) inc(c func(*Metrics) prometheus.Counter) {
	if m != nil {
		c(m).Inc()
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all() {
		c.Collect(ch)
	}
}

func (m *Metrics) all() []prometheus.Counter {
	return []prometheus.Counter{m.conflicts, m.split, m.failed, m.reclaim}
}

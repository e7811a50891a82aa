package jsstore

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what the store meets on the way to JetStream. It is a
// prometheus.Collector; a nil *Metrics counts nothing.
type Metrics struct {
	conflicts prometheus.Counter
	split     prometheus.Counter
	failed    prometheus.Counter
	reclaim   prometheus.Counter
	// Reclaiming message bodies (see reclaimBodies).
	laggards      prometheus.Counter
	laggardTooBig prometheus.Counter
	oldest        prometheus.Gauge
	// The cache of body records (see bodyCache).
	bodyHits, bodyMisses, bodyEvictions prometheus.Counter
}

// NewMetrics returns the store's counters, to register and pass in
// Options.
func NewMetrics() *Metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "mqttd_store_jetstream_" + name, Help: help})
	}
	return &Metrics{
		conflicts:     c("conflicts_total", "commits rebuilt because another writer changed a session head they read"),
		split:         c("split_batches_total", "commits over storage.jetstream-max-batch, stored in several atomic parts"),
		failed:        c("commit_failures_total", "commits that failed (NATS unreachable, JetStream timeout or error): nothing in them acknowledged"),
		reclaim:       c("reclaim_failures_total", "purges of acknowledged or deleted queue chunks, or of message bodies no queue refers to, that failed (left for the next purge; no read sees them)"),
		laggards:      c("laggard_rewrites_total", "sessions whose queue, older than storage.jetstream-laggard-age, was rewritten with its messages inline so that the message bodies stored since could be reclaimed"),
		laggardTooBig: c("laggard_too_big_total", "times a session older than storage.jetstream-laggard-age had too many chunks to rewrite in one atomic batch (storage.jetstream-max-batch): the message bodies stored since its oldest entry stay until it drains"),
		bodyHits:      c("body_cache_hits_total", "message bodies shared by several sessions that a read found in this node's cache of body records"),
		bodyMisses:    c("body_cache_misses_total", "message bodies shared by several sessions that a read had to fetch from JetStream (then kept in the cache)"),
		bodyEvictions: c("body_cache_evictions_total", "body records dropped from the cache to keep it within storage.jetstream-body-cache-bytes"),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mqttd_store_jetstream_oldest_chunk_age_seconds",
			Help: "age of the oldest queue chunk in the stream when the bodies were last reclaimed: message bodies stored since then are kept"}),
	}
}

func (m *Metrics) inc(c func(*Metrics) prometheus.Counter) {
	if m != nil {
		c(m).Inc()
	}
}

func (m *Metrics) set(g func(*Metrics) prometheus.Gauge, v float64) {
	if m != nil {
		g(m).Set(v)
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

func (m *Metrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.conflicts, m.split, m.failed, m.reclaim, m.laggards, m.laggardTooBig, m.oldest, m.bodyHits, m.bodyMisses, m.bodyEvictions}
}

package webhook

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/metrics/striped"
	"github.com/mqttd/mqttd/internal/webhook/batch"
)

// Metrics live in one metricSet per prometheus.Registerer, shared by every
// plugin registered there, and are labelled by alias. Plugins are rebuilt
// on every config reload; a set per plugin would register the same series
// twice while old and new overlap. With one set, a rebuilt plugin picks up
// its alias's counters where the old one left them, the gauges follow the
// newest live plugin of each alias, and an alias's series disappear when
// its last plugin closes.

// outcomes are the values of the outcome label of decisions_total: what a
// call to the plugin came to (once per HTTP call or breaker refusal, however
// many callers shared it), plus stale, counted per caller served an
// expired decision after an error.
var outcomes = []string{
	"allow", "deny", "ignore",
	KindTimeout.outcome(), KindRefused.outcome(), KindStatus.outcome(), KindBadAnswer.outcome(),
	KindBreakerOpen.outcome(), KindRejected.outcome(), KindTooLarge.outcome(), KindBusy.outcome(), "stale",
	"continue",
}

var (
	descBreakerState = prometheus.NewDesc("mqttd_webhook_breaker_state",
		"Circuit breaker state per plugin endpoint: 0 closed, 1 half-open, 2 open.", []string{"plugin", "endpoint"}, nil)
	descCacheEntries = prometheus.NewDesc("mqttd_webhook_cache_entries",
		"Decisions in the plugin's cache, expired ones kept for stale serving included.", []string{"plugin"}, nil)
	descQueueDepth = prometheus.NewDesc("mqttd_webhook_event_queue_depth",
		"Events waiting to be sent to the plugin.", []string{"plugin"}, nil)
	descEventsSent = prometheus.NewDesc("mqttd_webhook_events_sent_total",
		"Events the plugin accepted.", []string{"plugin"}, nil)
	descEventsRetried = prometheus.NewDesc("mqttd_webhook_events_retried_total",
		"Event batches sent again after a 5xx, 429, timeout or connection error.", []string{"plugin"}, nil)
	descEventsDropped = prometheus.NewDesc("mqttd_webhook_events_dropped_total",
		"Events given up: overflow (queue full), failed (refused or out of retries), encode, shutdown, spool_bound (durable spool over queue.durable-max-bytes, oldest first).",
		[]string{"plugin", "reason"}, nil)
	descEventsSpooled = prometheus.NewDesc("mqttd_webhook_events_spooled_total",
		"Events written to the plugin's durable spool (queue full, plugin down, or shutdown).", []string{"plugin"}, nil)
	descEventsFromSpool = prometheus.NewDesc("mqttd_webhook_events_spool_delivered_total",
		"Events the plugin accepted from its durable spool (also counted in events_sent_total).", []string{"plugin"}, nil)
	descSpoolBytes = prometheus.NewDesc("mqttd_webhook_event_spool_bytes",
		"Bytes held in the plugin's durable spool.", []string{"plugin"}, nil)
	descSpoolEvents = prometheus.NewDesc("mqttd_webhook_event_spool_events",
		"Events held in the plugin's durable spool.", []string{"plugin"}, nil)
)

type metricSet struct {
	reg  prometheus.Registerer
	refs int // live plugins using the set; guarded by registries.mu

	duration               *prometheus.HistogramVec
	decisions, transitions *prometheus.CounterVec
	// hits is striped (see package striped): every delivered message costs
	// two topic checks answered from the memo, on every core at once.
	hits                  *striped.CounterVec
	misses, stale, evicts *prometheus.CounterVec
	slotWaits             *prometheus.CounterVec

	mu   sync.Mutex
	live map[string][]*Plugin   // by alias, oldest first
	base map[string]batch.Stats // events delivered by the alias's closed pipelines
}

var registries = struct {
	mu sync.Mutex
	m  map[prometheus.Registerer]*metricSet
}{m: map[prometheus.Registerer]*metricSet{}}

// acquireMetrics returns reg's set, registering it on first use, and adds
// p to its live plugins.
func acquireMetrics(reg prometheus.Registerer, p *Plugin) (*metricSet, error) {
	registries.mu.Lock()
	defer registries.mu.Unlock()
	s := registries.m[reg]
	if s == nil {
		s = newMetricSet(reg)
		for _, c := range s.collectors() {
			if err := reg.Register(c); err != nil {
				s.unregister()
				return nil, err
			}
		}
		registries.m[reg] = s
	}
	s.refs++
	s.mu.Lock()
	s.live[p.opts.Alias] = append(s.live[p.opts.Alias], p)
	s.mu.Unlock()
	return s, nil
}

// release removes p. Its pipeline's final counts carry over to the next
// plugin of its alias; when none is left the alias's series are deleted,
// and when the set has no plugin left it is unregistered.
func (s *metricSet) release(p *Plugin, final batch.Stats) {
	registries.mu.Lock()
	defer registries.mu.Unlock()
	alias := p.opts.Alias
	s.mu.Lock()
	list := s.live[alias]
	for i, q := range list {
		if q == p {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) > 0 {
		s.live[alias] = list
		s.base[alias] = addStats(s.base[alias], final)
	} else {
		delete(s.live, alias)
		delete(s.base, alias)
		only := prometheus.Labels{"plugin": alias}
		for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
			s.duration, s.decisions, s.transitions, s.hits, s.misses, s.stale, s.evicts, s.slotWaits,
		} {
			v.DeletePartialMatch(only)
		}
	}
	s.mu.Unlock()
	if s.refs--; s.refs == 0 {
		s.unregister()
		delete(registries.m, s.reg)
	}
}

func newMetricSet(reg prometheus.Registerer) *metricSet {
	perPlugin := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"plugin"})
	}
	return &metricSet{
		reg: reg,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mqttd_webhook_request_duration_seconds",
			Help:    "Time of decision calls to the plugin, from sending the request to reading the answer.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"plugin", "endpoint"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqttd_webhook_decisions_total",
			Help: "Outcomes of decision calls (allow, deny, ignore, error_<kind>, breaker_open), refusals without a decision (rejected, too_large, busy) and stale serves.",
		}, []string{"plugin", "endpoint", "outcome"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqttd_webhook_breaker_transitions_total",
			Help: "Circuit breaker state changes, by the state entered.",
		}, []string{"plugin", "endpoint", "to"}),
		hits: striped.NewCounterVec(prometheus.CounterOpts{Name: "mqttd_webhook_cache_hits_total",
			Help: "Decisions answered from a fresh cache entry."}, []string{"plugin"}),
		misses: perPlugin("mqttd_webhook_cache_misses_total", "Decisions not in the cache or expired."),
		stale:  perPlugin("mqttd_webhook_cache_stale_serves_total", "Expired decisions served because the plugin failed (on-error: stale)."),
		evicts: perPlugin("mqttd_webhook_cache_evictions_total", "Entries pushed out of a full cache."),
		slotWaits: perPlugin("mqttd_webhook_auth_slot_waits_total",
			"Authenticate calls that found every max-concurrent slot taken and waited (those still waiting at the timeout are refused: decisions_total outcome busy)."),
		live: map[string][]*Plugin{},
		base: map[string]batch.Stats{},
	}
}

func (s *metricSet) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.duration, s.decisions, s.transitions, s.hits, s.misses, s.stale, s.evicts, s.slotWaits, s}
}

func (s *metricSet) unregister() {
	for _, c := range s.collectors() {
		s.reg.Unregister(c)
	}
}

// Describe and Collect make the set a collector of the values read from
// the live plugins: breaker states, cache sizes and event counts.
func (s *metricSet) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBreakerState, descCacheEntries, descQueueDepth, descEventsSent, descEventsRetried, descEventsDropped,
		descEventsSpooled, descEventsFromSpool, descSpoolBytes, descSpoolEvents} {
		ch <- d
	}
}

func (s *metricSet) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for alias, list := range s.live {
		p := list[len(list)-1]
		for _, ep := range p.endpoints() {
			ch <- prometheus.MustNewConstMetric(descBreakerState, prometheus.GaugeValue, float64(ep.breaker.State()), alias, ep.name)
		}
		ch <- prometheus.MustNewConstMetric(descCacheEntries, prometheus.GaugeValue, float64(p.cacheLen()), alias)
		st := p.eventStats()
		ch <- prometheus.MustNewConstMetric(descQueueDepth, prometheus.GaugeValue, float64(st.Queued), alias)
		st = addStats(st, s.base[alias])
		counter := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{alias}, labels...)...)
		}
		counter(descEventsSent, st.Sent)
		counter(descEventsRetried, st.Retried)
		counter(descEventsDropped, st.Dropped.Overflow, "overflow")
		counter(descEventsDropped, st.Dropped.Failed, "failed")
		counter(descEventsDropped, st.Dropped.Encode, "encode")
		counter(descEventsDropped, st.Dropped.Shutdown, "shutdown")
		if p.spool != nil {
			counter(descEventsDropped, st.Dropped.Spool, "spool_bound")
			counter(descEventsSpooled, st.Spooled)
			counter(descEventsFromSpool, st.FromSpool)
			sp := p.spoolStats()
			ch <- prometheus.MustNewConstMetric(descSpoolBytes, prometheus.GaugeValue, float64(sp.Bytes), alias)
			ch <- prometheus.MustNewConstMetric(descSpoolEvents, prometheus.GaugeValue, float64(sp.Records), alias)
		}
	}
}

// addStats sums the counters of a and b (not Queued, a gauge).
func addStats(a, b batch.Stats) batch.Stats {
	a.Batches += b.Batches
	a.Sent += b.Sent
	a.Retried += b.Retried
	a.Dropped.Overflow += b.Dropped.Overflow
	a.Dropped.Failed += b.Dropped.Failed
	a.Dropped.Encode += b.Dropped.Encode
	a.Dropped.Shutdown += b.Dropped.Shutdown
	a.Dropped.Spool += b.Dropped.Spool
	a.Spooled += b.Spooled
	a.FromSpool += b.FromSpool
	return a
}

// endpointMetrics are one endpoint's resolved series, so the decision path
// does no label lookup.
type endpointMetrics struct {
	duration prometheus.Observer
	outcome  map[string]prometheus.Counter
}

func (s *metricSet) endpoint(alias, ep string) endpointMetrics {
	m := endpointMetrics{
		duration: s.duration.WithLabelValues(alias, ep),
		outcome:  make(map[string]prometheus.Counter, len(outcomes)),
	}
	for _, o := range outcomes {
		m.outcome[o] = s.decisions.WithLabelValues(alias, ep, o)
	}
	return m
}

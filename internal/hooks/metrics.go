package hooks

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/metrics/striped"
)

// Decisions are counted per action; the index is the mqtt.Action value, with
// 0 (which mqtt.Action never uses) standing for authenticate.
const (
	actAuthenticate = 0
	numActs         = 4
)

var actNames = [numActs]string{"authenticate", "subscribe", "publish", "receive"}

// outcome is how one plugin call ended, as counted in
// mqttd_plugin_decisions_total{result}.
type outcome uint8

const (
	outAllow outcome = iota
	outDeny
	outIgnore
	outError
	outTimeout
	outPanic
	outCanceled // the caller stopped waiting: the client left, or another plugin already decided
	outContinue // an enhanced-authentication step goes on
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"allow", "deny", "ignore", "error", "timeout", "panic", "canceled", "continue"}

// metrics are the framework's collectors. They are created and registered
// once per Manager, so a Reload reuses them instead of registering again.
//
// The decision and event counters are striped (see package striped): the
// topic chain counts two decisions per delivered message, and an events
// plugin one event per message, on every core at once.
type metrics struct {
	decisions   *striped.CounterVec
	chain       *striped.CounterVec
	grants      *striped.CounterVec
	events      *striped.CounterVec
	eventPanics *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	shadow      *prometheus.CounterVec
	drops       *drops
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: striped.NewCounterVec(prometheus.CounterOpts{
			Name: "mqttd_plugin_decisions_total",
			Help: "Answers of one plugin to authenticate and topic checks, by action and result (allow, deny, ignore, error, timeout, panic, canceled).",
		}, []string{"plugin", "action", "result"}),
		chain: striped.NewCounterVec(prometheus.CounterOpts{
			Name: "mqttd_plugin_chain_decisions_total",
			Help: "Final decisions of the authenticate and topic-check chains, by action and result.",
		}, []string{"action", "result"}),
		grants: striped.NewCounterVec(prometheus.CounterOpts{
			Name: "mqttd_plugin_grant_decisions_total",
			Help: "Topic checks decided by the grants a client's authentication answered (acl), without asking a topic plugin, by action and result; a publish or delivery a grant allows is decided by the broker itself and not counted.",
		}, []string{"action", "result"}),
		events: striped.NewCounterVec(prometheus.CounterOpts{
			Name: "mqttd_plugin_events_total",
			Help: "Events handed to each plugin.",
		}, []string{"plugin"}),
		eventPanics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqttd_plugin_event_panics_total",
			Help: "Events whose hand-over to a plugin panicked (the broker carried on).",
		}, []string{"plugin"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqttd_auth_rate_limited_total",
			Help: "CONNECTs refused at once, without asking a plugin, by auth.rate-limit: their source address used up its failed logins (reason failures), had max-pending logins in progress (reason pending), or was new while max-sources addresses all had logins in progress (reason sources).",
		}, []string{"reason"}),
		shadow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqttd_plugin_shadow_total",
			Help: "Answers of shadow plugins (plugins.<alias>.shadow) compared with the enforced decision, by action and outcome (agree, disagree, ignore, error, skipped).",
		}, []string{"plugin", "action", "outcome"}),
		drops: &drops{live: map[*Manager]struct{}{}},
	}
	if reg == nil {
		return m, nil
	}
	var err error
	for _, sv := range []**striped.CounterVec{&m.decisions, &m.chain, &m.grants, &m.events} {
		if *sv, err = share(reg, *sv); err != nil {
			return nil, err
		}
	}
	if m.eventPanics, err = share(reg, m.eventPanics); err != nil {
		return nil, err
	}
	if m.rateLimited, err = share(reg, m.rateLimited); err != nil {
		return nil, err
	}
	if m.shadow, err = share(reg, m.shadow); err != nil {
		return nil, err
	}
	if m.drops, err = share(reg, m.drops); err != nil {
		return nil, err
	}
	return m, nil
}

// share registers c on reg, or returns the collector already registered
// there under the same metrics: a second Manager on one registry (a restart
// within the process, tests) shares the series rather than fail.
func share[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	switch {
	case errors.As(err, &are):
		existing, ok := are.ExistingCollector.(C)
		if !ok {
			return c, fmt.Errorf("hooks: metrics: another collector is registered under the plugin metric names: %w", err)
		}
		return existing, nil
	case err != nil:
		return c, fmt.Errorf("hooks: metrics: %w", err)
	}
	return c, nil
}

// Dropper is an optional capability of a plugin that queues events (see
// Queue) and gives up some when it falls behind: Dropped counts them. The
// Manager exports it as mqttd_plugin_events_dropped_total{plugin}.
type Dropper interface {
	Dropped() uint64
}

var descDropped = prometheus.NewDesc("mqttd_plugin_events_dropped_total",
	"Events a plugin lost because its queue was full (plugins that count them, such as event-log). "+
		"A reload that builds the plugin anew starts its count again.",
	[]string{"plugin"}, nil)

// drops collects mqttd_plugin_events_dropped_total. The plugins keep the
// counts (a drop is an atomic add in their queue, on the broker's event
// path), so they are read at scrape time instead of copied into a counter.
// One drops serves every Manager on a registry, as the vectors do; it
// reads the plugins of those that are live (from New to Close).
type drops struct {
	mu   sync.Mutex
	live map[*Manager]struct{}
}

// join and leave bracket a Manager's life: after New built its state,
// and once Close closed its plugins.
func (d *drops) join(m *Manager) {
	d.mu.Lock()
	d.live[m] = struct{}{}
	d.mu.Unlock()
}

func (d *drops) leave(m *Manager) {
	d.mu.Lock()
	delete(d.live, m)
	d.mu.Unlock()
}

func (d *drops) Describe(ch chan<- *prometheus.Desc) { ch <- descDropped }

// Collect reports the current plugins of each live Manager. A registry
// takes each label set once, so Managers sharing an alias are summed; a
// plugin serving several aliases counts once, under the first (distinct).
func (d *drops) Collect(ch chan<- prometheus.Metric) {
	byAlias := map[string]uint64{}
	d.mu.Lock()
	for m := range d.live {
		for _, p := range m.cur.Load().distinct() {
			if dp, ok := p.value.(Dropper); ok {
				byAlias[p.alias] += dp.Dropped()
			}
		}
	}
	d.mu.Unlock()
	for alias, n := range byAlias {
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(n), alias)
	}
}

// pluginCounters are one alias's children of the vectors, looked up once so
// a decision costs an atomic add and no label hashing.
type pluginCounters struct {
	decisions [numActs][numOutcomes]*striped.Counter
	events    *striped.Counter
	panics    prometheus.Counter
}

func (m *metrics) forPlugin(alias string) *pluginCounters {
	pc := &pluginCounters{
		events: m.events.WithLabelValues(alias),
		panics: m.eventPanics.WithLabelValues(alias),
	}
	for a := range numActs {
		for o := range numOutcomes {
			pc.decisions[a][o] = m.decisions.WithLabelValues(alias, actNames[a], outcomeNames[o])
		}
	}
	return pc
}

// forget drops the series of an alias that a Reload removed.
func (m *metrics) forget(alias string) {
	l := prometheus.Labels{"plugin": alias}
	m.decisions.DeletePartialMatch(l)
	m.shadow.DeletePartialMatch(l)
	m.events.DeletePartialMatch(l)
	m.eventPanics.DeletePartialMatch(l)
}

// chainCounters are the chain's children, looked up once.
type chainCounters [numActs][2]*striped.Counter // [action][deny, allow]

func (m *metrics) forChains() *chainCounters { return countersOf(m.chain) }

// forGrants are the grant decisions' children, looked up once.
func (m *metrics) forGrants() *chainCounters { return countersOf(m.grants) }

func countersOf(v *striped.CounterVec) *chainCounters {
	var cc chainCounters
	for a := range numActs {
		cc[a][0] = v.WithLabelValues(actNames[a], "deny")
		cc[a][1] = v.WithLabelValues(actNames[a], "allow")
	}
	return &cc
}

func (cc *chainCounters) count(act int, allow bool) {
	i := 0
	if allow {
		i = 1
	}
	cc[act][i].Inc()
}

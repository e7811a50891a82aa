package hooks

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
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
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"allow", "deny", "ignore", "error", "timeout", "panic", "canceled"}

// metrics are the framework's collectors. They are created and registered
// once per Manager, so a Reload reuses them instead of registering again.
type metrics struct {
	decisions   *prometheus.CounterVec
	chain       *prometheus.CounterVec
	events      *prometheus.CounterVec
	eventPanics *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqttd_plugin_decisions_total",
			Help: "Answers of one plugin to authenticate and topic checks, by action and result (allow, deny, ignore, error, timeout, panic, canceled).",
		}, []string{"plugin", "action", "result"}),
		chain: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqttd_plugin_chain_decisions_total",
			Help: "Final decisions of the authenticate and topic-check chains, by action and result.",
		}, []string{"action", "result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqttd_plugin_events_total",
			Help: "Events handed to each plugin.",
		}, []string{"plugin"}),
		eventPanics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqttd_plugin_event_panics_total",
			Help: "Events whose hand-over to a plugin panicked (the broker carried on).",
		}, []string{"plugin"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, cv := range []**prometheus.CounterVec{&m.decisions, &m.chain, &m.events, &m.eventPanics} {
		err := reg.Register(*cv)
		var are prometheus.AlreadyRegisteredError
		switch {
		case errors.As(err, &are):
			// A second Manager on the same registry (a restart within the
			// process, tests): share the series rather than fail.
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("hooks: metrics: another collector is registered under the plugin metric names: %w", err)
			}
			*cv = existing
		case err != nil:
			return nil, fmt.Errorf("hooks: metrics: %w", err)
		}
	}
	return m, nil
}

// pluginCounters are one alias's children of the vectors, looked up once so
// a decision costs an atomic add and no label hashing.
type pluginCounters struct {
	decisions [numActs][numOutcomes]prometheus.Counter
	events    prometheus.Counter
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
	m.events.DeletePartialMatch(l)
	m.eventPanics.DeletePartialMatch(l)
}

// chainCounters are the chain's children, looked up once.
type chainCounters [numActs][2]prometheus.Counter // [action][deny, allow]

func (m *metrics) forChains() *chainCounters {
	var cc chainCounters
	for a := range numActs {
		cc[a][0] = m.chain.WithLabelValues(actNames[a], "deny")
		cc[a][1] = m.chain.WithLabelValues(actNames[a], "allow")
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

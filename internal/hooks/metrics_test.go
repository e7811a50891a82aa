package hooks

import (
	"context"
	"maps"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// leaky is a plugin that counts events it lost, as event-log does.
type leaky struct{ n atomic.Uint64 }

func (l *leaky) Dropped() uint64 { return l.n.Load() }

// droppedSeries gathers mqttd_plugin_events_dropped_total by plugin.
func droppedSeries(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "mqttd_plugin_events_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return got
}

func wantDropped(t *testing.T, reg prometheus.Gatherer, step string, want map[string]float64) {
	t.Helper()
	if got := droppedSeries(t, reg); !maps.Equal(got, want) {
		t.Errorf("%s: mqttd_plugin_events_dropped_total %v, want %v", step, got, want)
	}
}

// The drop counts of plugins that keep one (Dropper) are read at scrape
// time, per alias; plugins without one have no series; Managers sharing a
// registry add up, and a Manager's series go with a Reload dropping the
// alias, or with its Close.
func TestDroppedEventsMetric(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	first := &leaky{}
	m1 := mustNew(t, Options{Registerer: reg,
		Plugins: map[string]PluginSpec{"log": {Plugin: first}, "quiet": {Plugin: &scripted{}}}})
	wantDropped(t, reg, "nothing dropped yet", map[string]float64{"log": 0})
	first.n.Store(3)
	wantDropped(t, reg, "3 dropped", map[string]float64{"log": 3})
	first.n.Add(2)
	wantDropped(t, reg, "2 more", map[string]float64{"log": 5})

	second, other := &leaky{}, &leaky{}
	second.n.Store(4)
	other.n.Store(1)
	m2 := mustNew(t, Options{Registerer: reg,
		Plugins: map[string]PluginSpec{"log": {Plugin: second}, "other": {Plugin: other}}})
	wantDropped(t, reg, "a second Manager", map[string]float64{"log": 9, "other": 1})

	if err := m2.Reload(Options{Plugins: map[string]PluginSpec{"log": {Plugin: second}}}); err != nil {
		t.Fatal(err)
	}
	wantDropped(t, reg, "other reloaded away", map[string]float64{"log": 9})

	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := m1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wantDropped(t, reg, "the first Manager closed", map[string]float64{"log": 4})
	if err := m2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wantDropped(t, reg, "both closed", map[string]float64{})
}

// One plugin value under two aliases is one queue: counted once.
func TestDroppedEventsSharedPlugin(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	l := &leaky{}
	l.n.Store(7)
	mustNew(t, Options{Registerer: reg, Plugins: map[string]PluginSpec{"a": {Plugin: l}, "b": {Plugin: l}}})
	wantDropped(t, reg, "shared", map[string]float64{"a": 7})
}

// A foreign collector under a plugin metric name is an error from New, not
// a panic or a silently missing series.
func TestMetricsNameTaken(t *testing.T) {
	for _, name := range []string{"mqttd_plugin_events_total", "mqttd_plugin_events_dropped_total"} {
		reg := prometheus.NewRegistry()
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: "not ours"}, func() float64 { return 0 }))
		_, err := New(Options{Registerer: reg})
		if err == nil || !strings.Contains(err.Error(), "hooks: metrics") {
			t.Errorf("%s taken: New error %v, want one about the metrics", name, err)
		}
	}
}

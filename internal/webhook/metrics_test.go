package webhook

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gather returns the families the plugin's registry exports.
func gather(t *testing.T, reg prometheus.Registerer) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := reg.(prometheus.Gatherer).Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// metricValue sums the series of name whose labels include want (plus the
// plugin's alias); ok is false when there is none.
func metricValue(t *testing.T, reg prometheus.Registerer, alias, name string, want map[string]string) (float64, bool) {
	t.Helper()
	fam := gather(t, reg)[name]
	if fam == nil {
		return 0, false
	}
	sum, found := 0.0, false
outer:
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["plugin"] != alias {
			continue
		}
		for k, v := range want {
			if labels[k] != v {
				continue outer
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum, found
}

func counterValue(t *testing.T, p *Plugin, name string, labels map[string]string) float64 {
	t.Helper()
	v, _ := metricValue(t, p.opts.Registerer, p.opts.Alias, name, labels)
	return v
}

func TestDecisionMetrics(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), nil)
	auth(p, mqttClient("c1", "alice"), "pw")
	auth(p, mqttClient("c1", "alice"), "pw")
	f.handle("/topic_filtering", answer(403, ``))
	p.FilterTopic(context.Background(), mqttClient("c1", "alice"), publish)
	f.handle("/authenticate", answer(500, ``))
	auth(p, mqttClient("c2", "bob"), "pw")

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"mqttd_webhook_decisions_total", map[string]string{"endpoint": "authenticate", "outcome": "allow"}, 1},
		{"mqttd_webhook_decisions_total", map[string]string{"endpoint": "topic_filtering", "outcome": "deny"}, 1},
		{"mqttd_webhook_decisions_total", map[string]string{"endpoint": "authenticate", "outcome": "error_status"}, 1},
		{"mqttd_webhook_request_duration_seconds", map[string]string{"endpoint": "authenticate"}, 2},
		{"mqttd_webhook_cache_hits_total", nil, 1},
		{"mqttd_webhook_cache_misses_total", nil, 3},
		{"mqttd_webhook_cache_entries", nil, 2},
		{"mqttd_webhook_breaker_state", map[string]string{"endpoint": "authenticate"}, 0},
		{"mqttd_webhook_event_queue_depth", nil, 0},
	} {
		got, ok := metricValue(t, p.opts.Registerer, "accounts", c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	for _, reason := range []string{"overflow", "failed", "encode", "shutdown"} {
		if _, ok := metricValue(t, p.opts.Registerer, "accounts", "mqttd_webhook_events_dropped_total", map[string]string{"reason": reason}); !ok {
			t.Errorf("events_dropped_total{reason=%q} missing", reason)
		}
	}
}

// A config reload builds the new plugin before closing the old one, under
// the same alias and registry: nothing may panic, counters continue, and
// the series go only when the last plugin of the alias closes.
func TestMetricsSurviveRebuild(t *testing.T) {
	f := newFake(t)
	reg := prometheus.NewRegistry()
	mk := func() *Plugin {
		o := testOptions(f.url())
		o.Registerer = reg
		p, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := mk()
	auth(old, mqttClient("c1", "alice"), "pw")
	renewed := mk()
	auth(renewed, mqttClient("c2", "alice"), "pw")
	if err := old.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ := metricValue(t, reg, "accounts", "mqttd_webhook_decisions_total", map[string]string{"outcome": "allow"})
	if got != 2 {
		t.Fatalf("allow decisions across the rebuild = %v, want 2", got)
	}
	if _, ok := metricValue(t, reg, "accounts", "mqttd_webhook_breaker_state", nil); !ok {
		t.Fatal("gauges vanished while a plugin of the alias is live")
	}
	other := mk()
	other.Close(context.Background())
	renewed.Close(context.Background())
	if fams := gather(t, reg); len(fams) != 0 {
		t.Fatalf("series left after every plugin closed: %d families", len(fams))
	}
	// The registry is free for a new generation.
	again := mk()
	defer again.Close(context.Background())
	if _, ok := metricValue(t, reg, "accounts", "mqttd_webhook_breaker_state", nil); !ok {
		t.Fatal("a plugin built after a full release exports nothing")
	}
}

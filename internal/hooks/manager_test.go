package hooks

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/prometheus/client_golang/prometheus"
)

// Bad options get an error naming the key at fault and what is wrong.
func TestNewValidation(t *testing.T) {
	logOnly := &recorder{mask: eventsOf(mqtt.EventClientConnected)}
	both := &scripted{}
	plugins := map[string]PluginSpec{
		"a":   {Plugin: both, Type: "webhook"},
		"b":   {Plugin: both, Type: "webhook"},
		"log": {Plugin: logOnly, Type: "event-log"},
	}
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"unknown auth alias", Options{Plugins: plugins, Auth: AuthOptions{Plugins: []string{"acct"}}},
			`auth.plugins: "acct" is not a plugin (defined: a, b, log)`},
		{"unknown topic alias, none defined", Options{Topics: TopicOptions{Enable: true, Plugins: []string{"x"}}},
			`topic-check.plugins: "x" is not a plugin (defined: none)`},
		{"sink cannot authenticate", Options{Plugins: plugins, Auth: AuthOptions{Plugins: []string{"a", "log"}}},
			`auth.plugins: "log" (type event-log) cannot authenticate`},
		{"sink cannot filter", Options{Plugins: plugins, Topics: TopicOptions{Enable: true, Plugins: []string{"log"}}},
			`topic-check.plugins: "log" (type event-log) cannot filter topics`},
		{"listed twice", Options{Plugins: plugins, Auth: AuthOptions{Plugins: []string{"a", "b", "a"}}},
			`auth.plugins: "a" is listed twice`},
		{"bad mode", Options{Plugins: plugins, Auth: AuthOptions{Mode: "any"}},
			`auth.mode: "any" is not a mode (all, first)`},
		{"bad default", Options{Topics: TopicOptions{Enable: true, Default: 7}},
			`topic-check.default: 7 is not allow or deny`},
		{"nil plugin", Options{Plugins: map[string]PluginSpec{"x": {Type: "webhook"}}},
			`plugins.x: no plugin was built for this alias (type "webhook")`},
		{"bad on-error", Options{Plugins: map[string]PluginSpec{"x": {Plugin: both, OnError: 9}}},
			`plugins.x.on-error: 9 is not a policy (deny, allow, ignore, stale)`},
		{"negative timeout", Options{Plugins: map[string]PluginSpec{"x": {Plugin: both, Timeout: -1}}},
			`plugins.x.timeout: -1ns is negative`},
		{"empty alias", Options{Plugins: map[string]PluginSpec{"": {Plugin: both}}},
			`plugins: an alias is empty`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(tc.opts)
			if err == nil {
				m.Close(context.Background())
				t.Fatalf("New accepted the options; want %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to start with %q", err, tc.want)
			}
		})
	}
}

// Hooks holds only what the options need, so the broker's hot path skips
// the rest.
func TestHooksNilWhereNothingIsConfigured(t *testing.T) {
	sink := &recorder{mask: eventsOf(mqtt.EventClientConnected)}
	quiet := &recorder{}
	configured := &recorder{}
	for _, tc := range []struct {
		name                 string
		opts                 Options
		auth, topics, events bool
		mask                 mqtt.EventMask
	}{
		{"nothing", Options{Auth: AuthOptions{AllowAnonymous: true}}, false, false, false, 0},
		{"anonymous off", Options{}, true, false, false, 0},
		// An auth plugin may answer grants, which the topic chain enforces.
		{"auth plugin", Options{Plugins: map[string]PluginSpec{"a": {Plugin: &scripted{}}},
			Auth: AuthOptions{Plugins: []string{"a"}, AllowAnonymous: true}}, true, true, false, 0},
		{"topic-check on", Options{Auth: AuthOptions{AllowAnonymous: true}, Topics: TopicOptions{Enable: true}}, false, true, false, 0},
		{"sink wanting nothing", Options{Auth: AuthOptions{AllowAnonymous: true},
			Plugins: map[string]PluginSpec{"q": {Plugin: quiet}}}, false, false, false, 0},
		{"sink", Options{Auth: AuthOptions{AllowAnonymous: true},
			Plugins: map[string]PluginSpec{"s": {Plugin: sink}, "q": {Plugin: quiet}}}, false, false, true, sink.mask},
		{"config block", Options{Auth: AuthOptions{AllowAnonymous: true},
			Plugins: map[string]PluginSpec{"c": {Plugin: configured, Config: map[string]any{"realm": "x"}}}},
			false, false, true, eventsOf(mqtt.EventBrokerPreStart)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := mustNew(t, tc.opts).Hooks()
			if (h.Auth != nil) != tc.auth || (h.Topics != nil) != tc.topics || (h.Events != nil) != tc.events {
				t.Fatalf("auth %v topics %v events %v; want %v %v %v", h.Auth != nil, h.Topics != nil, h.Events != nil, tc.auth, tc.topics, tc.events)
			}
			if h.Events != nil && h.Events.Wants() != tc.mask {
				t.Fatalf("wants %b, want %b", h.Events.Wants(), tc.mask)
			}
		})
	}
}

// Starters run at Start, Closers at Close, once per plugin value even when
// it serves two aliases; a failing Start names its alias.
func TestStartClose(t *testing.T) {
	shared, other := &lifecycle{}, &lifecycle{}
	m := mustNew(t, Options{Plugins: map[string]PluginSpec{"x": {Plugin: shared}, "y": {Plugin: shared}, "z": {Plugin: other}}})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Close(context.Background()) // a second Close does nothing
	if shared.starts.Load() != 1 || shared.closes.Load() != 1 || other.starts.Load() != 1 || other.closes.Load() != 1 {
		t.Fatalf("starts/closes %d/%d and %d/%d, want 1 each", shared.starts.Load(), shared.closes.Load(), other.starts.Load(), other.closes.Load())
	}

	bad := &lifecycle{startErr: errors.New("manifest: 503")}
	m = mustNew(t, Options{Plugins: map[string]PluginSpec{"acct": {Plugin: bad, Type: "webhook"}}})
	err := m.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), `plugins.acct (type webhook) did not start: manifest: 503`) {
		t.Fatalf("Start error %v", err)
	}
}

// Two Managers on one registry (a restart in the process) share the series
// instead of panicking on duplicate registration, and a Reload registers
// nothing new.
func TestMetricsSurviveReloadAndRebuild(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	opts := Options{Registerer: reg, Plugins: map[string]PluginSpec{"a": {Plugin: &scripted{b: bAllow}}},
		Topics: TopicOptions{Enable: true, Plugins: []string{"a"}}}
	m1 := mustNew(t, opts)
	m2 := mustNew(t, opts)
	for _, m := range []*Manager{m1, m2} {
		m.Hooks().Topics.CheckTopic(context.Background(), &mqtt.ClientInfo{}, mqtt.TopicRequest{Action: mqtt.ActionPublish})
	}
	if err := m1.Reload(opts); err != nil {
		t.Fatal(err)
	}
	m1.Hooks().Topics.CheckTopic(context.Background(), &mqtt.ClientInfo{}, mqtt.TopicRequest{Action: mqtt.ActionPublish})
	if got := counterValue(m1.metrics.decisions.WithLabelValues("a", "publish", "allow")); got != 3 {
		t.Fatalf("allow count %v, want 3 (two managers, one reload)", got)
	}
	if n := gatheredSeries(t, reg, "mqttd_plugin_chain_decisions_total"); n == 0 {
		t.Fatal("chain series not gathered")
	}
}

package hooks

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// nowFilter answers at once with d when ok, and its slow FilterTopic (never
// expected here) fails the test.
type nowFilter struct {
	t  *testing.T
	d  Decision
	ok bool
}

func (f *nowFilter) FilterTopic(context.Context, *mqtt.ClientInfo, mqtt.TopicRequest) (Decision, error) {
	f.t.Error("CheckTopicNow called the slow FilterTopic")
	return Decision{}, nil
}

func (f *nowFilter) FilterTopicNow(*mqtt.ClientInfo, mqtt.TopicRequest) (Decision, bool) {
	return f.d, f.ok
}

// The chain decides at once only when every topic plugin can, by the same
// rules as CheckTopic.
func TestCheckTopicNow(t *testing.T) {
	allow, deny, ignore := Decision{Result: Allow}, Decision{Result: Deny, ReasonCode: 0x97, Reason: "quota"}, Decision{}
	slowOnly := topicFunc(func(context.Context, *mqtt.ClientInfo, mqtt.TopicRequest) (Decision, error) { return allow, nil })
	for _, tc := range []struct {
		name     string
		a, b     Plugin
		fallback Result
		ok       bool
		want     mqtt.TopicResult
	}{
		{"both allow", &nowFilter{t, allow, true}, &nowFilter{t, allow, true}, Deny, true, mqtt.TopicResult{Allow: true}},
		{"a deny wins", &nowFilter{t, allow, true}, &nowFilter{t, deny, true}, Allow, true, mqtt.TopicResult{ReasonCode: 0x97, Reason: "quota"}},
		{"all ignore, default deny", &nowFilter{t, ignore, true}, &nowFilter{t, ignore, true}, Deny, true, mqtt.TopicResult{}}, // code 0: the broker says 0x87
		{"all ignore, default allow", &nowFilter{t, ignore, true}, &nowFilter{t, ignore, true}, Allow, true, mqtt.TopicResult{Allow: true}},
		{"one has no answer at hand", &nowFilter{t, allow, true}, &nowFilter{t, allow, false}, Allow, false, mqtt.TopicResult{}},
		{"one cannot answer at once at all", &nowFilter{t, allow, true}, slowOnly, Allow, false, mqtt.TopicResult{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustNew(t, Options{
				Plugins: map[string]PluginSpec{"a": {Plugin: tc.a}, "b": {Plugin: tc.b}},
				Topics:  TopicOptions{Enable: true, Plugins: []string{"a", "b"}, Default: tc.fallback},
			})
			now, isNow := m.Hooks().Topics.(mqtt.TopicCheckerNow)
			if !isNow {
				t.Fatal("the topic chain does not offer CheckTopicNow")
			}
			req := mqtt.TopicRequest{Action: mqtt.ActionPublish, Topic: "t", QoS: 1}
			got, ok := now.CheckTopicNow(&mqtt.ClientInfo{ClientID: "c"}, req)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Fatalf("CheckTopicNow = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// cached is a topic plugin with a decision cache in front of a slow path:
// FilterTopicNow answers d when ok, FilterTopic always answers d.
type cached struct {
	lifecycle
	d      Decision
	ok     bool
	slow   atomic.Int64 // FilterTopic calls
	inline atomic.Int64 // FilterTopicNow calls
}

func (c *cached) FilterTopic(context.Context, *mqtt.ClientInfo, mqtt.TopicRequest) (Decision, error) {
	c.slow.Add(1)
	return c.d, nil
}

func (c *cached) FilterTopicNow(*mqtt.ClientInfo, mqtt.TopicRequest) (Decision, bool) {
	c.inline.Add(1)
	return c.d, c.ok
}

// decisionCounts reads mqttd_plugin_decisions_total of plugins a and b and
// mqttd_plugin_chain_decisions_total for one action and result.
func decisionCounts(m *Manager, action, result string) (a, b, chain float64) {
	return counterValue(m.metrics.decisions.WithLabelValues("a", action, result)),
		counterValue(m.metrics.decisions.WithLabelValues("b", action, result)),
		counterValue(m.metrics.chain.WithLabelValues(action, result))
}

func twoTopicPlugins(t *testing.T, a, b Plugin) *Manager {
	return mustNew(t, Options{
		Plugins: map[string]PluginSpec{"a": {Plugin: a}, "b": {Plugin: b}},
		Topics:  TopicOptions{Enable: true, Plugins: []string{"a", "b"}},
	})
}

// CheckTopic (the publish check) answers in line when every plugin can,
// without FilterTopic, and counts each answer and the chain's once.
func TestCheckTopicAnswersInLine(t *testing.T) {
	a, b := &cached{d: Decision{Result: Allow}, ok: true}, &cached{d: Decision{}, ok: true}
	m := twoTopicPlugins(t, a, b)
	req := mqtt.TopicRequest{Action: mqtt.ActionPublish, Topic: "t"}
	if res := m.Hooks().Topics.CheckTopic(context.Background(), &mqtt.ClientInfo{ClientID: "c"}, req); !res.Allow {
		t.Fatalf("got %+v, want allow", res)
	}
	if a.slow.Load()+b.slow.Load() != 0 {
		t.Fatal("CheckTopic asked FilterTopic although every answer was at hand")
	}
	if na, _, chain := decisionCounts(m, "publish", "allow"); na != 1 || chain != 1 {
		t.Fatalf("allow counted %v (a), %v (chain); want 1, 1", na, chain)
	}
	if _, nb, _ := decisionCounts(m, "publish", "ignore"); nb != 1 {
		t.Fatalf("b's ignore counted %v times, want 1", nb)
	}
}

// The broker asks CheckTopicNow and, when it cannot answer, CheckTopic:
// each plugin's answer and the chain's decision are counted once, not
// once per attempt.
func TestDecisionsCountedOnceWhenInLineFails(t *testing.T) {
	a, b := &cached{d: Decision{Result: Allow}, ok: true}, &cached{d: Decision{Result: Allow}}
	m := twoTopicPlugins(t, a, b)
	c, req := &mqtt.ClientInfo{ClientID: "c"}, mqtt.TopicRequest{Action: mqtt.ActionReceive, Topic: "t"}
	if _, ok := m.Hooks().Topics.(mqtt.TopicCheckerNow).CheckTopicNow(c, req); ok {
		t.Fatal("answered in line although b has no answer at hand")
	}
	if res := m.Hooks().Topics.CheckTopic(context.Background(), c, req); !res.Allow {
		t.Fatalf("got %+v, want allow", res)
	}
	if na, nb, chain := decisionCounts(m, "receive", "allow"); na != 1 || nb != 1 || chain != 1 {
		t.Fatalf("allow counted %v (a), %v (b), %v (chain); want 1 each", na, nb, chain)
	}
}

// Each plugin is asked in line at most once per check. A publish check
// (CheckTopic alone) asks a in line, then b, which misses, and only b
// through FilterTopic. A receive check the broker tried in line first
// (CheckTopicNow, then CheckTopic with InlineMissed) asks nobody in line
// again: a's in-line answer was not final, so a goes the slow way too.
func TestOneInLineAttemptPerCheck(t *testing.T) {
	c := &mqtt.ClientInfo{ClientID: "c"}
	check := func(t *testing.T, m *Manager, req mqtt.TopicRequest) {
		t.Helper()
		if res := m.Hooks().Topics.CheckTopic(context.Background(), c, req); !res.Allow {
			t.Fatalf("got %+v, want allow", res)
		}
	}
	want := func(t *testing.T, name string, p *cached, inline, slow int64) {
		t.Helper()
		if gi, gs := p.inline.Load(), p.slow.Load(); gi != inline || gs != slow {
			t.Fatalf("%s: %d in-line and %d slow lookups, want %d and %d", name, gi, gs, inline, slow)
		}
	}
	t.Run("publish", func(t *testing.T) {
		a, b := &cached{d: Decision{Result: Allow}, ok: true}, &cached{d: Decision{Result: Allow}}
		m := twoTopicPlugins(t, a, b)
		check(t, m, mqtt.TopicRequest{Action: mqtt.ActionPublish, Topic: "t"})
		want(t, "a", a, 1, 0)
		want(t, "b", b, 1, 1)
	})
	t.Run("receive after an in-line miss", func(t *testing.T) {
		a, b := &cached{d: Decision{Result: Allow}, ok: true}, &cached{d: Decision{Result: Allow}}
		m := twoTopicPlugins(t, a, b)
		req := mqtt.TopicRequest{Action: mqtt.ActionReceive, Topic: "t"}
		if _, ok := m.Hooks().Topics.(mqtt.TopicCheckerNow).CheckTopicNow(c, req); ok {
			t.Fatal("answered in line although b has no answer at hand")
		}
		req.InlineMissed = true
		check(t, m, req)
		want(t, "a", a, 1, 1)
		want(t, "b", b, 1, 1)
		if na, nb, chain := decisionCounts(m, "receive", "allow"); na != 1 || nb != 1 || chain != 1 {
			t.Fatalf("allow counted %v (a), %v (b), %v (chain); want 1 each", na, nb, chain)
		}
	})
}

// A deny in line ends the round: plugins after it are neither asked nor
// counted.
func TestInLineDenyCountsUpToTheDenier(t *testing.T) {
	a, b := &cached{d: Decision{Result: Deny}, ok: true}, &cached{d: Decision{Result: Allow}, ok: true}
	m := twoTopicPlugins(t, a, b)
	res, ok := m.Hooks().Topics.(mqtt.TopicCheckerNow).CheckTopicNow(&mqtt.ClientInfo{}, mqtt.TopicRequest{Action: mqtt.ActionReceive, Topic: "t"})
	if !ok || res.Allow {
		t.Fatalf("got %+v, %v; want a deny in line", res, ok)
	}
	if na, _, chain := decisionCounts(m, "receive", "deny"); na != 1 || chain != 1 {
		t.Fatalf("deny counted %v (a), %v (chain); want 1, 1", na, chain)
	}
	if _, nb, _ := decisionCounts(m, "receive", "allow"); nb != 0 {
		t.Fatalf("b counted %v answers after a's deny, want 0", nb)
	}
}

// In-line checks take no hold on the plugin set (see inlineRound): run
// under -race, checks racing Reloads that close the plugins they replace
// must neither race nor fail, and every replaced plugin is closed.
func TestInLineChecksRaceReload(t *testing.T) {
	opts := func(p *cached) Options {
		return Options{Plugins: map[string]PluginSpec{"acl": {Plugin: p}}, Topics: TopicOptions{Enable: true, Plugins: []string{"acl"}}}
	}
	first := &cached{d: Decision{Result: Allow}, ok: true}
	m := mustNew(t, opts(first))
	c, req := &mqtt.ClientInfo{ClientID: "c"}, mqtt.TopicRequest{Action: mqtt.ActionPublish, Topic: "t"}
	replaced := []*cached{first}
	reloadUnderTraffic(t, m, func() bool {
		if res := m.Hooks().Topics.CheckTopic(context.Background(), c, req); !res.Allow {
			t.Errorf("got %+v, want allow", res)
			return false
		}
		return true
	}, func() Options {
		next := &cached{d: Decision{Result: Allow}, ok: true}
		replaced = append(replaced, next)
		return opts(next)
	})
	for i, p := range replaced {
		if n := p.closes.Load(); n != 1 {
			t.Fatalf("plugin %d closed %d times, want 1", i, n)
		}
	}
}

package hooks

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/prometheus/client_golang/prometheus"
)

// gate is a topic plugin that holds its check until released, and records
// Close: it shows which plugin set a check ran on and when it was closed.
type gate struct {
	lifecycle
	entered chan struct{}
	release chan struct{}
	answer  Result
}

func newGate(r Result) *gate {
	return &gate{entered: make(chan struct{}, 1), release: make(chan struct{}), answer: r}
}

func (g *gate) FilterTopic(ctx context.Context, _ *mqtt.ClientInfo, _ mqtt.TopicRequest) (Decision, error) {
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return Decision{}, ctx.Err()
	}
	return Decision{Result: g.answer}, nil
}

// A check under way when Reload swaps finishes on the old plugins, new
// checks use the new ones, and the dropped plugin is closed only once its
// last check has returned.
func TestReloadSwapsWithoutDisturbingChecks(t *testing.T) {
	old, kept := newGate(Allow), &lifecycle{}
	opts := func(p *gate) Options {
		return Options{Plugins: map[string]PluginSpec{"acl": {Plugin: p}, "kept": {Plugin: kept}},
			Topics: TopicOptions{Enable: true, Plugins: []string{"acl"}}}
	}
	m := mustNew(t, opts(old))
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	check := func() <-chan mqtt.TopicResult {
		ch := make(chan mqtt.TopicResult, 1)
		go func() {
			ch <- m.Hooks().Topics.CheckTopic(context.Background(), &mqtt.ClientInfo{}, mqtt.TopicRequest{Action: mqtt.ActionPublish, Topic: "t"})
		}()
		return ch
	}
	inFlight := check()
	wait(t, "the old plugin's check", old.entered)

	next := newGate(Deny)
	close(next.release)
	if err := m.Reload(opts(next)); err != nil {
		t.Fatal(err)
	}
	if res := wait(t, "a check after the reload", check()); res.Allow {
		t.Fatalf("check after reload allowed: it ran on the old plugin")
	}
	wait(t, "the new plugin's check", next.entered)
	if next.starts.Load() != 1 {
		t.Fatalf("new plugin started %d times, want 1", next.starts.Load())
	}
	if old.closes.Load() != 0 {
		t.Fatal("the old plugin was closed while a check was still using it")
	}
	close(old.release)
	if res := wait(t, "the check begun before the reload", inFlight); !res.Allow {
		t.Fatalf("in-flight check got %+v, want the old plugin's allow", res)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if old.closes.Load() != 1 || next.closes.Load() != 1 {
		t.Fatalf("closes old %d, new %d; want 1 each", old.closes.Load(), next.closes.Load())
	}
	if kept.starts.Load() != 1 || kept.closes.Load() != 1 {
		t.Fatalf("plugin kept across the reload started %d and closed %d times, want 1 and 1", kept.starts.Load(), kept.closes.Load())
	}
}

// What the broker fixed at start cannot grow by Reload: the error says a
// restart is needed and the running plugins stay.
func TestReloadRefusesWhatNeedsARestart(t *testing.T) {
	connected := &recorder{mask: eventsOf(mqtt.EventClientConnected)}
	base := Options{Auth: AuthOptions{AllowAnonymous: true},
		Plugins: map[string]PluginSpec{"log": {Plugin: connected}, "acl": {Plugin: &scripted{b: bDeny}}}}
	m := mustNew(t, base)

	withAuth := base
	withAuth.Auth = AuthOptions{Plugins: []string{"acl"}, AllowAnonymous: true}
	noAnon := base
	noAnon.Auth = AuthOptions{}
	withTopics := base
	withTopics.Topics = TopicOptions{Enable: true}
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"auth plugins", withAuth, "auth: mqttd started with no authentication"},
		{"anonymous off", noAnon, "auth: mqttd started with no authentication"},
		{"topic-check", withTopics, "topic-check.enable: mqttd started with topic-check off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := m.Reload(tc.opts)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || !strings.Contains(err.Error(), "restart") {
				t.Fatalf("Reload error %v, want %q ... restart", err, tc.want)
			}
		})
	}
	m.Hooks().Events.Event(&mqtt.Event{Type: mqtt.EventClientConnected, Client: &mqtt.ClientInfo{ClientID: "c"}})
	if n := len(connected.events()); n != 1 {
		t.Fatalf("the original sink got %d events after refused reloads, want 1", n)
	}

	// Narrowing is fine: the broker still emits, nobody is handed it.
	if err := m.Reload(Options{Auth: AuthOptions{AllowAnonymous: true}}); err != nil {
		t.Fatal(err)
	}
	m.Hooks().Events.Event(&mqtt.Event{Type: mqtt.EventClientConnected, Client: &mqtt.ClientInfo{ClientID: "c"}})
	if n := len(connected.events()); n != 1 {
		t.Fatalf("a sink removed by reload got an event (%d)", n)
	}
}

// Once the broker has an event sink, a Reload may add event types: the
// broker re-reads what the sinks want every second, so the fan's Wants
// grows at once and the new type reaches the new plugin. With no sink at
// start the broker holds no event hook, and the first sink needs a
// restart.
func TestReloadAddsEventTypes(t *testing.T) {
	connected := &recorder{mask: eventsOf(mqtt.EventClientConnected)}
	base := Options{Auth: AuthOptions{AllowAnonymous: true}, Plugins: map[string]PluginSpec{"log": {Plugin: connected}}}
	m := mustNew(t, base)
	if m.Hooks().Events.Wants().Has(mqtt.EventPacketSent) {
		t.Fatal("mqtt_packet_sent wanted before any plugin asked for it")
	}
	packets := &recorder{mask: eventsOf(mqtt.EventPacketSent)}
	more := base
	more.Plugins = map[string]PluginSpec{"log": {Plugin: connected}, "pk": {Plugin: packets}}
	if err := m.Reload(more); err != nil {
		t.Fatalf("Reload adding an event type: %v", err)
	}
	if !m.Hooks().Events.Wants().Has(mqtt.EventPacketSent) {
		t.Fatal("after the Reload the broker is not told mqtt_packet_sent is wanted")
	}
	m.Hooks().Events.Event(&mqtt.Event{Type: mqtt.EventPacketSent, Client: &mqtt.ClientInfo{ClientID: "c"}})
	if n := len(packets.events()); n != 1 {
		t.Fatalf("the added plugin got %d mqtt_packet_sent events, want 1", n)
	}

	none := mustNew(t, Options{Auth: AuthOptions{AllowAnonymous: true}})
	err := none.Reload(more)
	if err == nil || !strings.HasPrefix(err.Error(), "plugins: log, pk want events") || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("Reload adding the first event plugin: %v, want a refusal naming log, pk and a restart", err)
	}
}

// A new plugin that fails to start fails the Reload: the old set stays,
// and new plugins that did start are closed again.
func TestReloadStartFailureKeepsOldSet(t *testing.T) {
	old := &scripted{b: bAllow}
	m := mustNew(t, Options{Plugins: map[string]PluginSpec{"a": {Plugin: old}}, Topics: TopicOptions{Enable: true, Plugins: []string{"a"}}})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	good, bad := &lifecycle{}, &lifecycle{startErr: errors.New("refused")}
	err := m.Reload(Options{Plugins: map[string]PluginSpec{"a": {Plugin: old}, "g": {Plugin: good}, "z": {Plugin: bad, Type: "webhook"}},
		Topics: TopicOptions{Enable: true, Plugins: []string{"a"}}})
	if err == nil || !strings.Contains(err.Error(), "plugins.z (type webhook) did not start: refused") {
		t.Fatalf("Reload error %v", err)
	}
	if good.starts.Load() != 1 || good.closes.Load() != 1 {
		t.Fatalf("plugin started before the failure: starts %d closes %d, want 1 and 1", good.starts.Load(), good.closes.Load())
	}
	m.Hooks().Topics.CheckTopic(context.Background(), &mqtt.ClientInfo{}, mqtt.TopicRequest{Action: mqtt.ActionPublish})
	if old.calls.Load() != 1 {
		t.Fatal("the old plugin no longer answers after a failed reload")
	}
}

// A plugin added by Reload with a config block gets broker_pre_start with
// it (it would never see its config otherwise); a removed alias's series
// disappear from the registry.
func TestReloadAnnouncesConfigAndForgetsSeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	first := &recorder{mask: eventsOf(mqtt.EventBrokerPreStart, mqtt.EventClientConnected)}
	m := mustNew(t, Options{Registerer: reg, Plugins: map[string]PluginSpec{"first": {Plugin: first}}})
	m.Hooks().Events.Event(&mqtt.Event{Type: mqtt.EventClientConnected, Client: &mqtt.ClientInfo{}})
	if gatheredSeries(t, reg, "mqttd_plugin_events_total") != 1 {
		t.Fatal("no event series for the first plugin")
	}
	added := &recorder{mask: eventsOf(mqtt.EventClientConnected)}
	if err := m.Reload(Options{Registerer: reg, Plugins: map[string]PluginSpec{"added": {Plugin: added, Config: map[string]any{"realm": "r"}}}}); err != nil {
		t.Fatal(err)
	}
	evs := added.events()
	if len(evs) != 1 || evs[0].Type != mqtt.EventBrokerPreStart || evs[0].Config["realm"] != "r" {
		t.Fatalf("added plugin got %+v, want broker_pre_start with its config", evs)
	}
	if n := len(first.events()); n != 1 {
		t.Fatalf("the removed plugin got %d events, want only its first", n)
	}
	if n := gatheredSeries(t, reg, "mqttd_plugin_events_total"); n != 1 {
		t.Fatalf("%d event series after the reload, want only the added plugin's", n)
	}
}

// closingSink counts the events it is handed after its Close began: the
// hold that every event takes on the plugin set must keep that at zero.
type closingSink struct {
	closed, late, events, closes atomic.Int64
}

func (s *closingSink) Wants() mqtt.EventMask { return eventsOf(mqtt.EventClientConnected) }
func (s *closingSink) Event(*Event)          { s.EventNow(nil) }
func (s *closingSink) EventNow(*Event) {
	s.events.Add(1)
	if s.closed.Load() != 0 {
		s.late.Add(1)
	}
}
func (s *closingSink) Close(context.Context) error {
	s.closed.Store(1)
	s.closes.Add(1)
	return nil
}

// Events flowing from several goroutines while Reload replaces their sink
// again and again: no sink is closed while an event is being handed to it,
// and every replaced sink is closed exactly once.
func TestReloadNeverClosesASinkUnderAnEvent(t *testing.T) {
	opts := func(s *closingSink) Options { return Options{Plugins: map[string]PluginSpec{"s": {Plugin: s}}} }
	sinks := []*closingSink{{}}
	m := mustNew(t, opts(sinks[0]))
	e := &mqtt.Event{Type: mqtt.EventClientConnected, Client: &mqtt.ClientInfo{ClientID: "c"}}
	reloadUnderTraffic(t, m, func() bool {
		m.Hooks().Events.Event(e)
		return true
	}, func() Options {
		s := &closingSink{}
		sinks = append(sinks, s)
		return opts(s)
	})
	var events int64
	for i, s := range sinks {
		if s.late.Load() != 0 || s.closes.Load() != 1 {
			t.Errorf("sink %d: %d events after Close, closed %d times; want 0 and 1", i, s.late.Load(), s.closes.Load())
		}
		events += s.events.Load()
	}
	if events == 0 {
		t.Fatal("no event was handed over: the test proved nothing")
	}
}

// reloadUnderTraffic runs traffic on four goroutines, each until it
// returns false or the test is over, while m is reloaded 50 times with
// next's options, each time after some traffic ran on the set before;
// then it closes m.
func reloadUnderTraffic(t *testing.T, m *Manager, traffic func() bool, next func() Options) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				calls.Add(1)
				if !traffic() {
					return
				}
			}
		})
	}
	deadline := time.Now().Add(bound)
	for range 50 {
		for seen := calls.Load(); calls.Load() < seen+8 && time.Now().Before(deadline); {
			runtime.Gosched()
		}
		if err := m.Reload(next()); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

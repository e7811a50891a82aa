package webhook

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestDurableEventsThroughTheSpool: with the plugin failing, every event
// (one of each kind the contract has) is spooled and counted; once the
// plugin answers, the spool delivers them all, valid against the contract
// (the fake checks each body), in order, and the spool metrics go back to
// zero.
func TestDurableEventsThroughTheSpool(t *testing.T) {
	f := newFake(t)
	var down atomic.Bool
	down.Store(true)
	f.handle("/events", func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	p := newPlugin(t, f.url(), func(o *Options) {
		o.Durable = DurableOptions{Dir: t.TempDir()}
		o.Queue.Lanes, o.Queue.Linger = 1, time.Millisecond // one lane: one order to check
		o.Queue.Backoff, o.Queue.MaxBackoff = time.Millisecond, 20*time.Millisecond
	})
	p.Start(t.Context()) // no manifest (404): every event goes out, none waits for one
	evs := allEvents()
	for _, e := range evs {
		p.Event(e)
	}
	n := float64(len(evs))
	value := func(name string) float64 { return counterValue(t, p, name, nil) }
	eventually(t, "every event spooled", func() bool { return value("mqttd_webhook_events_spooled_total") == n })
	if v := value("mqttd_webhook_event_spool_events"); v != n {
		t.Fatalf("spool holds %v events, want %v", v, n)
	}
	if value("mqttd_webhook_event_spool_bytes") == 0 {
		t.Fatal("spool bytes gauge is 0 with events spooled")
	}
	down.Store(false)
	eventually(t, "the spool delivered", func() bool {
		return value("mqttd_webhook_events_spool_delivered_total") == n && value("mqttd_webhook_event_spool_events") == 0
	})
	closePlugin(t, p)
	var ids []string
	seen := map[string]bool{}
	for _, e := range f.delivered() {
		if id := e["id"].(string); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) != len(evs) {
		t.Fatalf("delivered %d distinct events, want %d", len(ids), len(evs))
	}
	for i, e := range evs {
		if ids[i] != e.ID {
			t.Fatalf("event %d delivered is %s, want %s (in push order)", i, ids[i], e.ID)
		}
	}
	if v, _ := metricValue(t, p.opts.Registerer, p.opts.Alias, "mqttd_webhook_events_dropped_total", nil); v != 0 {
		t.Fatalf("%v events dropped", v)
	}
}

// TestDurableSpoolSharedAcrossRebuild: a reload rebuilds a changed plugin
// while the old one still runs; both use the alias's spool directory, and
// what the old one spooled is delivered by the new one.
func TestDurableSpoolSharedAcrossRebuild(t *testing.T) {
	f := newFake(t)
	var down atomic.Bool
	down.Store(true)
	f.handle("/events", func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	dir := t.TempDir()
	edit := func(o *Options) {
		o.Durable = DurableOptions{Dir: dir}
		o.Queue.Linger, o.Queue.Backoff, o.Queue.MaxBackoff = time.Millisecond, time.Millisecond, 20*time.Millisecond
	}
	old := newPlugin(t, f.url(), edit)
	old.Start(t.Context()) // no manifest (404): every event goes out, none waits for one
	evs := allEvents()
	for _, e := range evs[:5] {
		old.Event(e)
	}
	eventually(t, "the old plugin's events spooled", func() bool { return old.spoolStats().Records == 5 })
	rebuilt := newPlugin(t, f.url(), edit) // same directory, old still open
	rebuilt.Start(t.Context())
	closePlugin(t, old)
	down.Store(false)
	eventually(t, "the rebuilt plugin delivered them", func() bool { return rebuilt.eventStats().FromSpool >= 5 })
	closePlugin(t, rebuilt)
}

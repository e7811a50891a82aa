package webhook

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/webhook/batch"
)

// Durable events held for a manifest that has not answered survive
// restarts: spilled to the spool when the plugin is down (the manifest
// fails) or the hold is full, and delivered once the manifest answers,
// filtered through it, none missing, each client's in order. Three plugin
// instances on one spool directory stand for three broker runs.
func TestDurableHeldEventsSurviveRestartsBeforeTheManifest(t *testing.T) {
	f := newFake(t)
	var mode atomic.Int32 // 0: manifest fails; 1: it hangs; 2: it answers
	f.handle("/manifest", func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case 0:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 1:
			<-r.Context().Done()
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"name":"audit","version":"1","authenticate":false,"topic_filtering":false,"events":["broker_client_connected"]}`))
		}
	})
	dir := t.TempDir()
	clients := []*mqtt.ClientInfo{mqttClient("c1", "u"), mqttClient("c2", "u"), mqttClient("c3", "u")}
	var seq uint64
	var wanted []string // ids, in push order
	unwanted := 0
	push := func(p *Plugin, n int) {
		for range n {
			seq++
			e := &hooks.Event{ID: fmt.Sprintf("ev-%d", seq), Seq: seq, Time: time.Now(), Client: clients[seq%3], Type: mqtt.EventClientConnected}
			if seq%4 == 0 { // not in the manifest's list
				e.Type, e.Packet = mqtt.EventPacketReceived, &packets.Pingreq{}
				unwanted++
			} else {
				wanted = append(wanted, e.ID)
			}
			p.BorrowEvent(e)
		}
	}
	start := func(queueSize int) *Plugin {
		p := newPlugin(t, f.url(), func(o *Options) {
			o.Timeout = time.Second
			o.Durable = DurableOptions{Dir: dir}
			o.Queue = batch.Options{QueueSize: queueSize, Linger: time.Millisecond, Backoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
		})
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		p.Start(ctx)
		return p
	}
	spooled := func(p *Plugin, n int) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d events in the spool", n), func() bool { return p.spoolStats().Records == n })
	}

	// Run 1: the plugin is down. Events held before its first attempt
	// fails, and those after, go to the spool.
	mode.Store(0)
	p := start(100)
	push(p, 6)
	eventually(t, "the manifest attempted", func() bool { return f.count("/manifest") > 0 })
	push(p, 6)
	spooled(p, 12)
	closePlugin(t, p)

	// Run 2: the manifest hangs; the hold fills (4) and spills.
	mode.Store(1)
	p = start(4)
	push(p, 10)
	spooled(p, 22)
	if n := len(f.delivered()); n != 0 {
		t.Fatalf("%d events delivered before any manifest answered", n)
	}
	closePlugin(t, p)

	// Run 3: the manifest answers. The spool goes first, filtered; then
	// what was held this time and what follows.
	mode.Store(2)
	p = start(100)
	eventually(t, "the manifest applied", func() bool { _, ok := p.Manifest(); return ok })
	push(p, 8)
	eventually(t, "every wanted event delivered", func() bool { return len(distinct(f.delivered())) >= len(wanted) })
	eventually(t, "the spool emptied", func() bool { return p.spoolStats().Records == 0 })
	closePlugin(t, p)

	got := distinct(f.delivered())
	byClient := map[string][]string{}
	for _, e := range got {
		if e["type"] != "broker_client_connected" {
			t.Fatalf("delivered %v, which the manifest did not ask for", e)
		}
		c, _ := e["client_id"].(string)
		byClient[c] = append(byClient[c], e["id"].(string))
	}
	if len(got) != len(wanted) {
		t.Fatalf("delivered %d distinct events, want %d", len(got), len(wanted))
	}
	want := map[string][]string{}
	for _, id := range wanted {
		var n uint64
		fmt.Sscanf(id, "ev-%d", &n)
		c := clients[n%3].ClientID
		want[c] = append(want[c], id)
	}
	for c, ids := range want {
		if fmt.Sprint(byClient[c]) != fmt.Sprint(ids) {
			t.Fatalf("client %s: delivered %v, want %v (in push order)", c, byClient[c], ids)
		}
	}
	if st := p.eventStats(); st.Unwanted != uint64(unwanted-2) { // run 3's 2 unwanted were dropped on arrival
		t.Fatalf("%d spooled events released unwanted, want %d", st.Unwanted, unwanted-2)
	}
}

// distinct is evs without repeats of an id (at-least-once delivery), in
// first-delivery order.
func distinct(evs []map[string]any) []map[string]any {
	seen := map[string]bool{}
	var out []map[string]any
	for _, e := range evs {
		if id := e["id"].(string); !seen[id] {
			seen[id] = true
			out = append(out, e)
		}
	}
	return out
}

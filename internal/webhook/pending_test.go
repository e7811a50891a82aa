package webhook

import (
	"net/http"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/webhook/batch"
)

// Until the manifest answers, events wait; then only the types it asks
// for are sent, in order. (Before, every type went out until the answer.)
func TestEventsWaitForTheManifest(t *testing.T) {
	f := newFake(t)
	answer := make(chan struct{})
	f.handle("/manifest", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-answer:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"name":"audit","version":"1","authenticate":false,"topic_filtering":false,"events":["broker_client_connected"]}`))
	})
	p := newPlugin(t, f.url(), func(o *Options) {
		o.Timeout = 50 * time.Millisecond // Start gives up waiting for the first answer
		o.Queue = batch.Options{Lanes: 1, Linger: -1}
	})
	p.Start(t.Context())
	c := mqttClient("c1", "u")
	send := func(typ mqtt.EventType, seq uint64) {
		e := &hooks.Event{ID: "e", Seq: seq, Type: typ, Time: time.Now(), Client: c}
		if typ == mqtt.EventPacketReceived {
			e.Packet = &packets.Pingreq{}
		}
		p.BorrowEvent(e)
	}
	send(mqtt.EventClientConnected, 1)
	send(mqtt.EventPacketReceived, 2)
	send(mqtt.EventClientConnected, 3)
	if n := p.eventStats().Queued; n != 3 {
		t.Fatalf("%d events held before the manifest, want 3", n)
	}
	close(answer)
	eventually(t, "the manifest applied", func() bool { _, ok := p.Manifest(); return ok })
	send(mqtt.EventPacketReceived, 4) // dropped at once now
	send(mqtt.EventClientConnected, 5)
	closePlugin(t, p)
	var seqs []float64
	for _, e := range f.delivered() {
		if e["type"] != "broker_client_connected" {
			t.Fatalf("sent %v, which the manifest did not ask for", e)
		}
		seqs = append(seqs, e["seq"].(float64))
	}
	if len(seqs) != 3 || seqs[0] != 1 || seqs[1] != 3 || seqs[2] != 5 {
		t.Fatalf("delivered seqs %v, want [1 3 5]", seqs)
	}
}

// Held events are bounded by queue.size: the oldest go, counted.
func TestHeldEventsAreBounded(t *testing.T) {
	f := newFake(t)
	f.handle("/manifest", answer(503, ``)) // never answers: events stay held
	p := newPlugin(t, f.url(), func(o *Options) {
		o.Timeout = 50 * time.Millisecond
		o.Queue = batch.Options{QueueSize: 2, Lanes: 1}
	})
	p.Start(t.Context())
	for i := range 5 {
		p.BorrowEvent(&hooks.Event{ID: "e", Seq: uint64(i + 1), Type: mqtt.EventClientConnected, Time: time.Now(), Client: mqttClient("c", "u")})
	}
	st := p.eventStats()
	if st.Queued != 2 || st.Dropped.Overflow != 3 {
		t.Fatalf("stats %+v, want 2 held and 3 dropped", st)
	}
	closePlugin(t, p)
	if st := p.eventStats(); st.Dropped.Shutdown < 2 || len(f.delivered()) != 0 {
		t.Fatalf("at close: stats %+v, %d delivered; want the 2 held dropped, none sent", st, len(f.delivered()))
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook"
	"github.com/mqttd/mqttd/internal/webhook/batch"
	"github.com/mqttd/mqttd/internal/webhook/contract"
)

// encodeBatches has the broker's own encoder and batcher
// (internal/webhook) turn evs into batches of up to per events, in order.
func encodeBatches(tb testing.TB, per int, evs []*hooks.Event) [][]byte {
	tb.Helper()
	var mu sync.Mutex
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/events" {
			mu.Lock()
			bodies = append(bodies, b)
			mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	// Every event named, so none waits for a manifest this server lacks.
	var all []string
	for _, t := range mqtt.EventTypes() {
		all = append(all, t.String())
	}
	p, err := webhook.New(webhook.Options{Alias: "bench", URL: srv.URL, Broker: "vm", Logger: slog.New(slog.DiscardHandler), Events: all,
		Config: map[string]any{"users": []any{map[string]any{"id": "x", "name": "y"}}},
		Queue:  batch.Options{QueueSize: len(evs), Lanes: 1, MaxEvents: per, MaxBytes: 64 << 20, Linger: time.Hour}})
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range evs {
		p.Event(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		tb.Fatal(err)
	}
	if want := (len(evs) + per - 1) / per; len(bodies) != want {
		tb.Fatalf("%d bodies, want %d", len(bodies), want)
	}
	return bodies
}

// messageEvents are n broker_message_received events as the pairs
// scenario makes them (10 clients, 64-byte payloads), with ids as the
// broker makes them from prefix and seqs from first.
func messageEvents(n int, prefix string, first uint64) []*hooks.Event {
	payload := make([]byte, 64)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	t0 := time.Date(2026, 11, 24, 20, 21, 53, 0, time.UTC)
	evs := make([]*hooks.Event, n)
	for i := range evs {
		seq, c := first+uint64(i), i%10
		topic := fmt.Sprintf("mqttbench/1234/%d", c)
		evs[i] = &hooks.Event{
			ID: prefix + strconv.FormatUint(seq, 16), Seq: seq, Type: mqtt.EventMessageReceived,
			Time:    t0.Add(time.Duration(seq) * 7919 * time.Nanosecond),
			Client:  &mqtt.ClientInfo{ClientID: fmt.Sprintf("mqttbench-1234-p%d", c), Username: "u", ProtocolVersion: 4},
			Topic:   topic,
			Message: &hooks.Message{Topic: topic, Payload: payload, QoS: byte(seq % 2)},
		}
	}
	return evs
}

// mixedEvents are n events of every type the fast path may meet but
// packets, in runs of varying length, with escapes in client ids and
// topics and event-like bytes in payloads. The first is broker_pre_start,
// whose config (see encodeBatches) holds an object whose first key is id.
func mixedEvents(n int, prefix string) []*hooks.Event {
	types := []mqtt.EventType{mqtt.EventBrokerPostShutdown, mqtt.EventBrokerPostStart, mqtt.EventClientConnected,
		mqtt.EventClientSubscribed, mqtt.EventMessageReceived, mqtt.EventMessageBroadcast, mqtt.EventRetainedMessage,
		mqtt.EventClientUnsubscribed, mqtt.EventClientDisconnected, mqtt.EventBrokerPreShutdown}
	evs := make([]*hooks.Event, n)
	for i := range evs {
		seq := uint64(i + 1)
		c := &mqtt.ClientInfo{ClientID: fmt.Sprintf("c\"%d\\ é", i%3), Username: "u", ProtocolVersion: 5, Listener: "tcp", Transport: "tcp"}
		topic := fmt.Sprintf("t/{\"id\":\"%d\"}", i)
		e := &hooks.Event{ID: prefix + strconv.FormatUint(seq, 16), Seq: seq, Type: types[(i/3+i%2)%len(types)],
			Time: time.Date(2026, 1, 2, 3, 4, 5, i, time.UTC), Client: c, Topic: topic, Reason: "gone", QoS: 1}
		if i == 0 {
			e.Type = mqtt.EventBrokerPreStart
		}
		switch e.Type {
		case mqtt.EventMessageReceived, mqtt.EventMessageBroadcast, mqtt.EventRetainedMessage:
			e.Message = &hooks.Message{Topic: topic, Payload: []byte(`},{"id":"`)}
		case mqtt.EventBrokerPreStart, mqtt.EventBrokerPostStart, mqtt.EventBrokerPreShutdown, mqtt.EventBrokerPostShutdown:
			e.Client = nil
		}
		evs[i] = e
	}
	return evs
}

// nullWriter is a ResponseWriter that keeps nothing.
type nullWriter struct{ h http.Header }

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nullWriter) WriteHeader(int)             {}

// BenchmarkPostEvents is what the plugin spends on one POST /events past
// net/http's own work (the body read into a pooled buffer, the checks,
// the counters), for batches made by the broker's encoder: with the
// default sample (-validate-every 128), with the old default of 16, with
// every batch checked in full against the contract (1) and with no batch
// checked (the fast path alone).
func BenchmarkPostEvents(b *testing.B) {
	for _, per := range []int{100, 1000} {
		bodies := encodeBatches(b, per, messageEvents(100_000, "0a1b2c3d4e5f6a7b-", 1))
		for _, c := range []struct {
			name  string
			every int
		}{{fmt.Sprintf("sampled-%d", defaultValidateEvery), defaultValidateEvery}, {"sampled-16", 16}, {"all", 1}, {"fast", math.MaxInt}} {
			b.Run(fmt.Sprintf("%d-events/%s", per, c.name), func(b *testing.B) {
				cfg := pluginConfig{authResult: "allow", topicResult: "allow", validateEvery: c.every}
				s, _ := newPluginServer(cfg)
				body := bytes.NewReader(nil)
				req := httptest.NewRequest(http.MethodPost, "/events", io.NopCloser(body))
				setEventHeaders(req.Header)
				w := &nullWriter{h: http.Header{}}
				b.ReportAllocs()
				b.SetBytes(int64(len(bodies[0])))
				i := 0
				for b.Loop() {
					if i == len(bodies) { // a fresh plugin, so that no id is a duplicate
						b.StopTimer()
						s, _ = newPluginServer(cfg)
						i = 0
						b.StartTimer()
					}
					body.Reset(bodies[i])
					req.ContentLength = int64(len(bodies[i]))
					i++
					s.ServeHTTP(w, req)
					s.waitChecks() // the check after the answer is the plugin's work too
				}
				if st := s.stats(); st.BadRequests+st.BadEvents+st.Duplicates != 0 || st.Events == 0 {
					b.Fatalf("%+v", st)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*per), "ns/event")
			})
		}
	}
}

func BenchmarkScanBatch(b *testing.B) {
	body := encodeBatches(b, 100, messageEvents(100, "0a1b2c3d4e5f6a7b-", 1))[0]
	b.Run("scanFast", func(b *testing.B) {
		var dst []fastEvent
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var ok bool
			if dst, ok = scanFast(body, dst[:0]); !ok || len(dst) != 100 {
				b.Fatal(ok, len(dst))
			}
		}
	})
	b.Run("contract", func(b *testing.B) {
		v, err := contract.New()
		if err != nil {
			b.Fatal(err)
		}
		req := eventsRequest(body)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if err := v.Request(req, body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		var batch eventBatchHeads
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			batch.Events = batch.Events[:0]
			if err := json.Unmarshal(body, &batch); err != nil || len(batch.Events) != 100 {
				b.Fatal(err)
			}
		}
	})
}

// scanFast must read the same ids and types as encoding/json from
// whatever the broker's encoder writes, or decline the batch.
func TestScanFastMatchesEncodingJSON(t *testing.T) {
	for _, c := range []struct {
		name     string
		evs      []*hooks.Event
		declined int // batches scanFast must leave to the full check
	}{
		{"messages", messageEvents(1000, "0a1b2c3d4e5f6a7b-", 1), 0},
		// The first batch has broker_pre_start, whose config holds
		// `[{"id":`; the escaped ids and topics do not matter.
		{"mixed", mixedEvents(1000, "ffffffffffffffff-"), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			declined := 0
			for _, body := range encodeBatches(t, 37, c.evs) {
				var batch eventBatchHeads
				if err := json.Unmarshal(body, &batch); err != nil {
					t.Fatal(err)
				}
				want := batch.Events
				got, ok := scanFast(body, nil)
				if !ok {
					declined++
					continue
				}
				if len(got) != len(want) {
					t.Fatalf("%d events, encoding/json %d: %s", len(got), len(want), body)
				}
				for i := range got {
					if string(got[i].id) != want[i].ID || string(got[i].typ) != want[i].Type {
						t.Fatalf("event %d: %s %s, encoding/json %s %s", i, got[i].id, got[i].typ, want[i].ID, want[i].Type)
					}
				}
			}
			if declined != c.declined {
				t.Fatalf("scanFast declined %d batches, want %d", declined, c.declined)
			}
		})
	}
	// Anything not laid out as the encoder lays it out is declined, so
	// the full check sees it.
	ev := `{"id":"p-1","seq":1,"type":"t","time":"2026-01-02T03:04:05Z","broker":"b"}`
	for _, body := range []string{
		`{"events":[` + ev + `]}`,
		`{"events":[` + ev + `,` + strings.Replace(ev, "p-1", "p-2", 1) + `]}`,
	} {
		if got, ok := scanFast([]byte(body), nil); !ok || len(got) != strings.Count(body, `"id"`) {
			t.Fatalf("%s: %d events, ok %v", body, len(got), ok)
		}
	}
	for _, body := range []string{
		`{"events":[]}`,
		`{"events":[` + ev + `]} `,
		` {"events":[` + ev + `]}`,
		`{"events": [` + ev + `]}`,
		`{"events":[` + ev,
		`{"events":[` + ev + ev + `]}`, // glued
		`{"events":[` + ev + `,` + ev[:30] + `]}`,
		`{"events":[` + ev + `,{"id":"p-2"}]}`,
		`{"events":[{"seq":1,"id":"p-1","type":"t"}]}`,
		`{"events":[{"id":"","seq":1,"type":"t"}]}`,
		`{"events":[{"id":"p\u002d1","seq":1,"type":"t"}]}`,
		`{"events":[{"id":"p-1\"","seq":1,"type":"t"}]}`,
		`{"events":[{"id":"p-1","seq":0,"type":"t"}]}`,
		`{"events":[{"id":"p-1","seq":01,"type":"t"}]}`,
		`{"events":[{"id":"p-1","seq":-1,"type":"t"}]}`,
		`{"events":[{"id":"p-1","seq":"1","type":"t"}]}`,
		`{"events":[{"id":"p-1","seq":1,"type":""}]}`,
		`{"events":[{"id":"p-1","seq":1,"type":"t\n"}]}`,
		`{"events":[{"id":"p-1","seq":1,"type":null}]}`,
		`{"events":[{"id":"p-1","seq":1,"type":"t`,
		`{"events":[{"id":"p-1","seq":1}]}`,
		`{"events":[{"id":"p-1","seq":1,"type":"t","x":[{"id":"q"}]}]}`,
		`{"events":[{"id":"p-1","seq":1,"type":"t"},{"id":"p-2","seq":2,"type":"t"}` + "\n]}",
	} {
		if got, ok := scanFast([]byte(body), nil); ok {
			t.Errorf("%s: read as %d events", body, len(got))
		}
	}
}

func TestIDSet(t *testing.T) {
	var s idSet
	ids := []string{
		"0a1b2c3d4e5f6a7b-1", "0a1b2c3d4e5f6a7b-ffff", "0a1b2c3d4e5f6a7b-10000", "0a1b2c3d4e5f6a7b-ffffffffffffffff",
		"1a1b2c3d4e5f6a7b-1", "-1", "x-y-0", // other prefixes, the last dash splits
		// Not the broker's form: a plain set.
		"a", "0a1b2c3d4e5f6a7b-01", "0a1b2c3d4e5f6a7b-A", "0a1b2c3d4e5f6a7b-", "0a1b2c3d4e5f6a7b-10000000000000000", "é",
	}
	for _, id := range ids {
		if !s.add([]byte(id)) {
			t.Errorf("%q: a duplicate the first time", id)
		}
	}
	for _, id := range ids {
		if s.add([]byte(id)) {
			t.Errorf("%q: not a duplicate the second time", id)
		}
	}
	if len(s.prefixes) != 4 || len(s.other) != 6 {
		t.Errorf("%d prefixes, %d others", len(s.prefixes), len(s.other))
	}
	// Out of order, across chunks, back and forth between prefixes.
	seen := map[string]bool{}
	for i := range 300_000 {
		n := uint64(i*7919) % 200_003
		id := fmt.Sprintf("%x-%x", i%3, n)
		if got := s.add([]byte(id)); got == seen[id] {
			t.Fatalf("%s: new %v, want %v", id, got, !seen[id])
		}
		seen[id] = true
	}
	if a := testing.AllocsPerRun(100, func() { s.add([]byte("0a1b2c3d4e5f6a7b-2")) }); a != 0 {
		t.Errorf("%v allocations per id", a)
	}
}

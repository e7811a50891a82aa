package eventlog

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lockedBuffer is a log destination the writer goroutine and the test
// share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.b.String(), s)
}

// lines decodes the JSON lines written so far.
func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(l.b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func jsonLogger(buf *lockedBuffer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: level}))
}

func closeNow(t *testing.T, p *Plugin) {
	t.Helper()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestOptions(t *testing.T) {
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeNow(t, p)
	for _, et := range mqtt.EventTypes() {
		if !p.Wants().Has(et) {
			t.Errorf("by default %v is not wanted", et)
		}
	}
	q, err := New(Options{Events: []string{"broker_client_connected", "mqtt_packet_sent"}, Level: "DEBUG"})
	if err != nil {
		t.Fatal(err)
	}
	defer closeNow(t, q)
	if want := mqtt.EventMask(0).With(mqtt.EventClientConnected).With(mqtt.EventPacketSent); q.Wants() != want || q.level != slog.LevelDebug {
		t.Errorf("Wants %b level %v; want %b and debug", q.Wants(), q.level, want)
	}

	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Level: "verbose"}, `event-log: level "verbose" is not one of debug, info, warn, error`},
		{Options{Events: []string{"broker_client_connected", "client_connected"}},
			`event-log: unknown event "client_connected" (valid: broker_pre_start, broker_post_start, broker_pre_shutdown, broker_post_shutdown, broker_client_connected, broker_client_disconnected, broker_client_subscribed, broker_client_unsubscribed, broker_message_received, broker_message_broadcast, broker_retained_message, mqtt_packet_received, mqtt_packet_sent)`},
		{Options{QueueSize: -1}, `event-log: queue size -1 is negative (0 means the default, 10000)`},
		{Options{QueueBytes: -1}, `event-log: queue bytes -1 is negative (0 means the default, 67108864)`},
	} {
		if _, err := New(tc.o); err == nil || err.Error() != tc.want {
			t.Errorf("New(%+v):\n got %v\nwant %s", tc.o, err, tc.want)
		}
	}
}

var (
	when   = time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC)
	client = &mqtt.ClientInfo{ClientID: "c1", Username: "alice"}
)

// Each kind of event becomes one line with the fields it carries, at the
// configured level, stamped with the event's own time.
func TestLines(t *testing.T) {
	long := bytes.Repeat([]byte("z"), maxPayload+10)
	events := []*hooks.Event{
		{ID: "e1", Seq: 1, Type: mqtt.EventBrokerPostStart, Time: when},
		{ID: "e2", Seq: 2, Type: mqtt.EventPacketReceived, Time: when, Client: client, Packet: &packets.Connect{}},
		{ID: "e3", Seq: 3, Type: mqtt.EventClientSubscribed, Time: when, Client: client, Topic: "a/#", QoS: 1},
		{ID: "e4", Seq: 4, Type: mqtt.EventMessageReceived, Time: when, Client: client, Topic: "a/b", QoS: 2,
			Message: &hooks.Message{Topic: "a/b", Payload: []byte("héllo"), QoS: 2, Retain: true}},
		{ID: "e5", Seq: 5, Type: mqtt.EventMessageBroadcast, Time: when, Topic: "bin", Message: &hooks.Message{Payload: []byte{0xff, 0, 1}}},
		{ID: "e6", Seq: 6, Type: mqtt.EventMessageBroadcast, Time: when, Topic: "big", Message: &hooks.Message{Payload: long}},
		{ID: "e7", Seq: 7, Type: mqtt.EventClientDisconnected, Time: when, Client: &mqtt.ClientInfo{ClientID: "anon"}, Reason: "keep alive timeout"},
		{ID: "e8", Seq: 8, Type: mqtt.EventRetainedMessage, Time: when, Topic: "r", TargetID: "offline-1", Message: &hooks.Message{Payload: []byte("r")}},
	}
	for _, withPayload := range []bool{false, true} {
		var buf lockedBuffer
		p, err := New(Options{Logger: jsonLogger(&buf, slog.LevelDebug), Level: "warn", Payload: withPayload})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			p.Event(e)
		}
		closeNow(t, p)
		got := buf.lines(t)
		if len(got) != len(events) {
			t.Fatalf("%d lines for %d events", len(got), len(events))
		}
		common := map[string]any{"time": "2026-03-01T12:00:00.000000005Z", "level": "WARN", "msg": "event"}
		want := []map[string]any{
			{"type": "broker_post_start", "id": "e1", "seq": 1.0},
			{"type": "mqtt_packet_received", "id": "e2", "seq": 2.0, "client_id": "c1", "username": "alice", "packet": "CONNECT"},
			{"type": "broker_client_subscribed", "id": "e3", "seq": 3.0, "client_id": "c1", "username": "alice", "topic": "a/#", "qos": 1.0},
			{"type": "broker_message_received", "id": "e4", "seq": 4.0, "client_id": "c1", "username": "alice", "topic": "a/b", "qos": 2.0,
				"size": 6.0, "retain": true},
			{"type": "broker_message_broadcast", "id": "e5", "seq": 5.0, "topic": "bin", "qos": 0.0, "size": 3.0, "retain": false},
			{"type": "broker_message_broadcast", "id": "e6", "seq": 6.0, "topic": "big", "qos": 0.0, "size": float64(len(long)), "retain": false},
			{"type": "broker_client_disconnected", "id": "e7", "seq": 7.0, "client_id": "anon", "reason": "keep alive timeout"},
			{"type": "broker_retained_message", "id": "e8", "seq": 8.0, "topic": "r", "qos": 0.0, "size": 1.0, "retain": false, "target_id": "offline-1"},
		}
		if withPayload {
			want[3]["payload"] = "héllo"
			want[4]["payload_base64"] = "/wAB"
			want[5]["payload_base64"] = base64.StdEncoding.EncodeToString(long[:maxPayload])
			want[5]["payload_truncated"] = true
			want[7]["payload"] = "r"
		}
		for i := range want {
			for k, v := range common {
				want[i][k] = v
			}
			if !equalJSON(got[i], want[i]) {
				t.Errorf("payload %v, line %d:\n got %v\nwant %v", withPayload, i, got[i], want[i])
			}
		}
	}
}

func equalJSON(a, b map[string]any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// Lines below the logger's level cost nothing and appear nowhere.
func TestLevelBelowLogger(t *testing.T) {
	var buf lockedBuffer
	p, err := New(Options{Logger: jsonLogger(&buf, slog.LevelInfo), Level: "debug"})
	if err != nil {
		t.Fatal(err)
	}
	p.Event(&hooks.Event{ID: "x", Type: mqtt.EventBrokerPreStart})
	closeNow(t, p)
	if got := buf.lines(t); len(got) != 0 {
		t.Errorf("debug lines reached an info logger: %v", got)
	}
}

// stepHandler hands each record to the test and waits for its go-ahead, so
// the test decides when the writer makes progress.
type stepHandler struct {
	records chan slog.Record
	release chan struct{}
}

func newStepHandler() *stepHandler {
	return &stepHandler{records: make(chan slog.Record), release: make(chan struct{})}
}

func (h *stepHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *stepHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *stepHandler) WithGroup(string) slog.Handler            { return h }
func (h *stepHandler) Handle(_ context.Context, r slog.Record) error {
	h.records <- r
	<-h.release
	return nil
}

// next waits for the writer's next record and lets it go on; it returns
// the record's event id, or "lost=N" for a warning about drops.
func (h *stepHandler) next(t *testing.T) string {
	t.Helper()
	select {
	case r := <-h.records:
		h.release <- struct{}{}
		var id, lost string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "id":
				id = a.Value.String()
			case "lost":
				lost = "lost=" + a.Value.String()
			}
			return true
		})
		if r.Level == slog.LevelWarn {
			return lost
		}
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("the writer logged nothing")
		return ""
	}
}

// held waits until the writer is inside the handler with a record, and
// leaves it there; the returned function lets it go on.
func (h *stepHandler) held(t *testing.T) (id string, release func()) {
	t.Helper()
	select {
	case r := <-h.records:
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "id" {
				id = a.Value.String()
			}
			return true
		})
		return id, func() { h.release <- struct{}{} }
	case <-time.After(10 * time.Second):
		t.Fatal("the writer logged nothing")
		return "", nil
	}
}

func ev(id string) *hooks.Event { return &hooks.Event{ID: id, Type: mqtt.EventMessageReceived} }

// A writer stuck in the logger never blocks Event: the queue drops its
// oldest events, and the loss is reported at once, then at most once per
// 10 s (a fake clock decides), and at Close.
func TestDropsAndRateLimitedWarning(t *testing.T) {
	h := newStepHandler()
	var clock atomic.Int64
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	clock.Store(when.UnixNano())
	p, err := newPlugin(Options{Logger: slog.New(h), QueueSize: 4}, now)
	if err != nil {
		t.Fatal(err)
	}
	// burst logs first, and while the writer is stuck on it queues eight
	// more: four fit, the four oldest give way.
	burst := func(first string) {
		t.Helper()
		p.Event(ev(first))
		id, release := h.held(t)
		if id != first {
			t.Fatalf("writer holds %q, want %q", id, first)
		}
		for i := range 8 {
			p.Event(ev(first + string(rune('0'+i))))
		}
		release()
	}
	expect := func(want ...string) {
		t.Helper()
		for _, w := range want {
			if got := h.next(t); got != w {
				t.Fatalf("next line %q, want %q", got, w)
			}
		}
	}

	burst("a")
	expect("lost=4", "a4", "a5", "a6", "a7")
	if p.Dropped() != 4 {
		t.Errorf("Dropped() = %d, want 4", p.Dropped())
	}

	clock.Add(int64(9 * time.Second)) // within 10 s of the warning: silence
	burst("b")
	expect("b4", "b5", "b6", "b7")

	// 10 s on, the 4 lost since are reported. The clock moves while the
	// writer is on "c", so it has passed its check after b7 for sure.
	p.Event(ev("c"))
	_, release := h.held(t)
	clock.Add(int64(time.Second))
	release()
	expect("lost=4")

	burst("d") // within 10 s again; Close reports what is left
	done := make(chan error)
	go func() { done <- p.Close(context.Background()) }()
	expect("d4", "d5", "d6", "d7", "lost=4")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.Dropped() != 12 {
		t.Errorf("Dropped() = %d, want 12", p.Dropped())
	}
}

// Close waits for the queue to drain; when its context ends first it
// returns, says how many events were not logged, and the writer stops
// after the line it is writing.
func TestCloseDeadline(t *testing.T) {
	h := newStepHandler()
	p, err := New(Options{Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	p.Event(ev("first"))
	_, release := h.held(t)
	for range 5 {
		p.Event(ev("later"))
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("shutdown grace period over")
	cancel(cause)
	err = p.Close(ctx)
	if err == nil || !errors.Is(err, cause) || !strings.HasPrefix(err.Error(), "event-log: 5 events were not logged before the shutdown deadline") {
		t.Errorf("Close past its deadline: %v", err)
	}
	release()
	<-p.done // the writer stops without logging the rest
	select {
	case r := <-h.records:
		t.Errorf("the writer went on after Close gave up: %v", r.Message)
	default:
	}
	if err := p.Close(context.Background()); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

// Close writes everything queued before returning.
func TestCloseDrains(t *testing.T) {
	var buf lockedBuffer
	p, err := New(Options{Logger: jsonLogger(&buf, slog.LevelInfo), QueueSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		p.Event(&hooks.Event{ID: "e", Seq: uint64(i), Type: mqtt.EventMessageReceived})
	}
	closeNow(t, p)
	lines := buf.lines(t)
	if len(lines) != 500 || lines[499]["seq"] != 499.0 {
		t.Errorf("%d lines after Close, want 500 in order", len(lines))
	}
	p.Event(ev("after")) // dropped, not logged, and not a panic
	if p.Dropped() != 1 {
		t.Errorf("an event after Close should count as dropped: %d", p.Dropped())
	}
}

func BenchmarkEvent(b *testing.B) {
	p, err := New(Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	e := &hooks.Event{ID: "x", Type: mqtt.EventMessageReceived, Client: client, Topic: "a/b",
		Message: &hooks.Message{Payload: []byte("22.5")}}
	b.ReportAllocs()
	for b.Loop() {
		p.Event(e)
	}
}

// BenchmarkLine is the writer's cost per event, JSON to a discarded writer.
func BenchmarkLine(b *testing.B) {
	p, err := New(Options{Logger: slog.New(slog.NewJSONHandler(discard{}, nil)), Payload: true})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	e := &hooks.Event{ID: "0123456789abcdef-1", Seq: 1, Type: mqtt.EventMessageReceived, Time: when, Client: client, Topic: "a/b",
		Message: &hooks.Message{Payload: []byte("22.5")}}
	b.ReportAllocs()
	for b.Loop() {
		p.line(e)
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

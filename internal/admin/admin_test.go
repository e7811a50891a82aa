package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// fakeSource hands out a fixed snapshot and counts how often it was asked.
type fakeSource struct {
	stats mqtt.Stats
	calls atomic.Int64
}

func (f *fakeSource) Stats() mqtt.Stats { f.calls.Add(1); return f.stats }

func get(t *testing.T, h http.Handler, method, path string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body), rec.Result().Header
}

func TestHealthAndReady(t *testing.T) {
	notReady := errors.New("starting")
	ready := func() error { return notReady }
	h := NewHandler(&fakeSource{}, ready, prometheus.NewRegistry())

	if code, body, _ := get(t, h, http.MethodGet, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthz = %d %q, want 200 ok", code, body)
	}
	if code, body, _ := get(t, h, http.MethodGet, "/readyz"); code != http.StatusServiceUnavailable || body != "not ready: starting\n" {
		t.Errorf("readyz while starting = %d %q, want 503 with the reason", code, body)
	}
	notReady = nil
	if code, body, hdr := get(t, h, http.MethodGet, "/readyz"); code != http.StatusOK || body != "ready\n" || hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("readyz when ready = %d %q %v, want 200 ready, not cacheable", code, body, hdr)
	}
	notReady = errors.New("shutting down")
	if code, body, _ := get(t, h, http.MethodGet, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("readyz while shutting down = %d %q, want 503", code, body)
	}
	if code, _, _ := get(t, h, http.MethodHead, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("HEAD readyz = %d, want 503 like GET", code)
	}
	if code, _, _ := get(t, h, http.MethodGet, "/nope"); code != http.StatusNotFound {
		t.Errorf("unknown path = %d, want 404", code)
	}
	if code, _, _ := get(t, h, http.MethodPost, "/healthz"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST healthz = %d, want 405", code)
	}
}

func TestMetrics(t *testing.T) {
	src := &fakeSource{stats: mqtt.Stats{
		ClientsConnected: 3, ClientsMaximum: 7, ClientsTotal: 11, ClientsPersisted: 2,
		ConnectionsRefused: 4, MessagesIn: 100, MessagesOut: 250, BytesIn: 4096, BytesOut: 8192,
		PacketsIn: 130, PacketsOut: 290, Subscriptions: 9, Retained: 5, RetainedBytes: 77, RetainedRefused: 31, Inflight: 6, Queued: 8,
		DroppedQoS0: 21, DroppedQueueFull: 22, DroppedExpired: 23, DroppedTooLarge: 26, DroppedSys: 24, DroppedDenied: 25,
		DroppedWillDenied: 27, DroppedShareDenied: 28, Malformed: 31, KeepAliveExpired: 32, Takeovers: 33, AuthRejected: 34, UptimeSeconds: 3600,
	}}
	h := NewHandler(src, func() error { return nil }, nil) // nil: Go and process collectors too
	code, body, hdr := get(t, h, http.MethodGet, "/metrics")
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics = %d %s", code, hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		"# TYPE mqttd_clients_connected gauge\nmqttd_clients_connected 3\n",
		"# TYPE mqttd_clients_maximum gauge\nmqttd_clients_maximum 7\n",
		"# TYPE mqttd_clients_total counter\nmqttd_clients_total 11\n",
		"# TYPE mqttd_connections_refused_total counter\nmqttd_connections_refused_total 4\n",
		"mqttd_messages_received_total 100\n",
		"mqttd_messages_sent_total 250\n",
		"mqttd_bytes_received_total 4096\n",
		"mqttd_bytes_sent_total 8192\n",
		"mqttd_packets_received_total 130\n",
		"mqttd_packets_sent_total 290\n",
		"# TYPE mqttd_subscriptions gauge\nmqttd_subscriptions 9\n",
		"mqttd_retained_messages 5\n",
		"# TYPE mqttd_retained_bytes gauge\nmqttd_retained_bytes 77\n",
		"# TYPE mqttd_retained_refused_total counter\nmqttd_retained_refused_total 31\n",
		"mqttd_inflight_messages 6\n",
		"mqttd_queued_messages 8\n",
		"mqttd_sessions_persisted 2\n",
		"# TYPE mqttd_messages_dropped_total counter\n",
		`mqttd_messages_dropped_total{reason="qos0_slow_client"} 21` + "\n",
		`mqttd_messages_dropped_total{reason="queue_full"} 22` + "\n",
		`mqttd_messages_dropped_total{reason="expired"} 23` + "\n",
		`mqttd_messages_dropped_total{reason="too_large"} 26` + "\n",
		`mqttd_messages_dropped_total{reason="sys_topic"} 24` + "\n",
		`mqttd_messages_dropped_total{reason="denied"} 25` + "\n",
		`mqttd_messages_dropped_total{reason="will_denied"} 27` + "\n",
		`mqttd_messages_dropped_total{reason="share_denied"} 28` + "\n",
		"mqttd_malformed_packets_total 31\n",
		"mqttd_keepalive_timeouts_total 32\n",
		"mqttd_takeovers_total 33\n",
		"mqttd_auth_rejected_total 34\n",
		"# TYPE mqttd_uptime_seconds gauge\nmqttd_uptime_seconds 3600\n",
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if n := src.calls.Load(); n != 1 {
		t.Errorf("one scrape read Stats %d times, want once", n)
	}
	if err := prometheusLint(body); err != "" {
		t.Error(err)
	}
}

// prometheusLint checks that every mqttd_ series has a HELP and TYPE line.
func prometheusLint(body string) string {
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "mqttd_") {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		if !strings.Contains(body, "# HELP "+name+" ") || !strings.Contains(body, "# TYPE "+name+" ") {
			return "no HELP/TYPE for " + name
		}
	}
	return ""
}

func TestCollectorRegistersWithOthers(t *testing.T) {
	reg := NewRegistry()
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "mqttd_webhook_calls_total", Help: "x"})
	reg.MustRegister(other)
	other.Add(2)
	h := NewHandler(&fakeSource{}, func() error { return nil }, reg)
	if _, body, _ := get(t, h, http.MethodGet, "/metrics"); !strings.Contains(body, "mqttd_webhook_calls_total 2\n") ||
		!strings.Contains(body, "mqttd_clients_connected 0\n") {
		t.Errorf("metrics of the shared registry are missing:\n%s", body)
	}
}

func TestServer(t *testing.T) {
	h := NewHandler(&fakeSource{}, func() error { return nil }, nil)
	s, err := Listen("127.0.0.1:0", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz over the network = %d", resp.StatusCode)
	}
	if _, err := Listen(s.Addr().String(), h, nil); err == nil || !strings.Contains(err.Error(), "change admin.bind") {
		t.Errorf("second listen on the same address: err = %v, want one saying to change admin.bind", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + s.Addr().String() + "/healthz"); err == nil {
		t.Errorf("server still answers after Shutdown")
	}
}

func TestMounts(t *testing.T) {
	sub := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusTeapot, "sub "+r.Method+" "+r.URL.Path)
	})
	h := NewHandler(&fakeSource{}, func() error { return nil }, prometheus.NewRegistry(), Mount{Pattern: "/plugins", Handler: sub})
	if code, body, _ := get(t, h, http.MethodPost, "/plugins/a/cache/purge"); code != http.StatusTeapot || body != "sub POST /plugins/a/cache/purge\n" {
		t.Errorf("mounted route = %d %q, want the mount's answer", code, body)
	}
	if code, _, _ := get(t, h, http.MethodGet, "/healthz"); code != http.StatusOK {
		t.Errorf("healthz next to a mount = %d", code)
	}
}

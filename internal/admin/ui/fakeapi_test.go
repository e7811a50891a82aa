package ui_test

import (
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook"
)

// fakeAPI serves the admin REST API's routes with the fixed JSON shapes the
// dashboard reads, over state a test changes: clients that connect, a
// breaker that opens, kicks that are recorded. Its plugin status is the
// webhook package's own Status type, so a renamed field breaks this test.
type fakeAPI struct {
	token        string
	start        time.Time
	unauthorized atomic.Int64 // API requests without the right token
	kicks        chan kickRequest

	mu      sync.Mutex
	clients []fakeClient
	breaker string // state of the auth plugin's authenticate endpoint

	latency      *prometheus.HistogramVec
	hits, misses *prometheus.CounterVec
}

type fakeClient struct {
	ID, User, Addr string
	Protocol       int
	Since          time.Time
	Subs           int
}

// kickRequest is what a kick arrived with.
type kickRequest struct {
	ClientID, Authorization, ContentType string
	DiscardSession                       bool
}

func newFakeAPI(token string, reg *prometheus.Registry) *fakeAPI {
	f := &fakeAPI{
		token:   token,
		start:   time.Now(),
		kicks:   make(chan kickRequest, 4),
		breaker: "closed",
		clients: []fakeClient{
			{"sensor-17", "bob", "10.0.3.17:51234", 4, time.Now().Add(-3 * time.Hour), 2},
			{"gateway-east", "alice", "10.0.1.4:40112", 5, time.Now().Add(-26 * time.Minute), 5},
		},
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mqttd_webhook_request_duration_seconds",
			Help:    "Time of decision calls to the plugin.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"plugin", "endpoint"}),
		hits:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqttd_webhook_cache_hits_total", Help: "Cache hits."}, []string{"plugin"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqttd_webhook_cache_misses_total", Help: "Cache misses."}, []string{"plugin"}),
	}
	reg.MustRegister(f.latency, f.hits, f.misses)
	return f
}

// connect adds a client, as if it had just connected.
func (f *fakeAPI) connect(id, user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clients = append(f.clients, fakeClient{id, user, "127.0.0.1:50" + strconv.Itoa(len(f.clients)), 5, time.Now(), 1})
}

func (f *fakeAPI) setBreaker(state string) {
	f.mu.Lock()
	f.breaker = state
	f.mu.Unlock()
}

// Stats makes the fake the broker's StatsSource, for /metrics. Message
// counts grow at a rate that swings between 135 and 165 per second, so the
// chart has a shape.
func (f *fakeAPI) Stats() mqtt.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := time.Since(f.start).Seconds()
	in := int64(5000 + 150*t + 30*(1-math.Cos(t/2)))
	return mqtt.Stats{
		ClientsConnected: int64(len(f.clients)), MessagesIn: in, MessagesOut: in * 12 / 5,
		BytesIn: in * 120, BytesOut: in * 288, Subscriptions: int64(3 * len(f.clients)), Retained: 42,
		UptimeSeconds: 3*3600 + 600 + int64(t),
	}
}

// routes are the API, to be mounted at /api/v1.
func (f *fakeAPI) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(f.requireToken)
	r.Get("/stats", f.stats)
	r.Get("/clients", f.listClients)
	r.Post("/clients/{id}/kick", f.kick)
	r.Get("/plugins", f.plugins)
	r.Get("/refusals", f.refusals)
	return r
}

func (f *fakeAPI) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			f.unauthorized.Add(1)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "send admin.token as Authorization: Bearer <token>"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (f *fakeAPI) stats(w http.ResponseWriter, _ *http.Request) {
	s := f.Stats()
	// Each poll stands for 20 decisions, always spread the same way, so the
	// page's percentiles are known whatever window it takes them over:
	// half in the (0.5 ms, 1 ms] bucket, so p50 = 1 ms; 9 in (2.5, 5] and 1
	// in (25, 50], so p99 interpolates to 45 ms. Nine cache hits per miss.
	for i := range 10 {
		f.latency.WithLabelValues("auth", "authenticate").Observe(0.0007)
		if i < 9 {
			f.latency.WithLabelValues("auth", "topic_filtering").Observe(0.003)
		}
	}
	f.latency.WithLabelValues("auth", "topic_filtering").Observe(0.04)
	f.hits.WithLabelValues("auth").Add(9)
	f.misses.WithLabelValues("auth").Add(1)
	writeJSON(w, http.StatusOK, map[string]any{
		"clients_connected": s.ClientsConnected, "messages_received": s.MessagesIn, "messages_sent": s.MessagesOut,
		"bytes_received": s.BytesIn, "bytes_sent": s.BytesOut, "subscriptions": s.Subscriptions,
		"retained": s.Retained, "uptime_seconds": s.UptimeSeconds, "time": time.Now().UTC().Format(time.RFC3339Nano),
	})
}

func (f *fakeAPI) listClients(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 1 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit must be a positive number"})
		return
	}
	start, _ := strconv.Atoi(q.Get("cursor"))
	f.mu.Lock()
	var match []fakeClient
	for _, c := range f.clients {
		if strings.Contains(c.ID+" "+c.User+" "+c.Addr, q.Get("q")) {
			match = append(match, c)
		}
	}
	f.mu.Unlock()
	items := []map[string]any{}
	for _, c := range match[min(start, len(match)):min(start+limit, len(match))] {
		items = append(items, map[string]any{
			"client_id": c.ID, "username": c.User, "remote_addr": c.Addr, "protocol": c.Protocol,
			"listener": "tcp", "transport": "tcp", "connected_at": c.Since.UTC().Format(time.RFC3339),
			"subscriptions": c.Subs, "inflight": 0, "queued": 0,
		})
	}
	next := ""
	if start+limit < len(match) {
		next = strconv.Itoa(start + limit)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next": next, "total": len(match)})
}

func (f *fakeAPI) kick(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "send the body as application/json"})
		return
	}
	var body struct {
		DiscardSession bool `json:"discard_session"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return
	}
	f.mu.Lock()
	found := false
	for i, c := range f.clients {
		if c.ID == id {
			f.clients = append(f.clients[:i], f.clients[i+1:]...)
			found = true
			break
		}
	}
	f.mu.Unlock()
	if !found {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no client %q is connected", id)})
		return
	}
	select {
	case f.kicks <- kickRequest{id, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body.DiscardSession}:
	default: // the test reads the first kicks only
	}
	writeJSON(w, http.StatusOK, map[string]bool{"kicked": true})
}

func (f *fakeAPI) plugins(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	breaker := f.breaker
	f.mu.Unlock()
	auth := webhook.Status{
		Alias: "auth", URL: "http://127.0.0.1:8081", Ready: true,
		Endpoints: map[string]webhook.EndpointStatus{
			"authenticate":    {BreakerState: breaker, Requests: 40, Failures: 6, ConsecutiveFailures: 6},
			"topic_filtering": {BreakerState: "closed", Requests: 120},
		},
		CacheEntries: 318, CacheEvictions: 4, QueueDepth: 12,
		Events: webhook.EventStatus{Sent: 20418, Retried: 3, Dropped: map[string]uint64{"overflow": 2, "failed": 0, "encode": 0, "shutdown": 0}},
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": []map[string]any{
		{"alias": "auth", "type": "http", "capabilities": []string{"authenticate", "topic_filtering", "events"}, "status": auth},
		{"alias": "users", "type": "passwd_file", "capabilities": []string{"authenticate"}},
	}})
}

func (f *fakeAPI) refusals(w http.ResponseWriter, _ *http.Request) {
	now := time.Now().UTC()
	refusal := func(ago time.Duration, client, user, reason, plugin string, code int) map[string]any {
		return map[string]any{
			"time": now.Add(-ago).Format(time.RFC3339Nano), "client_id": client, "username": user,
			"remote_addr": "203.0.113.9:61022", "listener": "tcp", "protocol": 5,
			"reason_code": code, "reason": reason, "plugin": plugin,
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": []map[string]any{
		refusal(40*time.Second, "laptop-3", "mallory", "bad user name or password", "auth", 0x86),
		refusal(3*time.Minute, "probe", "", "anonymous clients are not allowed", "", 0x87),
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

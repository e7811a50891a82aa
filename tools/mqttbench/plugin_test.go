package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook"
)

// These tests run a tiny version of each plugin benchmark (-mode plugin,
// load with -plugin and -metrics, -mode storm, report -baseline) against
// the broker in-process, wired to the bench plugin the way cmd/mqttd wires
// an HTTP plugin: webhook.Plugin behind a hooks.Manager. They check that
// the tools count correctly, not how fast anything is.

// startBenchPlugin serves a plugin with cfg on loopback.
func startBenchPlugin(t testing.TB, cfg pluginConfig) (*pluginServer, string) {
	t.Helper()
	s, err := newPluginServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.closeChecks) // after srv.Close: cleanups run last first
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// settledStats is ps's counters once every batch answered so far has been
// checked.
func settledStats(ps *pluginServer) pluginStats {
	ps.waitChecks()
	return ps.stats()
}

// pluginBroker says how the broker uses the bench plugin.
type pluginBroker struct {
	auth, topics bool
	events       []string // the alias's events key; nil = what the manifest asks
}

// startPluginBroker runs the broker with the plugin at url as alias
// "bench", and serves the broker's metrics; it returns the MQTT address
// and the metrics URL.
func startPluginBroker(t testing.TB, url string, pb pluginBroker) (string, string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	quiet := slog.New(slog.DiscardHandler)
	wp, err := webhook.New(webhook.Options{Alias: "bench", URL: url, Events: pb.events, Cache: webhook.DefaultCache,
		Registerer: reg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	opts := hooks.Options{
		Broker:     "bench",
		Plugins:    map[string]hooks.PluginSpec{"bench": {Plugin: wp, Timeout: time.Second, Type: "http"}},
		Auth:       hooks.AuthOptions{AllowAnonymous: true},
		Registerer: reg,
		Logger:     quiet,
	}
	if pb.auth {
		opts.Auth = hooks.AuthOptions{Plugins: []string{"bench"}}
	}
	if pb.topics {
		opts.Topics = hooks.TopicOptions{Enable: true, Plugins: []string{"bench"}}
	}
	m, err := hooks.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := mqtt.New(mqtt.Options{Name: "bench", SysInterval: -1, Hooks: m.Hooks(), Logger: quiet,
		Listeners: []mqtt.ListenerConfig{{Name: "tcp", Type: "tcp", Bind: "127.0.0.1:0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	metrics := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(func() {
		metrics.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Close(ctx)
		if err := m.Close(ctx); err != nil {
			t.Errorf("closing plugins: %v", err)
		}
	})
	return b.Addr("tcp").String(), metrics.URL
}

var quickLoad = []string{"-warmup", "100ms", "-duration", "400ms", "-drain", "2s", "-scenario", "pairs", "-pubs", "2"}

// TestPluginTopicCheck: with the bench plugin as topic filter, every
// check is counted by action, and the warm cache keeps the plugin's calls
// to one per client, topic and action however many messages flow.
func TestPluginTopicCheck(t *testing.T) {
	for _, qos := range []string{"0", "1"} {
		t.Run("QoS "+qos, func(t *testing.T) {
			ps, url := startBenchPlugin(t, pluginConfig{authResult: "allow", topicResult: "allow", authTTL: 60, topicTTL: 60})
			addr, metrics := startPluginBroker(t, url, pluginBroker{topics: true, events: []string{}})
			res, code := runJSON(t, append([]string{"-broker", addr, "-qos", qos, "-plugin", url, "-metrics", metrics}, quickLoad...)...)
			if code != 0 || !res.OK {
				t.Fatalf("exit %d, errors %v", code, res.Errors)
			}
			if res.Published == 0 || res.Delivered != res.Published || res.Plugin == nil {
				t.Fatalf("published %d, delivered %d, plugin %+v", res.Published, res.Delivered, res.Plugin)
			}
			run := res.Plugin.Run
			// 2 publishers and 2 subscribers: one subscribe, publish and
			// receive check each per client, then cache hits.
			if run.TopicSubscribe != 2 || run.TopicPublish != 2 || run.TopicReceive != 2 || run.TopicFiltering != 6 {
				t.Fatalf("plugin saw %+v, want 2 checks per action", run)
			}
			if run.Events != 0 || run.Authenticate != 0 {
				t.Fatalf("plugin got events or authenticate calls it did not ask for: %+v", run)
			}
			hits := sumMetric(res.BrokerMetrics, "mqttd_webhook_cache_hits_total", "")
			if want := float64(2*res.Published + 2 - 6); hits < want {
				t.Fatalf("broker counted %.0f cache hits, want at least %.0f (publish + receive per message)", hits, want)
			}
			if st := ps.stats(); st.TopicFiltering != 6 || st.Manifest != 1 {
				t.Fatalf("server stats %+v", st)
			}
		})
	}
}

// TestPluginEvents: every message published becomes one
// broker_message_received event at the plugin, well-formed, in batches,
// none dropped; counted exactly whether every batch is checked in full or
// only a sample.
func TestPluginEvents(t *testing.T) {
	for _, every := range []int{1, 4} {
		t.Run(fmt.Sprintf("validate-every %d", every), func(t *testing.T) { testPluginEvents(t, every) })
	}
}

func testPluginEvents(t *testing.T, every int) {
	ps, url := startBenchPlugin(t, pluginConfig{authResult: "allow", topicResult: "allow",
		manifestEvents: []string{"broker_message_received"}, validateFirst: 2, validateEvery: every})
	addr, metrics := startPluginBroker(t, url, pluginBroker{events: []string{"broker_message_received"}})
	// At a fixed rate the queue never overflows, so every event must
	// arrive (closed loop, this process would publish faster than it
	// delivers events to itself, and drop some, as it should).
	args := append([]string{"-broker", addr, "-qos", "1", "-plugin", url, "-metrics", metrics}, quickLoad...)
	res, code := runJSON(t, append(args, "-rate", "2000", "-window", "64")...)
	if code != 0 || !res.OK {
		t.Fatalf("exit %d, errors %v", code, res.Errors)
	}
	u := res.Plugin
	if u == nil || res.EventsDropped == nil {
		t.Fatalf("no plugin usage or drop count in %+v", res)
	}
	if u.Run.Events != res.Published || u.Run.EventsByType["broker_message_received"] != res.Published || len(u.Run.EventsByType) != 1 {
		t.Fatalf("plugin received %d events (%v), %d messages were published", u.Run.Events, u.Run.EventsByType, res.Published)
	}
	if u.Run.EventPosts == 0 || u.Run.EventPosts >= u.Run.Events || u.Window.Events == 0 || u.EventsPerS <= 0 {
		t.Fatalf("events not batched or not in the window: %+v", u)
	}
	if *res.EventsDropped != 0 || sumMetric(res.BrokerMetrics, "mqttd_webhook_events_sent_total", "") != float64(res.Published) {
		t.Fatalf("broker dropped %.0f, sent %v", *res.EventsDropped, res.BrokerMetrics)
	}
	st := settledStats(ps)
	if st.ValidatedPosts < 2 || (every == 1) != (st.ValidatedPosts == st.EventPosts) || st.ValidatedEvents > st.Events {
		t.Fatalf("%d of %d batches (%d of %d events) checked in full, with -validate-every %d",
			st.ValidatedPosts, st.EventPosts, st.ValidatedEvents, st.Events, every)
	}
}

// TestPluginRejectsMalformedEvents: the plugin's checks can fail, and a
// load run whose plugin saw a malformed batch fails. With every batch
// checked (-validate-every 1, or the zero config) this is what the plugin
// did before it sampled.
func TestPluginRejectsMalformedEvents(t *testing.T) {
	for _, every := range []int{0, 1} {
		t.Run(fmt.Sprintf("validate-every %d", every), func(t *testing.T) { testPluginRejectsMalformedEvents(t, every) })
	}
}

func testPluginRejectsMalformedEvents(t *testing.T, every int) {
	ps, url := startBenchPlugin(t, pluginConfig{authResult: "allow", topicResult: "allow", validateEvery: every})
	post := func(body string) int { return postBatches(t, url, []byte(body))[0] }
	good := `{"id":"a","seq":1,"type":"broker_message_received","time":"2026-01-02T03:04:05.123456789Z","broker":"b","client_id":"c","message":{"topic":"t","payload":"aGk=","qos":0,"retain":false}}`
	if code := post(`{"events":[` + good + `]}`); code != http.StatusNoContent {
		t.Fatalf("a good batch: status %d", code)
	}
	for _, body := range []string{
		`{"events":[` + good + `]}`, // seq 1 again: a duplicate
		`{"events":[{"id":"b","seq":2,"type":"broker_message_received","time":"yesterday","broker":"b","client_id":"c","message":{"topic":"t","payload":""}}]}`,
		`{"events":[{"id":"c","seq":3,"type":"broker_message_received","time":"2026-01-02T03:04:05Z","broker":"b","client_id":"c","message":{"topic":"t","payload":"not base64!"}}]}`,
		`{"events":[{"seq":4,"type":"broker_client_connected","time":"2026-01-02T03:04:05Z","broker":"b"}]}`,
	} {
		post(body)
	}
	if code := post(`{"events":[`); code != http.StatusBadRequest {
		t.Fatalf("truncated JSON: status %d", code)
	}
	st := settledStats(ps)
	if st.Events != 5 || st.Duplicates != 1 || st.BadEvents != 3 || st.BadRequests != 1 || st.EventPosts != 6 ||
		st.ValidatedPosts != 6 || st.ValidatedEvents != 5 {
		t.Fatalf("stats %+v", st)
	}
	if u := (&pluginUsage{Run: st}); len(u.problems()) != 1 {
		t.Fatalf("problems %v", u.problems())
	}
}

// setEventHeaders sets the headers the broker sends with every POST
// /events; the contract requires them.
func setEventHeaders(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("X-Mqttd-Plugin", "bench")
	h.Set("X-Mqttd-Request-Id", "bench-1")
}

// eventsRequest is a POST /events of body as the broker sends it.
func eventsRequest(body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/events", bytes.NewReader(body))
	setEventHeaders(req.Header)
	return req
}

// postBatches posts each body to the plugin at url as the broker would;
// it returns the status codes.
func postBatches(t *testing.T, url string, bodies ...[]byte) []int {
	t.Helper()
	var codes []int
	for _, b := range bodies {
		req, err := http.NewRequest(http.MethodPost, url+"/events", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		setEventHeaders(req.Header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	return codes
}

// TestPluginSampledChecks: with sampling on, batches the fast path reads
// are still counted exactly, by type, with every duplicate id found; a
// sampled bad batch is reported as before, and a batch the fast path
// cannot read is checked in full whether sampled or not.
func TestPluginSampledChecks(t *testing.T) {
	never := math.MaxInt // after validateFirst
	t.Run("duplicates unsampled", func(t *testing.T) {
		ps, url := startBenchPlugin(t, pluginConfig{authResult: "allow", topicResult: "allow", validateEvery: never})
		bodies := encodeBatches(t, 100, messageEvents(300, "0a1b2c3d4e5f6a7b-", 1))
		postBatches(t, url, bodies...)
		// ids 0x101..0x130 again (257..304: 44 seen, 4 new), and one id
		// twice within a batch.
		again := messageEvents(48, "0a1b2c3d4e5f6a7b-", 257)
		again = append(again, again[47])
		postBatches(t, url, encodeBatches(t, 100, again)...)
		// A duplicate of an id not in the broker's form.
		other := `{"id":"a","seq":1,"type":"x","time":"2026-01-02T03:04:05Z","broker":"b"}`
		postBatches(t, url, []byte(`{"events":[`+other+`,`+other+`]}`))
		st := settledStats(ps)
		if st.Events != 351 || st.Duplicates != 44+1+1 || st.ValidatedPosts != 0 || st.BadEvents+st.BadRequests != 0 ||
			st.EventsByType["broker_message_received"] != 349 || st.EventsByType["x"] != 2 || st.MaxBatch != 100 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("bad batches", func(t *testing.T) {
		ps, url := startBenchPlugin(t, pluginConfig{authResult: "allow", topicResult: "allow", validateFirst: 1, validateEvery: never})
		badTime := []byte(`{"events":[{"id":"p-1","seq":1,"type":"broker_post_start","time":"yesterday","broker":"b"}]}`)
		codes := postBatches(t, url,
			// Sampled, being the first batch: a bad event.
			badTime,
			// Not sampled, so only counted.
			bytes.Replace(badTime, []byte("p-1"), []byte("p-2"), 1),
			// Glued or cut events: the fast path declines, the full check
			// finds a bad request.
			[]byte(`{"events":[{"id":"p-3","seq":3,"type":"t"}{"id":"p-4","seq":4,"type":"t"}]}`),
			[]byte(`{"events":[{"id":"p-5","seq":5,"type":"t"},{"id":"p-6"`),
			// No broker: not sampled, so only counted.
			[]byte(`{"events":[{"id":"p-7","seq":7,"type":"t","time":"2026-01-02T03:04:05Z"}]}`),
			// Not in the encoder's order: checked in full, a bad event.
			[]byte(`{"events":[{"type":"t","id":"p-8","seq":8,"time":"2026-01-02T03:04:05Z"}]}`),
		)
		if want := []int{204, 204, 400, 400, 204, 204}; !slices.Equal(codes, want) {
			t.Fatalf("status codes %v, want %v", codes, want)
		}
		st := settledStats(ps)
		if st.Events != 4 || st.BadEvents != 2 || st.BadRequests != 2 || st.ValidatedPosts != 4 || st.ValidatedEvents != 2 ||
			st.Duplicates != 0 || len(st.Errors) != 4 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("counts by type", func(t *testing.T) {
		ps, url := startBenchPlugin(t, pluginConfig{authResult: "allow", topicResult: "allow", validateFirst: 2, validateEvery: 4})
		evs := mixedEvents(5000, "0a1b2c3d4e5f6a7b-")
		want := map[string]uint64{}
		for _, e := range evs {
			want[e.Type.String()]++
		}
		bodies := encodeBatches(t, 37, evs)
		postBatches(t, url, bodies...)
		st := settledStats(ps)
		if st.Events != 5000 || !maps.Equal(st.EventsByType, want) || st.Duplicates+st.BadEvents+st.BadRequests != 0 {
			t.Fatalf("stats %+v, want by type %v", st, want)
		}
		// About a quarter of the rest are checked, at random.
		if n := uint64(len(bodies)); st.ValidatedPosts < 2+n/16 || st.ValidatedPosts > n/2 {
			t.Fatalf("%d of %d batches checked in full", st.ValidatedPosts, n)
		}
		postBatches(t, url, bodies...)
		if st := settledStats(ps); st.Duplicates != 5000 || st.EventsByType["broker_client_connected"] != 2*want["broker_client_connected"] {
			t.Fatalf("posted twice: %+v", st)
		}
	})
}

// TestPluginAnswersBeforeChecking: a sampled batch is answered while its
// full check has not even started, and what the check finds later is
// counted all the same; the load's settle and the plugin's exit wait for
// it.
func TestPluginAnswersBeforeChecking(t *testing.T) {
	ps, url := startBenchPlugin(t, pluginConfig{authResult: "allow", topicResult: "allow", validateEvery: 1})
	ps.checks.gate = make(chan struct{})
	badTime := []byte(`{"events":[{"id":"p-1","seq":1,"type":"broker_post_start","time":"yesterday","broker":"b"}]}`)
	good := []byte(`{"events":[{"id":"p-2","seq":2,"type":"broker_post_start","time":"2026-01-02T03:04:05Z","broker":"b"}]}`)
	if codes := postBatches(t, url, badTime, good); !slices.Equal(codes, []int{204, 204}) {
		t.Fatalf("status codes %v", codes)
	}
	st := ps.stats()
	if st.Events != 2 || st.ChecksPending != 2 || st.ValidatedPosts != 0 || st.BadEvents != 0 {
		t.Fatalf("before the checks: %+v", st)
	}
	ps.checks.gate <- struct{}{}
	ps.checks.gate <- struct{}{}
	st = settledStats(ps)
	if st.Events != 2 || st.ChecksPending != 0 || st.ValidatedPosts != 2 || st.BadEvents != 1 || len(st.Errors) != 1 {
		t.Fatalf("after the checks: %+v", st)
	}
	if u := (&pluginUsage{Run: st}); len(u.problems()) != 1 {
		t.Fatalf("problems %v", u.problems())
	}
}

// TestStorm: a storm against an auth plugin that takes a while. Distinct
// client ids make distinct requests, one call each; one client id makes
// identical requests, which the broker collapses while one is in flight
// and then answers from its cache.
func TestStorm(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		ttl        int
		minC, maxC uint64 // authenticate calls the plugin may see
		distinct   uint64
	}{
		{"distinct ids", nil, 60, 50, 50, 50},
		{"one id, cached", []string{"-same-id"}, 60, 1, 1, 1},
		// Without a cache only the collapse of concurrent identical calls
		// helps: at most one call per round of the delay, never one each.
		{"one id, not cached", []string{"-same-id", "-bursts", "2"}, 0, 1, 49, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, url := startBenchPlugin(t, pluginConfig{authResult: "allow", topicResult: "allow", authTTL: c.ttl,
				topicTTL: 60, authDelay: 50 * time.Millisecond})
			addr, _ := startPluginBroker(t, url, pluginBroker{auth: true, events: []string{}})
			args := append([]string{"storm", "-broker", addr, "-conns", "50", "-username", "u", "-password", "p",
				"-plugin", url, "-json"}, c.args...)
			var out, errb bytes.Buffer
			code := run(args, &out, &errb)
			var res stormResult
			if err := json.Unmarshal(out.Bytes(), &res); err != nil {
				t.Fatalf("exit %d, %q, %q", code, out.String(), errb.String())
			}
			// With one id, a connection may be taken over before its
			// CONNACK is flushed; it is counted, and only then allowed.
			if code != 0 || !res.OK || res.Accepted+res.TakenOver != 50 || res.Answered != res.Accepted ||
				res.NoConnack != 0 || len(res.Refused) != 0 || (res.TakenOver > 0 && !res.SameID) {
				t.Fatalf("exit %d: %+v", code, res)
			}
			if res.Plugin == nil || res.Plugin.Authenticate < c.minC || res.Plugin.Authenticate > c.maxC || res.Plugin.AuthDistinct != c.distinct {
				t.Fatalf("plugin saw %+v, want %d..%d calls, %d distinct", res.Plugin, c.minC, c.maxC, c.distinct)
			}
			if res.LastConnackMs <= 0 || res.P50Ms > res.P99Ms || res.P99Ms > res.LastConnackMs || len(res.BurstsMs) != res.Bursts {
				t.Fatalf("timings %+v", res)
			}
		})
	}
}

// TestStormRefused: refusals are counted by code, and -expect-code decides
// the exit status.
func TestStormRefused(t *testing.T) {
	_, url := startBenchPlugin(t, pluginConfig{authResult: "deny", topicResult: "allow", authReasonCode: 0x86})
	addr, _ := startPluginBroker(t, url, pluginBroker{auth: true, events: []string{}})
	for _, c := range []struct {
		v5   bool
		code string
	}{{false, "0x04"}, {true, "0x86"}} {
		args := []string{"storm", "-broker", addr, "-conns", "10", "-username", "u", "-password", "p", "-json"}
		if c.v5 {
			args = append(args, "-v5")
		}
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		var res stormResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatal(err, errb.String())
		}
		if code != 1 || res.OK || res.Accepted != 0 || res.Refused[c.code] != 10 {
			t.Fatalf("v5 %v: exit %d, %+v", c.v5, code, res)
		}
		want, _ := strconv.ParseInt(c.code, 0, 0)
		out.Reset()
		if code := run(append(args, "-expect-code", strconv.Itoa(int(want))), &out, &errb); code != 0 {
			t.Fatalf("v5 %v: -expect-code %d: exit %d, %s", c.v5, want, code, out.String())
		}
	}
}

// TestRatioReport pairs the runs of a variant with the baseline's, run by
// run, and prints the ratio's median and range.
func TestRatioReport(t *testing.T) {
	dir := t.TempDir()
	var lines bytes.Buffer
	drop := 7.0
	for i, rates := range [][2]float64{{100, 90}, {200, 150}, {100, 95}} {
		for j, label := range []string{"none", "topic"} {
			r := result{Scenario: "pairs", Case: "QoS 0", Label: label, DeliveredRate: rates[j], OK: true}
			if label == "topic" {
				r.Plugin = &pluginUsage{EventsPerS: 1000 * float64(i+1)}
				r.EventsDropped = &drop
			}
			b, _ := json.Marshal(r)
			lines.Write(append(b, '\n'))
		}
	}
	storm, _ := json.Marshal(stormResult{Mode: "storm", Case: "storm", Conns: 3, Bursts: 1, Accepted: 3, OK: true})
	lines.Write(append(storm, '\n'))
	path := dir + "/r.jsonl"
	if err := os.WriteFile(path, lines.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"report", "-baseline", "none", path}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	got := out.String()
	// Ratios 0.90, 0.75, 0.95: median 0.90, range 0.75..0.95.
	for _, want := range []string{"| QoS 0 | topic | 100 [100..200] | 95 [90..150] | 0.90 [0.75..0.95] |", "| 2 k [1 k..3 k] | 7 [7..7] |", "| storm | 3 in 1 burst(s) |"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "| QoS 0 | none |") || errb.Len() != 0 {
		t.Errorf("baseline compared with itself, or complaints: %s %s", got, errb.String())
	}
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics(`# HELP x
mqttd_webhook_events_dropped_total{plugin="a",reason="overflow"} 5
mqttd_webhook_events_dropped_total{plugin="a",reason="failed"} 2
mqttd_webhook_request_duration_seconds_bucket{le="0.1"} 9
mqttd_messages_total 3
mqttd_plugin_events_total{plugin="a"} 1.5e+06
`)
	if len(m) != 3 || sumMetric(m, "mqttd_webhook_events_dropped_total", "") != 7 ||
		sumMetric(m, "mqttd_webhook_events_dropped_total", `reason="overflow"`) != 5 || m[`mqttd_plugin_events_total{plugin="a"}`] != 1.5e6 {
		t.Fatalf("%v", m)
	}
	d := metricsDelta(map[string]float64{"a": 1, "b": 2}, map[string]float64{"a": 1, "b": 5, "c": 1})
	if len(d) != 2 || d["b"] != 3 || d["c"] != 1 {
		t.Fatalf("%v", d)
	}
}

// TestPluginContractCheck: the full check is api/openapi.yaml's, not a
// list of fields of the plugin's own: a request without the headers the
// contract requires is a bad request, and an event with a field the spec
// does not name, or a field of the wrong type, is a bad event (counted
// once however many of its fields are wrong), while the events around it
// are counted as usual.
func TestPluginContractCheck(t *testing.T) {
	ps, url := startBenchPlugin(t, pluginConfig{authResult: "allow", topicResult: "allow", validateEvery: 1})
	good := func(id string, seq int) string {
		return fmt.Sprintf(`{"id":%q,"seq":%d,"type":"broker_post_start","time":"2026-01-02T03:04:05Z","broker":"b"}`, id, seq)
	}
	resp, err := http.Post(url+"/events", "application/json", strings.NewReader(`{"events":[`+good("h-1", 1)+`]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Answered before it is checked, so the broker is not told; the
	// check counts it as a bad request all the same.
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("no X-Mqttd-Plugin or X-Mqttd-Request-Id: status %d", resp.StatusCode)
	}
	codes := postBatches(t, url,
		[]byte(`{"events":[`+good("h-2", 2)+`,`+strings.Replace(good("h-3", 3), `"broker":"b"`, `"broker":"b","extra":1`, 1)+`]}`),
		[]byte(`{"events":[`+strings.Replace(good("h-4", 4), `"seq":4`, `"seq":"4","broker_name":"b"`, 1)+`,`+good("h-5", 5)+`]}`),
		[]byte(`{"events":[`+good("h-6", 6)+`,`+strings.Replace(good("h-7", 7), `"h-7"`, `7`, 1)+`]}`),
	)
	if !slices.Equal(codes, []int{204, 204, 204}) {
		t.Fatalf("status codes %v", codes)
	}
	// Counted as the fast pass reads them: h-1 (checked after its answer)
	// and every event but h-7, whose id is no string, so the pass does not
	// see an event start there; the check finds it bad.
	st := settledStats(ps)
	if st.BadRequests != 1 || st.BadEvents != 3 || st.Events != 6 || st.EventsByType["broker_post_start"] != 6 ||
		st.ValidatedPosts != 4 || st.ValidatedEvents != 6 || len(st.Errors) != 4 {
		t.Fatalf("stats %+v", st)
	}
	for i, want := range []string{"X-Mqttd-Plugin", `"h-3"`, `"h-4"`, `"/id": value must be a string`} {
		if !strings.Contains(st.Errors[i], want) {
			t.Errorf("error %d does not name %s: %s", i, want, st.Errors[i])
		}
	}
}

package webhook

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// The topic chain keeps a connection's latest in-line decisions with the
// connection (mqtt.ClientInfo.Memo). These tests run the chain over a real
// plugin and check that a kept decision is served only while the plugin's
// own copy would be: purges, expiry, re-authentication and reloads all
// take effect from the next check.

// topicChain returns the topic chain of a Manager whose one topic plugin
// is p.
func topicChain(t *testing.T, p *Plugin) (*hooks.Manager, mqtt.TopicChecker) {
	t.Helper()
	m, err := hooks.New(hooks.Options{
		Plugins: map[string]hooks.PluginSpec{"acl": {Plugin: p, Type: "webhook"}},
		Topics:  hooks.TopicOptions{Enable: true, Plugins: []string{"acl"}, Default: hooks.Deny},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, m.Hooks().Topics
}

// check asks chk as the broker does: in line first, then, when that
// cannot answer, the slow way. inline says whether the first sufficed.
func check(chk mqtt.TopicChecker, c *mqtt.ClientInfo, req mqtt.TopicRequest) (res mqtt.TopicResult, inline bool) {
	if res, ok := chk.(mqtt.TopicCheckerNow).CheckTopicNow(c, req); ok {
		return res, true
	}
	req.InlineMissed = true
	return chk.CheckTopic(context.Background(), c, req), false
}

// forget empties the plugin's memo behind its back (no generation bump),
// so that only the connection's kept decision can answer in line.
func forget(p *Plugin) {
	for i := range p.memo.slots {
		p.memo.slots[i].Store(nil)
	}
}

// switchable answers allow until deny is set, always with cache_ttl 60.
func switchable(deny *atomic.Bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if deny.Load() {
			answer(200, `{"result":"deny","reason":"switched","cache_ttl":60}`)(w, r)
			return
		}
		answer(200, `{"result":"allow","cache_ttl":60}`)(w, r)
	}
}

func TestConnMemoAnswersRepeatsInLine(t *testing.T) {
	f := newFake(t)
	f.handle("/topic_filtering", answer(200, `{"result":"allow","cache_ttl":60}`))
	p := newPlugin(t, f.url(), nil)
	_, chk := topicChain(t, p)
	for _, req := range []mqtt.TopicRequest{publish, {Action: mqtt.ActionReceive, Topic: "a/b", QoS: 1}} {
		kept, bare := mqttClient("kept", "alice"), mqttClient("bare", "alice")
		bare.Memo = nil
		for range 3 {
			check(chk, kept, req)
			check(chk, bare, req)
		}
		forget(p)
		hits := counted(t, p.hits)
		if res, inline := check(chk, kept, req); !inline || !res.Allow {
			t.Fatalf("%v: the connection's kept decision did not answer in line: %+v, in line %v", req.Action, res, inline)
		}
		if got := counted(t, p.hits); got != hits+1 {
			t.Fatalf("%v: a kept decision served counted %v cache hits, want 1", req.Action, got-hits)
		}
		if _, inline := check(chk, bare, req); inline {
			t.Fatalf("%v: a client without a memo was answered in line with the plugin's memo empty", req.Action)
		}
	}
	if n := f.count("/topic_filtering"); n != 4 {
		t.Fatalf("%d calls, want 4 (each client's first check, and bare's after forget)", n)
	}
}

func TestConnMemoPurgeTakesEffectAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name         string
		client, user string
	}{{"all", "", ""}, {"client", "kept", ""}, {"user", "", "alice"}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			var deny atomic.Bool
			f.handle("/topic_filtering", switchable(&deny))
			p := newPlugin(t, f.url(), nil)
			_, chk := topicChain(t, p)
			c := mqttClient("kept", "alice")
			for range 3 {
				check(chk, c, publish)
			}
			deny.Store(true)
			if res, inline := check(chk, c, publish); !res.Allow || !inline {
				t.Fatalf("before the purge: %+v, in line %v; want the cached allow, in line", res, inline)
			}
			p.PurgeCache(tc.client, tc.user)
			if res, _ := check(chk, c, publish); res.Allow || res.Reason != "switched" {
				t.Fatalf("the first check after the purge was answered %+v, want the plugin's new deny", res)
			}
		})
	}
}

// A purge about someone else leaves the connection's decision standing:
// after one in-line look at the plugin's memo it is kept again.
func TestConnMemoSurvivesOthersPurge(t *testing.T) {
	f := newFake(t)
	f.handle("/topic_filtering", answer(200, `{"result":"allow","cache_ttl":60}`))
	p := newPlugin(t, f.url(), nil)
	_, chk := topicChain(t, p)
	c := mqttClient("kept", "alice")
	for range 3 {
		check(chk, c, publish)
	}
	p.PurgeCache("someone-else", "")
	if res, inline := check(chk, c, publish); !res.Allow || !inline {
		t.Fatalf("after another client's purge: %+v, in line %v; want allow from the plugin's memo", res, inline)
	}
	forget(p)
	if res, inline := check(chk, c, publish); !res.Allow || !inline {
		t.Fatalf("the decision was not kept again after another client's purge: %+v, in line %v", res, inline)
	}
	if n := f.count("/topic_filtering"); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}

func TestConnMemoExpiresWithTheDecision(t *testing.T) {
	f := newFake(t)
	var deny atomic.Bool
	f.handle("/topic_filtering", switchable(&deny))
	p := newPlugin(t, f.url(), nil) // no jitter
	clk := newClock(p)
	_, chk := topicChain(t, p)
	c := mqttClient("kept", "alice")
	for range 3 {
		check(chk, c, publish)
	}
	deny.Store(true)
	clk.Add(59 * time.Second)
	if res, inline := check(chk, c, publish); !res.Allow || !inline {
		t.Fatalf("within the TTL: %+v, in line %v; want the kept allow", res, inline)
	}
	clk.Add(2 * time.Second)
	if res, _ := check(chk, c, publish); res.Allow {
		t.Fatalf("past the TTL the kept allow was served: %+v", res)
	}
	if n := f.count("/topic_filtering"); n != 2 {
		t.Fatalf("%d calls, want 2", n)
	}
}

// A re-authentication replaces the client's Login: its attributes reach
// the plugin, which may answer otherwise, and its grants decide first.
func TestConnMemoReauthentication(t *testing.T) {
	f := newFake(t)
	f.handle("/topic_filtering", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Attributes map[string]string `json:"attributes"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		if body.Attributes["tenant"] == "a" {
			answer(200, `{"result":"allow","cache_ttl":60}`)(w, r)
			return
		}
		answer(200, `{"result":"deny","reason":"other tenant","cache_ttl":60}`)(w, r)
	})
	p := newPlugin(t, f.url(), nil)
	_, chk := topicChain(t, p)
	c := mqttClient("kept", "alice")
	c.SetLogin(&mqtt.Login{Attributes: map[string]string{"tenant": "a"}})
	for range 3 {
		if res, _ := check(chk, c, publish); !res.Allow {
			t.Fatalf("tenant a: %+v", res)
		}
	}
	c.SetLogin(&mqtt.Login{Attributes: map[string]string{"tenant": "b"}})
	if res, _ := check(chk, c, publish); res.Allow || res.Reason != "other tenant" {
		t.Fatalf("after re-authentication as tenant b: %+v, want the plugin's deny", res)
	}
	for range 3 {
		check(chk, c, publish)
	}
	// Back to tenant a, now with a grant that denies the topic: the
	// grant decides before any decision kept for the connection.
	c.SetLogin(&mqtt.Login{Attributes: map[string]string{"tenant": "a"},
		Grants: []mqtt.Grant{mqtt.NewGrant("a/#", mqtt.ActionSet(0).With(mqtt.ActionPublish), false)}})
	if res, _ := check(chk, c, publish); res.Allow {
		t.Fatalf("a deny grant from the re-authentication did not decide: %+v", res)
	}
}

func TestConnMemoReload(t *testing.T) {
	f := newFake(t)
	f.handle("/topic_filtering", answer(200, `{"result":"allow","cache_ttl":60}`))
	p := newPlugin(t, f.url(), nil)
	m, chk := topicChain(t, p)
	c := mqttClient("kept", "alice")
	for range 3 {
		check(chk, c, publish)
	}
	g := newFake(t)
	g.handle("/topic_filtering", answer(200, `{"result":"deny","reason":"new plugin","cache_ttl":60}`))
	p2 := newPlugin(t, g.url(), func(o *Options) { o.Alias = "acl2" })
	if err := m.Reload(hooks.Options{
		Plugins: map[string]hooks.PluginSpec{"acl2": {Plugin: p2, Type: "webhook"}},
		Topics:  hooks.TopicOptions{Enable: true, Plugins: []string{"acl2"}, Default: hooks.Deny},
	}); err != nil {
		t.Fatal(err)
	}
	if res, _ := check(chk, c, publish); res.Allow || res.Reason != "new plugin" {
		t.Fatalf("after the reload: %+v, want the new plugin's deny", res)
	}
}

func TestConnMemoHitAllocatesNothing(t *testing.T) {
	f := newFake(t)
	f.handle("/topic_filtering", answer(200, `{"result":"allow","cache_ttl":60}`))
	p := newPlugin(t, f.url(), nil)
	_, chk := topicChain(t, p)
	now := chk.(mqtt.TopicCheckerNow)
	c := mqttClient("kept", "alice")
	for _, req := range []mqtt.TopicRequest{publish, {Action: mqtt.ActionReceive, Topic: "a/b", QoS: 1}} {
		for range 3 {
			check(chk, c, req)
		}
		if n := testing.AllocsPerRun(100, func() { now.CheckTopicNow(c, req) }); n != 0 {
			t.Errorf("%v in line: %v allocations per kept check, want 0", req.Action, n)
		}
		if n := testing.AllocsPerRun(100, func() { chk.CheckTopic(context.Background(), c, req) }); n != 0 {
			t.Errorf("%v: %v allocations per kept check, want 0", req.Action, n)
		}
	}
}

// Receive checks for one subscriber come from every publisher's goroutine
// at once. A purge must hold for every check that starts after it
// returned, whichever goroutine kept the decision and when.
func TestConnMemoPurgeUnderConcurrentChecks(t *testing.T) {
	f := newFake(t)
	var deny atomic.Bool
	f.handle("/topic_filtering", switchable(&deny))
	p := newPlugin(t, f.url(), nil)
	_, chk := topicChain(t, p)
	c := mqttClient("sub", "alice")
	recv := mqtt.TopicRequest{Action: mqtt.ActionReceive, Topic: "a/b", QoS: 1}
	check(chk, c, recv)

	var purged, stop atomic.Bool
	var wg sync.WaitGroup
	var checks, denied atomic.Int64
	errs := make(chan string, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				after := purged.Load()
				res, _ := check(chk, c, recv)
				checks.Add(1)
				if after && res.Allow {
					select {
					case errs <- "a check that started after the purge was allowed":
					default:
					}
					return
				}
				if after {
					denied.Add(1)
				}
			}
		}()
	}
	eventually(t, "checks before the purge", func() bool { return checks.Load() > 100 })
	deny.Store(true)
	p.PurgeCache("", "")
	purged.Store(true)
	eventually(t, "denials after the purge", func() bool { return denied.Load() > 100 })
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// With two plugins the kept result is the chain's combination of both
// answers, counted for each as if both were asked; either one's purge
// ends it.
func TestConnMemoTwoPlugins(t *testing.T) {
	fa, fb := newFake(t), newFake(t)
	fa.handle("/topic_filtering", answer(200, `{"result":"allow","cache_ttl":60}`))
	var allowB atomic.Bool
	fb.handle("/topic_filtering", func(w http.ResponseWriter, r *http.Request) {
		if allowB.Load() {
			answer(200, `{"result":"allow","cache_ttl":60}`)(w, r)
			return
		}
		answer(200, `{"result":"deny","reason":"b says no","cache_ttl":60}`)(w, r)
	})
	a := newPlugin(t, fa.url(), func(o *Options) { o.Alias = "a" })
	b := newPlugin(t, fb.url(), func(o *Options) { o.Alias = "b" })
	reg := prometheus.NewRegistry()
	m, err := hooks.New(hooks.Options{Registerer: reg,
		Plugins: map[string]hooks.PluginSpec{"a": {Plugin: a, Type: "webhook"}, "b": {Plugin: b, Type: "webhook"}},
		Topics:  hooks.TopicOptions{Enable: true, Plugins: []string{"a", "b"}, Default: hooks.Deny},
	})
	if err != nil {
		t.Fatal(err)
	}
	chk := m.Hooks().Topics
	c := mqttClient("kept", "alice")
	const n = 6
	for range n {
		if res, _ := check(chk, c, publish); res.Allow || res.Reason != "b says no" {
			t.Fatalf("allow then deny: %+v, want b's deny", res)
		}
	}
	forget(a)
	forget(b)
	if res, inline := check(chk, c, publish); res.Allow || !inline {
		t.Fatalf("the kept deny did not answer in line: %+v, in line %v", res, inline)
	}
	for _, w := range []struct {
		alias, name, result string
	}{
		{"a", "mqttd_plugin_decisions_total", "allow"},
		{"b", "mqttd_plugin_decisions_total", "deny"},
		{"", "mqttd_plugin_chain_decisions_total", "deny"},
	} {
		if got, _ := metricValue(t, reg, w.alias, w.name, map[string]string{"action": "publish", "result": w.result}); got != n+1 {
			t.Errorf("%s{plugin=%q, result=%s} = %v, want %d", w.name, w.alias, w.result, got, n+1)
		}
	}
	allowB.Store(true)
	b.PurgeCache("", "")
	if res, _ := check(chk, c, publish); !res.Allow {
		t.Fatalf("after b's purge: %+v, want allow from both", res)
	}
}

// Through a real broker and client: the broker gives the connection its
// memo, repeated publishes are answered from it, and an admin purge
// refuses the very next publish once the plugin has changed its mind.
func TestConnMemoAdminPurgeWithRealClient(t *testing.T) {
	f := newFake(t)
	var deny atomic.Bool
	f.handle("/topic_filtering", switchable(&deny))
	p := newPlugin(t, f.url(), nil)
	m, err := hooks.New(hooks.Options{
		Plugins: map[string]hooks.PluginSpec{p.Alias(): {Plugin: p, Type: "webhook"}},
		Auth:    hooks.AuthOptions{AllowAnonymous: true},
		Topics:  hooks.TopicOptions{Enable: true, Plugins: []string{p.Alias()}, Default: hooks.Deny},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := hookstest.Serve(t, m)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := pahov5.NewClient(pahov5.ClientConfig{Conn: conn, PacketTimeout: bound})
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if ack, err := c.Connect(ctx, &pahov5.Connect{ClientID: "pub", CleanStart: true, KeepAlive: 30}); err != nil {
		conn.Close()
		t.Fatalf("connect: %v (%+v)", err, ack)
	}
	t.Cleanup(func() { c.Disconnect(&pahov5.Disconnect{}) })
	publish := func() byte {
		t.Helper()
		resp, err := c.Publish(ctx, &pahov5.Publish{Topic: "a/b", QoS: 1, Payload: []byte("x")})
		if resp == nil {
			t.Fatalf("publish: %v", err)
		}
		return resp.ReasonCode
	}
	for range 5 {
		if code := publish(); code >= 0x80 {
			t.Fatalf("publish refused with %#x while the plugin allows", code)
		}
	}
	// With the plugin's memo emptied behind its back, a publish answered
	// any other way than from the connection would fill it again.
	forget(p)
	if code := publish(); code >= 0x80 || p.memo.entries() != 0 {
		t.Fatalf("a repeated publish (%#x) was not answered from the connection's memo (plugin memo entries %d)", code, p.memo.entries())
	}
	deny.Store(true)
	if code := publish(); code >= 0x80 {
		t.Fatalf("publish refused with %#x before the purge; the cached allow should stand", code)
	}
	admin := AdminRoutes(func() []*Plugin { return []*Plugin{p} }, nil)
	rec := httptest.NewRecorder()
	admin.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/"+p.Alias()+"/cache/purge", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("purge: %d %s", rec.Code, rec.Body)
	}
	if code := publish(); code != 0x87 {
		t.Fatalf("the first publish after the purge got %#x, want 0x87", code)
	}
	if n := f.count("/topic_filtering"); n != 2 {
		t.Fatalf("%d topic_filtering calls, want 2 (one before, one after the purge)", n)
	}
}

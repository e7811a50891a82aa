package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
)

// askedAfter reports how many times the plugin was asked across a first
// call, a wait of d, and a second identical call.
func askedAfter(t *testing.T, f *fake, p *Plugin, c *clock, d time.Duration) int64 {
	t.Helper()
	before := f.count("/authenticate")
	if _, err := auth(p, mqttClient("c1", "alice"), "pw"); err != nil {
		t.Fatal(err)
	}
	c.Add(d)
	if _, err := auth(p, mqttClient("c1", "alice"), "pw"); err != nil {
		t.Fatal(err)
	}
	return f.count("/authenticate") - before
}

func TestCacheLifetimes(t *testing.T) {
	withHeader := func(cc string, status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", cc)
			answer(status, body)(w, r)
		}
	}
	cases := []struct {
		name   string
		h      http.HandlerFunc
		fresh  time.Duration // still a hit just before this
		stored bool
	}{
		{"allow: configured TTL", answer(200, `{"result":"allow"}`), time.Minute, true},
		{"ignore: configured TTL", answer(200, `{"result":"ignore"}`), time.Minute, true},
		{"204: configured TTL", answer(204, ``), time.Minute, true},
		{"deny: deny TTL", answer(200, `{"result":"deny"}`), 10 * time.Second, true},
		{"401: deny TTL", answer(401, ``), 10 * time.Second, true},
		{"cache_ttl", answer(200, `{"result":"allow","cache_ttl":5}`), 5 * time.Second, true},
		{"cache_ttl on deny", answer(200, `{"result":"deny","cache_ttl":30}`), 30 * time.Second, true},
		{"cache_ttl 0", answer(200, `{"result":"allow","cache_ttl":0}`), 0, false},
		{"max-age", withHeader("public, max-age=7", 200, `{"result":"allow"}`), 7 * time.Second, true},
		{"max-age on 204", withHeader("max-age=3", 204, ``), 3 * time.Second, true},
		{"max-age on 403", withHeader("max-age=20", 403, ``), 20 * time.Second, true},
		{"max-age=0", withHeader("max-age=0", 200, `{"result":"allow"}`), 0, false},
		{"no-store", withHeader("no-store", 200, `{"result":"allow"}`), 0, false},
		{"no-cache", withHeader("No-Cache", 204, ``), 0, false},
		{"cache_ttl wins over the header", withHeader("no-store", 200, `{"result":"allow","cache_ttl":4}`), 4 * time.Second, true},
		{"malformed max-age says nothing", withHeader("max-age=soon", 200, `{"result":"allow"}`), time.Minute, true},
		{"clamped to max-ttl", answer(200, `{"result":"allow","cache_ttl":86400}`), time.Hour, true},
	}
	f := newFake(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.handle("/authenticate", c.h)
			p := newPlugin(t, f.url(), nil)
			clk := newClock(p)
			if !c.stored {
				if n := askedAfter(t, f, p, clk, 0); n != 2 {
					t.Fatalf("asked %d times, want 2: the answer must not be stored", n)
				}
				if p.cacheLen() != 0 {
					t.Fatalf("%d entries stored", p.cacheLen())
				}
				return
			}
			if n := askedAfter(t, f, p, clk, c.fresh-time.Millisecond); n != 1 {
				t.Fatalf("asked %d times within %v, want 1", n, c.fresh)
			}
			clk.Add(2 * time.Millisecond) // now past the lifetime
			if n := askedAfter(t, f, p, clk, 0); n != 1 {
				t.Fatalf("asked %d times after %v, want 1 (expired, then cached again)", n, c.fresh)
			}
		})
	}
}

func TestCacheKeyFields(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), nil)
	ask := func(c func() (hooks.Decision, error)) int64 {
		before := f.count("/authenticate") + f.count("/topic_filtering")
		if _, err := c(); err != nil {
			t.Fatal(err)
		}
		return f.count("/authenticate") + f.count("/topic_filtering") - before
	}
	a := mqttClient("c1", "alice")
	if ask(func() (hooks.Decision, error) { return auth(p, a, "pw") }) != 1 {
		t.Fatal("first call not asked")
	}
	// A reconnect from another source port is the same request.
	b := *a
	b.RemoteAddr = "127.0.0.1:50000"
	if ask(func() (hooks.Decision, error) { return auth(p, &b, "pw") }) != 0 {
		t.Fatal("a new source port missed the cache")
	}
	misses := map[string]func() (hooks.Decision, error){
		"password": func() (hooks.Decision, error) { return auth(p, a, "pw2") },
		"no password": func() (hooks.Decision, error) {
			return p.Authenticate(context.Background(), &hooks.AuthRequest{Client: a})
		},
		"client id": func() (hooks.Decision, error) { return auth(p, mqttClient("c2", "alice"), "pw") },
		"username":  func() (hooks.Decision, error) { return auth(p, mqttClient("c1", "bob"), "pw") },
		"peer ip": func() (hooks.Decision, error) {
			c := *a
			c.RemoteAddr = "127.0.0.2:40001"
			return auth(p, &c, "pw")
		},
		"listener": func() (hooks.Decision, error) {
			c := *a
			c.Listener = "tls"
			return auth(p, &c, "pw")
		},
		"keep alive": func() (hooks.Decision, error) {
			c := *a
			c.KeepAlive = 10
			return auth(p, &c, "pw")
		},
	}
	for name, call := range misses {
		if ask(call) != 1 {
			t.Errorf("changing the %s hit the cache", name)
		}
	}
	base := publish
	if ask(func() (hooks.Decision, error) { return p.FilterTopic(context.Background(), a, base) }) != 1 {
		t.Fatal("first topic call not asked")
	}
	variants := map[string]func(){
		"topic":  func() { base.Topic = "a/c" },
		"action": func() { base.Action = 3 },
		"qos":    func() { base.QoS = 2 },
		"retain": func() { base.Retain = true },
	}
	for name, change := range variants {
		base = publish
		change()
		if ask(func() (hooks.Decision, error) { return p.FilterTopic(context.Background(), a, base) }) != 1 {
			t.Errorf("changing the topic request's %s hit the cache", name)
		}
	}
}

func TestStaleIfError(t *testing.T) {
	f := newFake(t)
	f.handle("/authenticate", answer(200, `{"result":"deny","reason":"suspended","cache_ttl":1}`))
	p := newPlugin(t, f.url(), func(o *Options) { o.OnError = hooks.OnErrorStale })
	clk := newClock(p)
	if d, err := auth(p, mqttClient("c1", "alice"), "pw"); err != nil || d.Result != hooks.Deny {
		t.Fatalf("%+v %v", d, err)
	}
	clk.Add(time.Hour)
	f.handle("/authenticate", answer(503, ``))
	d, err := auth(p, mqttClient("c1", "alice"), "pw")
	if err != nil || d != (hooks.Decision{Result: hooks.Deny, Reason: "suspended"}) {
		t.Fatalf("stale serve: %+v, %v; want the expired deny", d, err)
	}
	if n := f.count("/authenticate"); n != 2 {
		t.Fatalf("plugin asked %d times, want 2 (a stale entry is not a hit)", n)
	}
	// Nothing to serve for another client: the error says so.
	_, err = auth(p, mqttClient("c2", "bob"), "pw")
	if !errors.Is(err, hooks.ErrStale) || kindOf(err) != KindStatus {
		t.Fatalf("no stale decision: %v, want ErrStale wrapping the status error", err)
	}
	if got := counterValue(t, p, "mqttd_webhook_cache_stale_serves_total", nil); got != 1 {
		t.Fatalf("stale serves = %v, want 1", got)
	}
}

func TestOtherPoliciesDoNotServeStale(t *testing.T) {
	f := newFake(t)
	f.handle("/authenticate", answer(200, `{"result":"allow","cache_ttl":1}`))
	p := newPlugin(t, f.url(), func(o *Options) { o.OnError = hooks.OnErrorDeny })
	clk := newClock(p)
	auth(p, mqttClient("c1", "alice"), "pw")
	clk.Add(time.Hour)
	f.handle("/authenticate", answer(500, ``))
	if _, err := auth(p, mqttClient("c1", "alice"), "pw"); kindOf(err) != KindStatus || errors.Is(err, hooks.ErrStale) {
		t.Fatalf("on-error deny: %v, want the plain status error", err)
	}
}

func TestNoStoreRemovesTheOldDecision(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), func(o *Options) { o.OnError = hooks.OnErrorStale })
	clk := newClock(p)
	auth(p, mqttClient("c1", "alice"), "pw")
	clk.Add(time.Hour)
	f.handle("/authenticate", answer(200, `{"result":"deny","cache_ttl":0}`))
	auth(p, mqttClient("c1", "alice"), "pw")
	f.handle("/authenticate", answer(500, ``))
	if _, err := auth(p, mqttClient("c1", "alice"), "pw"); !errors.Is(err, hooks.ErrStale) {
		t.Fatalf("after a no-store answer the old allow was served stale: %v", err)
	}
}

func TestCacheDisabled(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), func(o *Options) { o.Cache.Size = 0; o.OnError = hooks.OnErrorStale })
	auth(p, mqttClient("c1", "alice"), "pw")
	auth(p, mqttClient("c1", "alice"), "pw")
	if n := f.count("/authenticate"); n != 2 {
		t.Fatalf("asked %d times with no cache, want 2", n)
	}
	f.handle("/authenticate", answer(500, ``))
	if _, err := auth(p, mqttClient("c1", "alice"), "pw"); !errors.Is(err, hooks.ErrStale) {
		t.Fatalf("stale without a cache: %v", err)
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), func(o *Options) { o.Cache.Size = 2 })
	for _, id := range []string{"a", "b", "a", "c", "a", "b"} {
		auth(p, mqttClient(id, "u"), "pw")
	}
	// a, b asked; a hit; c evicts b; a hit; b asked again (evicting c).
	if n := f.count("/authenticate"); n != 4 {
		t.Fatalf("asked %d times, want 4", n)
	}
	if got := counterValue(t, p, "mqttd_webhook_cache_evictions_total", nil); got != 2 {
		t.Fatalf("evictions = %v, want 2", got)
	}
	if p.cacheLen() != 2 {
		t.Fatalf("cache holds %d, bound is 2", p.cacheLen())
	}
}

func TestJitterSpreadsExpiry(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), func(o *Options) { o.Cache.Jitter = 0.1 }) // TTL 60s: lifetimes in [54s, 66s]
	clk := newClock(p)
	const n = 200
	askAll := func() int64 {
		before := f.count("/authenticate")
		for i := range n {
			auth(p, mqttClient(fmt.Sprint("c", i), "u"), "pw")
		}
		return f.count("/authenticate") - before
	}
	askAll()
	clk.Add(54*time.Second - time.Millisecond)
	if got := askAll(); got != 0 {
		t.Fatalf("%d of %d expired before TTL-10%%", got, n)
	}
	clk.Add(6 * time.Second) // 60s: about half expired
	if got := askAll(); got == 0 || got == n {
		t.Fatalf("%d of %d expired at the TTL: entries made together expire together", got, n)
	}
}

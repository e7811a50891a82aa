package webhook

import (
	"context"
	"net/http"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook/cache"
)

// filter asks p as the topic chain does: in line first, then, on a miss,
// through FilterTopic.
func filter(t *testing.T, p *Plugin, c *mqtt.ClientInfo, r mqtt.TopicRequest) hooks.Decision {
	t.Helper()
	if d, ok := p.FilterTopicNow(c, r); ok {
		return d
	}
	d, err := p.FilterTopic(context.Background(), c, r)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func counted(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// memoized returns the memo's fresh decision for the request, bypassing
// the cache, so a test can tell a memo hit from a cache hit.
func memoized(p *Plugin, c *mqtt.ClientInfo, r mqtt.TopicRequest) (hooks.Decision, bool) {
	k := keyOf(c, r)
	if it := p.memo.item(&k, p.clock().UnixNano()); it != nil {
		return it.d, true
	}
	return hooks.Decision{}, false
}

func TestTopicMemoHitIsTheCachedDecision(t *testing.T) {
	f := newFake(t)
	f.handle("/topic_filtering", answer(200, `{"result":"deny","reason":"read only","cache_ttl":30}`))
	p := newPlugin(t, f.url(), nil)
	c := mqttClient("sensor-17", "alice")

	first := filter(t, p, c, publish)
	e, ok := p.cache.Get(topicKey(p.keys, c, publish))
	if !ok {
		t.Fatal("the answer was not cached")
	}
	m, ok := memoized(p, c, publish)
	if !ok || m != e.Value || m != first {
		t.Fatalf("memo has %+v (%v), cache %+v, first answer %+v", m, ok, e.Value, first)
	}
	hits := counted(t, p.hits)
	if again := filter(t, p, c, publish); again != first {
		t.Fatalf("memo hit gave %+v, want %+v", again, first)
	}
	if n := f.count("/topic_filtering"); n != 1 {
		t.Fatalf("plugin called %d times, want 1", n)
	}
	if got := counted(t, p.hits); got != hits+1 {
		t.Fatalf("a memo hit counted %v cache hits, want 1", got-hits)
	}
}

func TestTopicMemoExpiryFallsThrough(t *testing.T) {
	f := newFake(t)
	f.handle("/topic_filtering", answer(200, `{"result":"allow","cache_ttl":5}`))
	p := newPlugin(t, f.url(), nil)
	clk := newClock(p)
	c := mqttClient("sensor-17", "alice")

	filter(t, p, c, publish)
	clk.Add(4 * time.Second)
	filter(t, p, c, publish)
	if n := f.count("/topic_filtering"); n != 1 {
		t.Fatalf("plugin called %d times within the TTL, want 1", n)
	}
	clk.Add(2 * time.Second)
	if _, ok := memoized(p, c, publish); ok {
		t.Fatal("memo still serves an expired decision")
	}
	filter(t, p, c, publish)
	if n := f.count("/topic_filtering"); n != 2 {
		t.Fatalf("plugin called %d times after expiry, want 2", n)
	}
	if _, ok := memoized(p, c, publish); !ok {
		t.Fatal("the renewed decision was not memoized")
	}
}

func TestTopicMemoSkipsUncacheableAnswers(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"cache_ttl 0": answer(200, `{"result":"allow","cache_ttl":0}`),
		"no-store": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			answer(200, `{"result":"allow"}`)(w, nil)
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			f.handle("/topic_filtering", h)
			p := newPlugin(t, f.url(), nil)
			c := mqttClient("sensor-17", "alice")
			filter(t, p, c, publish)
			filter(t, p, c, publish)
			if n := f.count("/topic_filtering"); n != 2 {
				t.Fatalf("plugin called %d times, want 2", n)
			}
			if n := p.memo.entries(); n != 0 {
				t.Fatalf("memo holds %d entries, want 0", n)
			}
		})
	}
}

func TestTopicMemoPurge(t *testing.T) {
	a, b := mqttClient("c1", "alice"), mqttClient("c2", "bob")
	for _, tc := range []struct {
		name             string
		client, username string
		purged           bool // whether b's entry goes too
	}{
		{"client id", "c1", "", false},
		{"username", "", "alice", false},
		{"all", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			p := newPlugin(t, f.url(), nil)
			filter(t, p, a, publish)
			filter(t, p, b, publish)
			p.PurgeCache(tc.client, tc.username)
			if _, ok := memoized(p, a, publish); ok {
				t.Fatal("a's decision survived the purge in the memo")
			}
			if _, ok := memoized(p, b, publish); ok == tc.purged {
				t.Fatalf("b's decision memoized: %v, want %v", ok, !tc.purged)
			}
			filter(t, p, a, publish)
			filter(t, p, b, publish)
			want := int64(3)
			if tc.purged {
				want = 4
			}
			if n := f.count("/topic_filtering"); n != want {
				t.Fatalf("plugin called %d times, want %d", n, want)
			}
		})
	}
}

func TestTopicMemoClearedOnClose(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), nil)
	filter(t, p, mqttClient("c1", "alice"), publish)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := p.memo.entries(); n != 0 {
		t.Fatalf("memo holds %d entries after Close", n)
	}
}

// Clients that differ in one field only must each get their own decision:
// the plugin allows the first request only, so an entry shared between
// clients would show as an allow.
func TestTopicMemoKeepsClientsApart(t *testing.T) {
	f := newFake(t)
	f.handle("/topic_filtering", func(w http.ResponseWriter, r *http.Request) {
		result := "deny"
		if f.count("/topic_filtering") == 1 {
			result = "allow"
		}
		answer(200, `{"result":"`+result+`"}`)(w, r)
	})
	p := newPlugin(t, f.url(), nil)
	clients := []struct {
		c    *mqtt.ClientInfo
		want hooks.Result
	}{
		{mqttClient("c1", "alice"), hooks.Allow},
		{mqttClient("c1", "mallory"), hooks.Deny}, // same client id
		{mqttClient("c2", "alice"), hooks.Deny},   // same user name
	}
	for range 2 { // the second round is answered from the memo
		for _, tc := range clients {
			if d := filter(t, p, tc.c, publish); d.Result != tc.want {
				t.Fatalf("%s/%s got %v, want %v", tc.c.ClientID, tc.c.Username, d.Result, tc.want)
			}
		}
	}
	if n := f.count("/topic_filtering"); n != 3 {
		t.Fatalf("plugin called %d times, want 3", n)
	}
	if n := p.memo.entries(); n != 3 {
		t.Fatalf("memo holds %d entries, want 3", n)
	}
}

// The broker may pass a topic that aliases its read buffer; the memo must
// keep its own copy.
func TestTopicMemoCopiesAliasedTopic(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), nil)
	c := mqttClient("sensor-17", "alice")
	buf := []byte("a/b")
	r := publish
	r.Topic = unsafe.String(&buf[0], len(buf))
	filter(t, p, c, r)
	copy(buf, "x/y")

	if _, ok := memoized(p, c, publish); !ok { // publish.Topic is "a/b"
		t.Fatal("the memo lost a/b when the caller's buffer changed")
	}
	other := publish
	other.Topic = "x/y"
	if _, ok := memoized(p, c, other); ok {
		t.Fatal("the memo answers for x/y, which was never checked")
	}
	filter(t, p, c, other)
	if n := f.count("/topic_filtering"); n != 2 {
		t.Fatalf("plugin called %d times, want 2", n)
	}
}

func TestTopicMemoBounded(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), func(o *Options) { o.Cache.Size = 5 })
	c := mqttClient("sensor-17", "alice")
	r := publish
	for _, topic := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"} {
		r.Topic = topic
		filter(t, p, c, r)
		if n := p.memo.entries(); n > 5 {
			t.Fatalf("memo holds %d entries, cache size 5", n)
		}
	}
}

// FilterTopicNow answers only from the memo: nothing before a FilterTopic
// has filled it, the same decision after, and no HTTP call either way.
func TestFilterTopicNowServesTheMemoOnly(t *testing.T) {
	f := newFake(t)
	f.handle("/topic_filtering", answer(200, `{"result":"allow","cache_ttl":30}`))
	p := newPlugin(t, f.url(), nil)
	c := mqttClient("sensor-17", "alice")
	if _, ok := p.FilterTopicNow(c, publish); ok {
		t.Fatal("answered at once before anything was decided")
	}
	first := filter(t, p, c, publish)
	calls := f.count("/topic_filtering")
	d, ok := p.FilterTopicNow(c, publish)
	if !ok || d != first {
		t.Fatalf("at once: %+v %v, want %+v", d, ok, first)
	}
	if _, ok := p.FilterTopicNow(mqttClient("sensor-17", "mallory"), publish); ok {
		t.Fatal("another user got alice's decision")
	}
	if f.count("/topic_filtering") != calls {
		t.Fatal("FilterTopicNow called the plugin")
	}
}

// hooks may call FilterTopicNow after Close (a check that raced the Reload
// replacing the plugin): it must be safe and answer nothing.
func TestFilterTopicNowAfterClose(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), nil)
	c := mqttClient("sensor-17", "alice")
	filter(t, p, c, publish)
	if _, ok := p.FilterTopicNow(c, publish); !ok {
		t.Fatal("not memoized")
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d, ok := p.FilterTopicNow(c, publish); ok {
		t.Fatalf("answered %+v after Close", d)
	}
}

// The memo's clock runs ahead: it does not take an entry that expires
// within memoLead (the cache serves it, with the exact time), takes one
// that lives longer, and keeps moving.
func TestTopicMemoClockRunsAhead(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), nil)
	c := mqttClient("sensor-17", "alice")
	put := func(life time.Duration) {
		p.memo.put(keyOf(c, publish), p.memo.generation(),
			&cache.Entry[hooks.Decision]{Value: hooks.Decision{Result: hooks.Allow}, Expires: time.Now().Add(life).UnixNano()})
	}
	put(memoLead / 2)
	if n := p.memo.entries(); n != 0 {
		t.Fatalf("memo took an entry expiring within memoLead (%d entries)", n)
	}
	put(time.Hour)
	if _, ok := p.FilterTopicNow(c, publish); !ok {
		t.Fatal("memo does not serve an entry that lives an hour")
	}
	later := time.Now().Add(memoLead).UnixNano()
	eventually(t, "the memo's clock to move on", func() bool { return p.memo.readClock() > later })
}

// With no decision served for memoIdle the memo's clock goes to sleep
// (no goroutine waking 100 times a second on an idle broker); the next
// check misses the memo, is answered from the cache without a call, and
// wakes the clock, after which the memo serves again.
func TestTopicMemoClockSleepsWhenIdle(t *testing.T) {
	f := newFake(t)
	f.handle("/topic_filtering", answer(200, `{"result":"allow","cache_ttl":60}`))
	p := newPlugin(t, f.url(), nil)
	c := mqttClient("sensor-17", "alice")
	filter(t, p, c, publish)
	if _, ok := p.FilterTopicNow(c, publish); !ok {
		t.Fatal("memo does not serve the fresh decision")
	}
	eventually(t, "the idle clock to sleep", func() bool { return !p.memo.clock.running.Load() })
	if _, ok := p.FilterTopicNow(c, publish); ok {
		t.Fatal("memo served a decision with its clock asleep")
	}
	if d := filter(t, p, c, publish); d.Result != hooks.Allow || f.count("/topic_filtering") != 1 {
		t.Fatalf("after the sleep: %+v with %d calls, want allow from the cache and 1 call", d, f.count("/topic_filtering"))
	}
	if _, ok := p.FilterTopicNow(c, publish); !ok || !p.memo.clock.running.Load() {
		t.Fatalf("memo serves %v, clock running %v after the cache hit; want both", ok, p.memo.clock.running.Load())
	}
}

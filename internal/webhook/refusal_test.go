package webhook

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// chainOf builds a hooks.Manager whose auth chain and topic chain are p
// alone, with p's on-error policy, the way the broker runs it.
func chainOf(t *testing.T, p *Plugin) mqtt.Hooks {
	t.Helper()
	m, err := hooks.New(hooks.Options{
		Plugins: map[string]hooks.PluginSpec{p.Alias(): {Plugin: p, OnError: p.opts.OnError, Type: "webhook"}},
		Auth:    hooks.AuthOptions{Plugins: []string{p.Alias()}},
		Topics:  hooks.TopicOptions{Enable: true, Plugins: []string{p.Alias()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m.Hooks()
}

// hold makes the fake's path block each request until the request's own
// context ends (the broker gave up on it), telling entered when it arrives.
func hold(f *fake, path string) chan struct{} {
	entered := make(chan struct{}, 16)
	f.handle(path, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done()
	})
	return entered
}

// cancelWhenEntered cancels ctx once the plugin has the request.
func cancelWhenEntered(t *testing.T, entered chan struct{}, cancel context.CancelFunc) {
	go func() {
		select {
		case <-entered:
		case <-time.After(bound):
			t.Error("the plugin never got the request")
		}
		cancel()
	}()
}

// TestClientGoneIsRefusal: a decision that ends because the client went
// away (its ctx ends while the plugin is still thinking) refuses, whatever
// the on-error policy. Were it a plugin failure, a client could pick the
// on-error answer by hanging up at the right moment: on-error allow would
// let it in, stale would hand out an expired allow.
func TestClientGoneIsRefusal(t *testing.T) {
	for _, policy := range []hooks.OnError{hooks.OnErrorAllow, hooks.OnErrorStale} {
		t.Run(policy.String(), func(t *testing.T) {
			f := newFake(t)
			p := newPlugin(t, f.url(), func(o *Options) { o.OnError = policy })
			clk := newClock(p)
			h := chainOf(t, p)
			c := mqttClient("door-1", "mallory")
			// An allow the plugin once gave, now expired: stale would serve it.
			if !h.Auth.Authenticate(context.Background(), c, []byte("wrong")).Allow {
				t.Fatal("the first login was refused")
			}
			if !h.Topics.CheckTopic(context.Background(), c, publish).Allow {
				t.Fatal("the first publish was refused")
			}
			clk.Add(2 * time.Hour)

			entered := hold(f, "/authenticate")
			ctx, cancel := context.WithCancel(context.Background())
			cancelWhenEntered(t, entered, cancel)
			if res := h.Auth.Authenticate(ctx, c, []byte("wrong")); res.Allow {
				t.Errorf("a login whose client went away mid-call was let in (%+v)", res)
			}

			entered = hold(f, "/topic_filtering")
			ctx, cancel = context.WithCancel(context.Background())
			cancelWhenEntered(t, entered, cancel)
			if res := h.Topics.CheckTopic(ctx, c, publish); res.Allow {
				t.Errorf("a publish check whose client went away mid-call allowed (%+v)", res)
			}
		})
	}
}

// TestRequestBlamingAnswersRefuse: a 4xx that blames the request (413 for a
// body too large for the plugin, 400, 422) refuses the client whatever the
// on-error policy, and never counts against the breaker: a client that
// sends such requests on purpose must neither pick the on-error answer nor
// lock everyone else out by opening the breaker.
func TestRequestBlamingAnswersRefuse(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newFake(t)
			f.handle("/authenticate", answer(status, ``))
			f.handle("/topic_filtering", answer(status, ``))
			p := newPlugin(t, f.url(), func(o *Options) {
				o.OnError = hooks.OnErrorAllow
				o.Breaker = BreakerOptions{ConsecutiveFailures: 3}
			})
			h := chainOf(t, p)
			const tries = 20
			for i := range tries {
				c := mqttClient("mallory", "mallory")
				if res := h.Auth.Authenticate(context.Background(), c, []byte{byte(i)}); res.Allow {
					t.Fatalf("login %d: HTTP %d let the client in (%+v)", i, status, res)
				}
				if res := h.Topics.CheckTopic(context.Background(), c, mqtt.TopicRequest{Action: mqtt.ActionPublish, Topic: string(rune('a' + i))}); res.Allow {
					t.Fatalf("publish %d: HTTP %d allowed it (%+v)", i, status, res)
				}
			}
			for _, ep := range p.endpoints() {
				if s := ep.breaker.State(); s != gobreaker.StateClosed {
					t.Errorf("%s: %d answers of HTTP %d opened the breaker (%v)", ep.name, tries, status, s)
				}
			}
			if n := f.count("/authenticate"); n != tries {
				t.Errorf("the plugin was asked %d times for %d logins", n, tries)
			}
			if got := counterValue(t, p, "mqttd_webhook_decisions_total", map[string]string{"outcome": "rejected", "endpoint": "authenticate"}); got != tries {
				t.Errorf("rejected outcomes = %v, want %d", got, tries)
			}
		})
	}
}

// TestOversizedRequestRefusedLocally: a request whose body would be larger
// than max-request (a CONNECT stuffed with user properties, a huge topic)
// is refused without a call, whatever the on-error policy, and however many
// come the breaker stays closed.
func TestOversizedRequestRefusedLocally(t *testing.T) {
	f := newFake(t)
	p := newPlugin(t, f.url(), func(o *Options) {
		o.OnError = hooks.OnErrorAllow
		o.MaxRequest = 4 << 10
		o.Breaker = BreakerOptions{ConsecutiveFailures: 3}
	})
	h := chainOf(t, p)
	const tries = 20
	for i := range tries {
		c := mqttClient("stuffed", "mallory")
		c.ProtocolVersion = byte(4 + i%2) // 3.1.1 and 5.0
		for j := range 64 {
			c.UserProperties = append(c.UserProperties, packets.UserProperty{Key: fmt.Sprint("k", i, j), Value: strings.Repeat("v", 100)})
		}
		res := h.Auth.Authenticate(context.Background(), c, []byte("pw"))
		if res.Allow || res.ReasonCode != 0x87 {
			t.Fatalf("login %d (version %d) with %d bytes of user properties: %+v, want refused with 0x87 (0x05 for 3.1.1)",
				i, c.ProtocolVersion, 64*100, res)
		}
		long := mqtt.TopicRequest{Action: mqtt.ActionPublish, Topic: strings.Repeat("t", 5<<10) + fmt.Sprint(i)}
		if res := h.Topics.CheckTopic(context.Background(), c, long); res.Allow {
			t.Fatalf("publish %d on a topic over max-request was allowed", i)
		}
	}
	if n := f.count("/authenticate") + f.count("/topic_filtering"); n != 0 {
		t.Errorf("the plugin was asked %d times about requests over max-request", n)
	}
	for _, ep := range p.endpoints() {
		if s := ep.breaker.State(); s != gobreaker.StateClosed {
			t.Errorf("%s: oversized requests opened the breaker (%v)", ep.name, s)
		}
		if got := counterValue(t, p, "mqttd_webhook_decisions_total", map[string]string{"outcome": "too_large", "endpoint": ep.name}); got != tries {
			t.Errorf("%s: too_large outcomes = %v, want %d", ep.name, got, tries)
		}
	}
	// A request within the bound is asked as before.
	if res := h.Auth.Authenticate(context.Background(), mqttClient("small", "alice"), []byte("pw")); !res.Allow {
		t.Fatalf("a small login was refused: %+v", res)
	}
}

// TestAuthSlotsBoundConcurrentCalls: with max-concurrent 1, a second login
// that finds the slot taken waits its timeout, then is refused with 0x89
// (server busy) without a call; the wait is counted, and the breaker, which
// such refusals say nothing to, stays closed.
func TestAuthSlotsBoundConcurrentCalls(t *testing.T) {
	f := newFake(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	f.handle("/authenticate", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	})
	p := newPlugin(t, f.url(), func(o *Options) {
		o.OnError = hooks.OnErrorAllow
		o.MaxConcurrent = 1
		o.Timeout = 5 * time.Second
		o.Breaker = BreakerOptions{ConsecutiveFailures: 1}
	})
	h := chainOf(t, p)
	first := make(chan mqtt.AuthResult, 1)
	go func() { first <- h.Auth.Authenticate(context.Background(), mqttClient("first", "alice"), []byte("pw")) }()
	<-entered
	p.opts.Timeout = 50 * time.Millisecond // the second call's wait for a slot
	res := h.Auth.Authenticate(context.Background(), mqttClient("second", "bob"), []byte("pw"))
	close(release)
	if res.Allow || res.ReasonCode != 0x89 {
		t.Fatalf("a login without a free slot: %+v, want refused with 0x89", res)
	}
	if r := <-first; !r.Allow {
		t.Fatalf("the login holding the slot: %+v", r)
	}
	if n := f.count("/authenticate"); n != 1 {
		t.Errorf("the plugin was asked %d times, want once", n)
	}
	if got := counterValue(t, p, "mqttd_webhook_auth_slot_waits_total", nil); got != 1 {
		t.Errorf("slot waits = %v, want 1", got)
	}
	if got := counterValue(t, p, "mqttd_webhook_decisions_total", map[string]string{"outcome": "busy"}); got != 1 {
		t.Errorf("busy outcomes = %v, want 1", got)
	}
	if s := p.auth.breaker.State(); s != gobreaker.StateClosed {
		t.Errorf("a busy refusal opened the breaker (%v)", s)
	}
}

// TestPluginTimeoutIsAFailure: the plugin's own timeout, with the client
// still there, is the plugin failing: on-error answers (here allow), unlike
// a client that went away.
func TestPluginTimeoutIsAFailure(t *testing.T) {
	f := newFake(t)
	hold(f, "/authenticate")
	p := newPlugin(t, f.url(), func(o *Options) {
		o.OnError = hooks.OnErrorAllow
		o.Timeout = 50 * time.Millisecond
	})
	h := chainOf(t, p)
	if res := h.Auth.Authenticate(context.Background(), mqttClient("c", "alice"), []byte("pw")); !res.Allow {
		t.Fatalf("a plugin timeout with on-error allow: %+v, want allowed by on-error", res)
	}
	if got := counterValue(t, p, "mqttd_webhook_decisions_total", map[string]string{"outcome": "error_timeout"}); got != 1 {
		t.Fatalf("error_timeout outcomes = %v, want 1", got)
	}
}

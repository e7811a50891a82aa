package webhook

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
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

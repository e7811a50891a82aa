package webhook

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/mqttd/mqttd/internal/hooks"
)

// breakerPlugin is a plugin without a cache, so every call reaches the
// breaker, against a fake whose /authenticate answers status.
func breakerPlugin(t *testing.T, status int, b BreakerOptions) (*fake, *Plugin) {
	f := newFake(t)
	f.handle("/authenticate", answer(status, ``))
	return f, newPlugin(t, f.url(), func(o *Options) { o.Cache.Size, o.Breaker = 0, b })
}

func TestBreakerOpensThenAProbeClosesIt(t *testing.T) {
	// OpenFor must outlast the five calls made while it is open, on a
	// loaded machine too (50ms did not); the test waits it out once.
	f, p := breakerPlugin(t, 500, BreakerOptions{ConsecutiveFailures: 3, OpenFor: time.Second})
	for i := range 3 {
		if _, err := auth(p, mqttClient("c1", "alice"), "pw"); kindOf(err) != KindStatus {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	for range 5 {
		if _, err := auth(p, mqttClient("c1", "alice"), "pw"); kindOf(err) != KindBreakerOpen {
			t.Fatalf("open breaker: %v, want breaker_open", err)
		}
	}
	if n := f.count("/authenticate"); n != 3 {
		t.Fatalf("an open breaker let %d calls through, want the 3 that opened it", n)
	}
	// topic_filtering has its own breaker, still closed.
	if _, err := p.FilterTopic(context.Background(), mqttClient("c1", "alice"), publish); err != nil {
		t.Fatalf("topic_filtering shares authenticate's breaker: %v", err)
	}

	f.handle("/authenticate", answer(200, `{"result":"allow"}`))
	eventually(t, "the breaker to half-open", func() bool { return p.auth.breaker.State() == gobreaker.StateHalfOpen })
	if d, err := auth(p, mqttClient("c1", "alice"), "pw"); err != nil || d.Result != hooks.Allow {
		t.Fatalf("probe: %+v, %v", d, err)
	}
	if s := p.auth.breaker.State(); s != gobreaker.StateClosed {
		t.Fatalf("after a good probe the breaker is %v", s)
	}
	for to, want := range map[string]float64{"open": 1, "half_open": 1, "closed": 1} {
		if got := counterValue(t, p, "mqttd_webhook_breaker_transitions_total", map[string]string{"to": to}); got != want {
			t.Errorf("transitions to %s = %v, want %v", to, got, want)
		}
	}
	if got := counterValue(t, p, "mqttd_webhook_decisions_total", map[string]string{"outcome": "breaker_open"}); got != 5 {
		t.Errorf("breaker_open outcomes = %v, want 5", got)
	}
}

func TestBreakerFailedProbeReopens(t *testing.T) {
	_, p := breakerPlugin(t, 502, BreakerOptions{ConsecutiveFailures: 1, OpenFor: 20 * time.Millisecond})
	auth(p, mqttClient("c1", "alice"), "pw")
	eventually(t, "half-open", func() bool { return p.auth.breaker.State() == gobreaker.StateHalfOpen })
	if _, err := auth(p, mqttClient("c1", "alice"), "pw"); kindOf(err) != KindStatus {
		t.Fatalf("probe: %v", err)
	}
	if s := p.auth.breaker.State(); s != gobreaker.StateOpen {
		t.Fatalf("after a failed probe the breaker is %v, want open", s)
	}
}

func TestDenialsDoNotTripTheBreaker(t *testing.T) {
	_, p := breakerPlugin(t, 401, BreakerOptions{ConsecutiveFailures: 2})
	for range 10 {
		if d, err := auth(p, mqttClient("c1", "alice"), "pw"); err != nil || d.Result != hooks.Deny {
			t.Fatalf("%+v %v", d, err)
		}
	}
	if s := p.auth.breaker.State(); s != gobreaker.StateClosed {
		t.Fatalf("denials opened the breaker: %v", s)
	}
}

func TestBreakerFailureRatio(t *testing.T) {
	f, p := breakerPlugin(t, 204, BreakerOptions{ConsecutiveFailures: 100, FailureRatio: 0.5, MinRequests: 6})
	// ok, fail, ok, fail, ok: 2 of 5 failed, under the minimum anyway.
	for i := range 5 {
		if i%2 == 1 {
			f.handle("/authenticate", answer(500, ``))
		} else {
			f.handle("/authenticate", answer(204, ``))
		}
		auth(p, mqttClient("c1", "alice"), "pw")
	}
	if s := p.auth.breaker.State(); s != gobreaker.StateClosed {
		t.Fatalf("opened before min-requests: %v", s)
	}
	f.handle("/authenticate", answer(500, ``))
	auth(p, mqttClient("c1", "alice"), "pw") // 3 of 6 failed: ratio reached
	if s := p.auth.breaker.State(); s != gobreaker.StateOpen {
		t.Fatalf("3 of 6 failed with failure-ratio 0.5: breaker %v, want open", s)
	}
}

// Every breaker transition is one log line naming the alias, the endpoint,
// its URL and the two states, at info or above (warn for an opening).
func TestBreakerTransitionsAreLogged(t *testing.T) {
	var buf syncBuffer
	f := newFake(t)
	f.handle("/authenticate", answer(500, ``))
	p := newPlugin(t, f.url(), func(o *Options) {
		o.Cache.Size = 0
		o.Breaker = BreakerOptions{ConsecutiveFailures: 1, OpenFor: 20 * time.Millisecond}
		o.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	auth(p, mqttClient("c1", "alice"), "pw")
	f.handle("/authenticate", answer(204, ``))
	eventually(t, "half-open", func() bool { return p.auth.breaker.State() == gobreaker.StateHalfOpen })
	auth(p, mqttClient("c1", "alice"), "pw")
	out := buf.String()
	for _, want := range []string{
		"level=WARN msg=\"webhook circuit breaker changed state\" plugin=accounts endpoint=authenticate url=" + f.url() + "/authenticate from=closed to=open",
		"level=INFO msg=\"webhook circuit breaker changed state\" plugin=accounts endpoint=authenticate url=" + f.url() + "/authenticate from=open to=half_open",
		"from=half_open to=closed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the breaker's callbacks.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A plugin whose URL or method is wrong answers 404, 405 or 410 to every
// request alike: a failure of its setup, which the breaker counts (and
// on-error answers), not a refusal of each client in turn.
func TestWrongURLOpensTheBreaker(t *testing.T) {
	for _, status := range []int{404, 405, 410} {
		f, p := breakerPlugin(t, status, BreakerOptions{ConsecutiveFailures: 3, OpenFor: time.Hour})
		for i := range 3 {
			if _, err := auth(p, mqttClient("c1", "alice"), "pw"); kindOf(err) != KindStatus {
				t.Fatalf("%d, call %d: %v, want a status error", status, i, err)
			}
		}
		if _, err := auth(p, mqttClient("c2", "bob"), "pw"); kindOf(err) != KindBreakerOpen {
			t.Fatalf("%d: after 3 answers the breaker is not open: %v", status, err)
		}
		if n := f.count("/authenticate"); n != 3 {
			t.Fatalf("%d: %d calls reached the plugin, want 3", status, n)
		}
	}
}

package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/mqttd/mqttd/internal/hooks"
)

func TestAnswerRules(t *testing.T) {
	f := newFake(t)
	redirectTarget := newFake(t) // must never be asked
	big := `{"result":"allow","reason":"` + strings.Repeat("x", 70<<10) + `"}`
	cases := []struct {
		name string
		h    http.HandlerFunc
		want hooks.Decision
		kind Kind
	}{
		{"200 allow", answer(200, `{"result":"allow"}`), hooks.Decision{Result: hooks.Allow}, 0},
		{"200 deny with reason", answer(200, `{"result":"deny","reason":"banned","reason_code":138}`),
			hooks.Decision{Result: hooks.Deny, ReasonCode: 0x8A, Reason: "banned"}, 0},
		{"200 ignore", answer(200, `{"result":"ignore"}`), hooks.Decision{Result: hooks.Ignore}, 0},
		{"201 allow", answer(201, `{"result":"allow"}`), hooks.Decision{Result: hooks.Allow}, 0},
		{"unknown fields are fine", answer(200, `{"result":"allow","later":1}`), hooks.Decision{Result: hooks.Allow}, 0},
		{"204 allow", answer(204, ``), hooks.Decision{Result: hooks.Allow}, 0},
		{"401 deny", answer(401, ``), hooks.Decision{Result: hooks.Deny}, 0},
		{"403 deny", answer(403, `not json`), hooks.Decision{Result: hooks.Deny}, 0},
		{"403 deny with reason", answer(403, `{"result":"deny","reason":"no"}`), hooks.Decision{Result: hooks.Deny, Reason: "no"}, 0},
		{"404 is an error, never ignores", answer(404, `{"result":"ignore"}`), hooks.Decision{}, KindStatus},
		{"405 is an error", answer(405, ``), hooks.Decision{}, KindStatus},
		{"410 is an error", answer(410, `{"result":"allow"}`), hooks.Decision{}, KindStatus},
		{"400 refuses", answer(400, ``), hooks.Decision{}, KindRejected},
		{"413 refuses", answer(413, `{"result":"allow"}`), hooks.Decision{}, KindRejected},
		{"422 refuses", answer(422, ``), hooks.Decision{}, KindRejected},
		{"408 is an error", answer(408, ``), hooks.Decision{}, KindStatus},
		{"429 is an error", answer(429, ``), hooks.Decision{}, KindStatus},
		{"500", answer(500, `{"result":"allow"}`), hooks.Decision{}, KindStatus},
		{"503", answer(503, ``), hooks.Decision{}, KindStatus},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, redirectTarget.url()+"/authenticate", http.StatusTemporaryRedirect)
		}, hooks.Decision{}, KindStatus},
		{"garbage", answer(200, `{"result":`), hooks.Decision{}, KindBadAnswer},
		{"not an object", answer(200, `"allow"`), hooks.Decision{}, KindBadAnswer},
		{"trailing garbage", answer(200, `{"result":"allow"} x`), hooks.Decision{}, KindBadAnswer},
		{"unknown result", answer(200, `{"result":"ok"}`), hooks.Decision{}, KindBadAnswer},
		{"missing result", answer(200, `{"reason":"x"}`), hooks.Decision{}, KindBadAnswer},
		{"empty 200", answer(200, ``), hooks.Decision{}, KindBadAnswer},
		{"reason_code out of range", answer(200, `{"result":"deny","reason_code":300}`), hooks.Decision{}, KindBadAnswer},
		{"negative cache_ttl", answer(200, `{"result":"allow","cache_ttl":-1}`), hooks.Decision{}, KindBadAnswer},
		{"body over max-body", answer(200, big), hooks.Decision{}, KindBadAnswer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPlugin(t, f.url(), nil)
			f.handle("/authenticate", c.h)
			f.handle("/topic_filtering", c.h)
			before := f.count("/authenticate")
			d, err := auth(p, mqttClient("c1", "alice"), "pw")
			if c.kind.refusal() {
				// A refusal is a deny, with no error for on-error to answer.
				if err != nil || d.Result != hooks.Deny {
					t.Fatalf("authenticate: %+v, %v; want a deny without an error", d, err)
				}
				if td, terr := p.FilterTopic(context.Background(), mqttClient("c1", "alice"), publish); terr != nil || td.Result != hooks.Deny {
					t.Fatalf("topic_filtering: %+v, %v; want a deny without an error", td, terr)
				}
				if auth(p, mqttClient("c1", "alice"), "pw"); f.count("/authenticate")-before != 2 {
					t.Fatal("a refusal was cached")
				}
				return
			}
			if kindOf(err) != c.kind || (c.kind == 0 && err != nil) {
				t.Fatalf("authenticate: error %v (kind %v), want kind %v", err, kindOf(err), c.kind)
			}
			if d != c.want {
				t.Fatalf("authenticate: %+v, want %+v", d, c.want)
			}
			td, terr := p.FilterTopic(context.Background(), mqttClient("c1", "alice"), publish)
			if kindOf(terr) != c.kind || td != c.want {
				t.Fatalf("topic_filtering: %+v, %v; want %+v, kind %v", td, terr, c.want, c.kind)
			}
			// Errors are never cached: the next call asks again. Decisions are.
			auth(p, mqttClient("c1", "alice"), "pw")
			asked := f.count("/authenticate") - before
			if c.kind != 0 && asked != 2 {
				t.Fatalf("after an error the plugin was asked %d times for 2 calls: errors must not be cached", asked)
			}
			if c.kind == 0 && asked != 1 {
				t.Fatalf("a decision was asked %d times for 2 calls: it should have been cached", asked)
			}
		})
	}
	if n := redirectTarget.count("/authenticate"); n != 0 {
		t.Fatalf("a redirect was followed %d times", n)
	}
}

func TestTimeout(t *testing.T) {
	f := newFake(t)
	release := make(chan struct{})
	defer close(release)
	f.handle("/authenticate", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	p := newPlugin(t, f.url(), func(o *Options) { o.Timeout = 50_000_000 }) // 50ms
	_, err := auth(p, mqttClient("c1", "alice"), "pw")
	if kindOf(err) != KindTimeout {
		t.Fatalf("slow plugin: %v, want a timeout", err)
	}
	if !strings.Contains(err.Error(), "raise the alias's timeout") {
		t.Fatalf("error does not say what to do: %v", err)
	}
}

func TestRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	p := newPlugin(t, url, nil)
	_, err = auth(p, mqttClient("c1", "alice"), "pw")
	if kindOf(err) != KindRefused {
		t.Fatalf("closed port: %v, want refused", err)
	}
}

func TestCallerGoingAwayStopsWaiting(t *testing.T) {
	f := newFake(t)
	entered, cancelled := make(chan struct{}), make(chan struct{})
	f.handle("/authenticate", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		close(cancelled)
	})
	p := newPlugin(t, f.url(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := p.Authenticate(ctx, &hooks.AuthRequest{Client: mqttClient("c1", "a"), Password: []byte("pw")})
		errc <- err
	}()
	<-entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client went away: %v, want its context's error", err)
	}
	// The only waiter left, so the HTTP call is cancelled too.
	<-cancelled
	// and the breaker did not count it against the plugin.
	eventually(t, "the call to be settled", func() bool {
		c := p.auth.breaker.Counts()
		return c.TotalExclusions+c.TotalFailures == 1
	})
	if c := p.auth.breaker.Counts(); c.TotalFailures != 0 {
		t.Fatalf("an abandoned call counted as a breaker failure: %+v", c)
	}
}

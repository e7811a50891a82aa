package contract

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mqttd/mqttd/internal/webhook/wire"
)

// plugin is a test plugin: it answers every call and remembers the bodies
// it was handed, so the test can see the Recorder passed them on intact.
type plugin struct {
	mu     sync.Mutex
	bodies map[string]int // path -> bytes received
}

func (p *plugin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.bodies[r.URL.Path] += len(b)
	p.mu.Unlock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/manifest"):
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"name":"t","version":"1","authenticate":true,"topic_filtering":true,"events":[]}`)
	case strings.HasSuffix(r.URL.Path, "/events"):
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"result":"allow","cache_ttl":5}`)
	}
}

// TestGeneratedClientThroughRecorder drives every operation with the
// generated client against a plugin url with a path prefix, concurrently:
// all must pass the contract, reach the plugin with their bodies, and come
// back parsed.
func TestGeneratedClientThroughRecorder(t *testing.T) {
	v := newValidator(t)
	p := &plugin{bodies: map[string]int{}}
	rec := Wrap(v, p)
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c, err := wire.NewClientWithResponses(srv.URL + "/hooks/v1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	events := allEvents(t)
	const rounds = 8
	var wg sync.WaitGroup
	errs := make(chan error, rounds*4)
	for i := range rounds {
		wg.Go(func() {
			id := fmt.Sprintf("req-%d", i)
			auth, err := c.AuthenticateWithResponse(ctx, &wire.AuthenticateParams{XMqttdPlugin: "p", XMqttdRequestID: id}, authRequest())
			if err == nil && (auth.JSON200 == nil || auth.JSON200.Result != wire.DecisionResultAllow) {
				err = fmt.Errorf("authenticate answer not parsed: %d %s", auth.StatusCode(), auth.Body)
			}
			errs <- err
			_, err = c.TopicFilteringWithResponse(ctx, &wire.TopicFilteringParams{XMqttdPlugin: "p", XMqttdRequestID: id}, topicRequest())
			errs <- err
			ev, err := c.PostEventsWithResponse(ctx, &wire.PostEventsParams{XMqttdPlugin: "p", XMqttdRequestID: id}, wire.EventBatch{Events: events})
			if err == nil && ev.StatusCode() != http.StatusNoContent {
				err = fmt.Errorf("events: status %d", ev.StatusCode())
			}
			errs <- err
			m, err := c.GetManifestWithResponse(ctx, &wire.GetManifestParams{XMqttdPlugin: "p", XMqttdRequestID: id})
			if err == nil && m.JSON200 == nil {
				err = fmt.Errorf("manifest not parsed: %s", m.Body)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	rec.Check(t)
	if got := rec.Seen(); got != rounds*4 {
		t.Errorf("Seen() = %d, want %d", got, rounds*4)
	}
	for _, path := range []string{"/hooks/v1/authenticate", "/hooks/v1/topic_filtering", "/hooks/v1/events"} {
		if p.bodies[path] == 0 {
			t.Errorf("plugin got no body on %s (have %v)", path, p.bodies)
		}
	}
}

// failRecorder stands in for a *testing.T so Check's reports can be seen.
type failRecorder struct {
	testing.TB
	errs []string
}

func (f *failRecorder) Helper() {}
func (f *failRecorder) Errorf(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func TestRecorderRecordsFailures(t *testing.T) {
	v := newValidator(t)
	var got []string
	rec := Wrap(v, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, string(b))
		w.WriteHeader(http.StatusNoContent)
	}))
	good, goodBody := request(t, "POST", "/topic_filtering", topicRequest())
	bad, badBody := request(t, "POST", "/topic_filtering", map[string]any{"client_id": "c1"})
	stray, _ := request(t, "POST", "/nowhere", nil)
	for _, c := range []struct {
		r *http.Request
		b []byte
	}{{good, goodBody}, {bad, badBody}, {stray, nil}} {
		c.r.Body = io.NopCloser(strings.NewReader(string(c.b)))
		rec.ServeHTTP(httptest.NewRecorder(), c.r)
	}
	if rec.Seen() != 3 {
		t.Errorf("Seen() = %d, want 3", rec.Seen())
	}
	fails := rec.Failures()
	if len(fails) != 2 || !strings.Contains(fails[0].Error(), "topic_filtering") || !strings.Contains(fails[1].Error(), "/nowhere") {
		t.Errorf("Failures() = %v, want the bad body and the stray path", fails)
	}
	// Invalid requests still reach the handler, with their bodies.
	if len(got) != 3 || got[0] != string(goodBody) || got[1] != string(badBody) {
		t.Errorf("handler saw %q", got)
	}
	f := &failRecorder{TB: t}
	rec.Check(f)
	if len(f.errs) != 2 {
		t.Errorf("Check reported %d failures, want 2: %q", len(f.errs), f.errs)
	}
}

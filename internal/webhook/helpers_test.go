package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook/contract"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bound is how long a test waits for something that should happen at once;
// it only ever turns a hang into a failure.
const bound = 10 * time.Second

var validator = func() *contract.Validator {
	v, err := contract.New()
	if err != nil {
		panic(err)
	}
	return v
}()

// fake is a plugin service on loopback. Each path's answer is a handler the
// test can swap; every request is checked against api/openapi.yaml.
type fake struct {
	t   testing.TB
	srv *httptest.Server
	rec *contract.Recorder

	mu       sync.Mutex
	handlers map[string]http.HandlerFunc
	bodies   map[string][][]byte
	headers  map[string][]http.Header
	calls    map[string]*atomic.Int64
}

// newFake starts a fake whose /authenticate and /topic_filtering allow, and
// whose /manifest is 404 and /events takes anything.
func newFake(t testing.TB) *fake {
	f := newUnstartedFake(t, nil)
	f.srv.Start()
	return f
}

// newUnstartedFake builds a fake on ln (a fresh loopback port when nil)
// without starting it.
func newUnstartedFake(t testing.TB, ln net.Listener) *fake {
	f := &fake{t: t, handlers: map[string]http.HandlerFunc{}, bodies: map[string][][]byte{},
		headers: map[string][]http.Header{}, calls: map[string]*atomic.Int64{}}
	for _, p := range []string{"/authenticate", "/topic_filtering", "/manifest", "/events"} {
		f.calls[p] = new(atomic.Int64)
	}
	f.handle("/authenticate", answer(200, `{"result":"allow"}`))
	f.handle("/topic_filtering", answer(200, `{"result":"allow"}`))
	f.handle("/manifest", answer(404, ``))
	f.handle("/events", answer(200, ``))
	f.rec = contract.Wrap(validator, http.HandlerFunc(f.serve))
	f.srv = httptest.NewUnstartedServer(f.rec)
	if ln != nil {
		f.srv.Listener.Close()
		f.srv.Listener = ln
	}
	t.Cleanup(func() {
		f.srv.Close()
		f.rec.Check(t)
	})
	return f
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body)) // the handler may read it too
	f.mu.Lock()
	h := f.handlers[r.URL.Path]
	f.bodies[r.URL.Path] = append(f.bodies[r.URL.Path], body)
	f.headers[r.URL.Path] = append(f.headers[r.URL.Path], r.Header.Clone())
	c := f.calls[r.URL.Path]
	f.mu.Unlock()
	if c != nil {
		c.Add(1)
	}
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h(w, r)
}

func (f *fake) handle(path string, h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[path] = h
}

func (f *fake) count(path string) int64 { return f.calls[path].Load() }

func (f *fake) lastBody(path string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	bs := f.bodies[path]
	if len(bs) == 0 {
		f.t.Fatalf("no request to %s", path)
	}
	var m map[string]any
	if err := json.Unmarshal(bs[len(bs)-1], &m); err != nil {
		f.t.Fatalf("%s body is not JSON: %v", path, err)
	}
	return m
}

func (f *fake) url() string { return f.srv.URL }

// answer writes status and body as JSON.
func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// testOptions are the options of a plugin under test: defaults with a
// deterministic cache (no jitter), a private registry and a quiet log.
func testOptions(url string) Options {
	c := DefaultCache
	c.Jitter = 0
	return Options{
		Alias:      "accounts",
		URL:        url,
		Timeout:    2 * time.Second,
		Cache:      c,
		Registerer: prometheus.NewRegistry(),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// newPlugin builds a plugin against url, closed when the test ends.
func newPlugin(t testing.TB, url string, edit func(*Options)) *Plugin {
	t.Helper()
	o := testOptions(url)
	if edit != nil {
		edit(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

// clock is a settable time for cache lifetimes.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(p *Plugin) *clock {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	p.clock = c.Now
	if p.memo != nil { // the memo follows it exactly, not coarsely
		p.memo.testClock = func() int64 { return c.Now().UnixNano() }
	}
	return c
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func mqttClient(id, user string) *mqtt.ClientInfo {
	return &mqtt.ClientInfo{ClientID: id, Username: user, RemoteAddr: "127.0.0.1:40001", Listener: "default",
		Transport: "tcp", ProtocolVersion: 5, CleanStart: true, KeepAlive: 60, Memo: new(mqtt.CheckerMemo)}
}

func auth(p *Plugin, c *mqtt.ClientInfo, password string) (hooks.Decision, error) {
	return p.Authenticate(context.Background(), &hooks.AuthRequest{Client: c, Password: []byte(password)})
}

var publish = mqtt.TopicRequest{Action: mqtt.ActionPublish, Topic: "a/b", QoS: 1}

// kindOf returns the Kind of a webhook error, 0 for anything else.
func kindOf(err error) Kind {
	var we *Error
	if errors.As(err, &we) {
		return we.Kind
	}
	return 0
}

// eventually polls cond until it holds, failing the test after bound.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

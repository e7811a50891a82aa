package webhook

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/webhook/cache"
)

// waiters is how many callers wait on key's shared call.
func (f *flights) waiters(key cache.Key) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.m[key]; fl != nil {
		return fl.waiters
	}
	return 0
}

// gate blocks a handler until released, recording whether the request's
// context ended first.
type gate struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}, 100), release: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) handler(then http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g.entered <- struct{}{}
		select {
		case <-g.release:
			then(w, r)
		case <-r.Context().Done():
		}
	}
}

func TestIdenticalMissesShareOneCall(t *testing.T) {
	f := newFake(t)
	g := newGate()
	defer g.open()
	f.handle("/authenticate", g.handler(answer(200, `{"result":"allow"}`)))
	p := newPlugin(t, f.url(), nil)
	const n = 50
	key := authKey(p.keys, &hooks.AuthRequest{Client: mqttClient("c1", "alice"), Password: []byte("pw")})

	var wg sync.WaitGroup
	results := make(chan error, n)
	for range n {
		wg.Go(func() {
			d, err := auth(p, mqttClient("c1", "alice"), "pw")
			if err == nil && d.Result != hooks.Allow {
				err = errors.New("not allowed")
			}
			results <- err
		})
	}
	eventually(t, "every caller to join the shared call", func() bool { return p.flights.waiters(key) == n })
	g.open()
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.count("/authenticate"); got != 1 {
		t.Fatalf("%d identical concurrent misses made %d calls, want 1", n, got)
	}
}

func TestLeavingCallerDoesNotCancelTheOthers(t *testing.T) {
	f := newFake(t)
	g := newGate()
	defer g.open()
	f.handle("/authenticate", g.handler(answer(200, `{"result":"allow"}`)))
	p := newPlugin(t, f.url(), nil)
	key := authKey(p.keys, &hooks.AuthRequest{Client: mqttClient("c1", "alice"), Password: []byte("pw")})

	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		_, err := p.Authenticate(ctx, &hooks.AuthRequest{Client: mqttClient("c1", "alice"), Password: []byte("pw")})
		gone <- err
	}()
	stays := make(chan hooks.Decision, 1)
	go func() {
		d, _ := auth(p, mqttClient("c1", "alice"), "pw")
		stays <- d
	}()
	<-g.entered
	eventually(t, "both callers to wait", func() bool { return p.flights.waiters(key) == 2 })
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the leaving caller got %v", err)
	}
	g.open() // the handler answers only if its request was not cancelled
	if d := <-stays; d.Result != hooks.Allow {
		t.Fatalf("the staying caller got %+v: the shared call was cancelled under it", d)
	}
	if n := f.count("/authenticate"); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}

func TestLateCallerAfterAbandonStartsAFreshCall(t *testing.T) {
	f := newFake(t)
	g := newGate()
	f.handle("/authenticate", g.handler(answer(200, `{"result":"allow"}`)))
	p := newPlugin(t, f.url(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Authenticate(ctx, &hooks.AuthRequest{Client: mqttClient("c1", "alice"), Password: []byte("pw")})
		close(done)
	}()
	<-g.entered
	cancel()
	<-done
	g.open()
	d, err := auth(p, mqttClient("c1", "alice"), "pw")
	if err != nil || d.Result != hooks.Allow {
		t.Fatalf("a caller after an abandoned call got %+v, %v", d, err)
	}
}

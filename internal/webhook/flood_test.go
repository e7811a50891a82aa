package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// slowAccounts is an accounts service on loopback with the capacity of a
// real one: two workers, each check costing 20 ms (a password hash), so
// about 100 checks a second. Password "good" is allowed. It is a plain
// server, not the contract-checking fake: the flood would spend the test's
// CPU on checking thousands of identical requests.
func slowAccounts(t *testing.T) string {
	workers := make(chan struct{}, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Password string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.URL.Path != "/authenticate" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		select {
		case workers <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		time.Sleep(20 * time.Millisecond)
		<-workers
		if body.Password == "good" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// loginRun is what the good logins of one phase came to.
type loginRun struct {
	ok    int
	codes map[byte]int // refusals by reason code
	rate  float64      // successful logins per second
}

// goodLogins starts one login from 127.0.0.1 every interval, n in all, each
// a new client (so none is answered from the cache), and waits for them.
func goodLogins(a mqtt.Authenticator, phase string, n int, interval time.Duration) loginRun {
	var mu sync.Mutex
	run := loginRun{codes: map[byte]int{}}
	var wg sync.WaitGroup
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	for i := range n {
		<-tick.C
		wg.Go(func() {
			c := mqttClient(fmt.Sprintf("%s-good-%d", phase, i), "alice")
			c.RemoteAddr = fmt.Sprintf("127.0.0.1:%d", 20000+i)
			res := a.Authenticate(context.Background(), c, []byte("good"))
			mu.Lock()
			defer mu.Unlock()
			if res.Allow {
				run.ok++
			} else {
				run.codes[res.ReasonCode]++
			}
		})
	}
	wg.Wait()
	run.rate = float64(run.ok) / time.Since(start).Seconds()
	return run
}

// flood guesses passwords from 127.0.0.2 on many connections at once until
// stop, each guess new (so none is answered from the cache), bounded in
// count; it returns how many guesses it made.
func flood(a mqtt.Authenticator, stop <-chan struct{}) func() int64 {
	const conns, maxGuesses = 128, 200_000
	var guesses atomic.Int64
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			for i := 0; guesses.Add(1) <= maxGuesses; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c := mqttClient(fmt.Sprintf("guess-%d", w), "alice")
				c.RemoteAddr = fmt.Sprintf("127.0.0.2:%d", 30000+w)
				a.Authenticate(context.Background(), c, fmt.Appendf(nil, "guess-%d-%d", w, i))
				time.Sleep(50 * time.Millisecond) // a refused client reconnects; this paces the loop, it asserts nothing
			}
		})
	}
	return func() int64 { wg.Wait(); return guesses.Load() }
}

// floodChain is an auth chain on an HTTP accounts plugin with the default
// on-error (deny), max-concurrent and breaker, with or without the
// failed-login limit.
func floodChain(t *testing.T, limit bool) mqtt.Authenticator {
	p := newPlugin(t, slowAccounts(t), func(o *Options) {
		o.Alias = "accounts"
		o.Timeout = time.Second
		o.Cache.Size = 0
	})
	rl := hooks.RateLimitOptions{} // off
	if limit {
		rl = hooks.RateLimitOptions{FailuresPerSecond: 1, Burst: 10, MaxPending: 10} // the defaults
	}
	m, err := hooks.New(hooks.Options{
		Plugins: map[string]hooks.PluginSpec{"accounts": {Plugin: p, OnError: hooks.OnErrorDeny, Type: "webhook"}},
		Auth:    hooks.AuthOptions{Plugins: []string{"accounts"}, RateLimit: rl},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m.Hooks().Auth
}

// floodN is the number of good logins in each phase.
const floodN = 40

// floodRatio runs good logins without, then during, a one-source flood of
// wrong passwords, and returns both runs.
func floodRatio(t *testing.T, limit bool) (base, during loginRun, guesses int64) {
	const interval = 50 * time.Millisecond
	a := floodChain(t, limit)
	base = goodLogins(a, "base", floodN, interval)
	stop := make(chan struct{})
	wait := flood(a, stop)
	during = goodLogins(a, "flood", floodN, interval)
	close(stop)
	return base, during, wait()
}

// TestGoodLoginsSurviveAFlood: one source guessing passwords on 128
// connections must not keep users at other addresses out. With the
// failed-login limit, good logins from 127.0.0.1 keep at least 90% of
// their rate without the flood; without it the same flood starves them
// (the plugin's slots and workers are the flood's, so good logins wait
// past their timeout: 0x88 or 0x89), which shows the test measures the
// limit and not the machine.
func TestGoodLoginsSurviveAFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of load")
	}
	base, during, guesses := floodRatio(t, true)
	ratio := float64(during.ok) / float64(base.ok)
	t.Logf("with the limit: good logins %d/s without the flood, %d/s during it (ratio %.2f, refusals %v); %d guesses",
		int(base.rate), int(during.rate), ratio, during.codes, guesses)
	if base.ok < floodN*9/10 {
		t.Fatalf("without any flood only %d of %d good logins succeeded (%v)", base.ok, floodN, base.codes)
	}
	if ratio < 0.9 {
		t.Errorf("with the limit, good logins during the flood: %d, %.0f%% of the %d without it; want at least 90%%",
			during.ok, 100*ratio, base.ok)
	}

	base, during, guesses = floodRatio(t, false)
	ratio = float64(during.ok) / float64(base.ok)
	t.Logf("without the limit: good logins %d/s without the flood, %d/s during it (ratio %.2f, refusals %v); %d guesses",
		int(base.rate), int(during.rate), ratio, during.codes, guesses)
	if ratio > 0.5 {
		t.Errorf("without the limit the flood left good logins %.0f%% of their rate: the test does not load the plugin enough to show the limit", 100*ratio)
	}
}

package webhook

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/mqttd/mqttd/internal/hooks"
)

// TestChaos drives concurrent traffic at two plugins on one flaky service
// through its failure modes: slow, garbage, 500s, down, back up. The plugin
// with on-error deny must return allow or an error of the phase's kinds on
// every call (the chain turns those into its policy); the one with
// on-error stale must keep answering every client's last decision without
// an error. At the end both breakers have closed again.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos takes a few seconds")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	f := newUnstartedFake(t, ln)
	f.srv.Start()
	edit := func(policy hooks.OnError) func(*Options) {
		return func(o *Options) {
			o.Alias = "chaos-" + policy.String()
			o.OnError = policy
			o.Timeout = bound             // see setTimeout
			o.Cache.TTL = time.Nanosecond // stored but never fresh: every call asks the plugin
			o.Breaker = BreakerOptions{ConsecutiveFailures: 5, OpenFor: 100 * time.Millisecond}
		}
	}
	strict := newPlugin(t, "http://"+addr, edit(hooks.OnErrorDeny))
	stale := newPlugin(t, "http://"+addr, edit(hooks.OnErrorStale))
	// setTimeout sets both plugins' per-call timeout between phases (no
	// call is in flight then, and neither plugin was started, so nothing
	// else reads it). Only the slow phase needs a short one, to end its
	// calls; in every other phase a call must not time out, and a short
	// timeout did on a loaded machine, where a healthy call can stall for
	// hundreds of milliseconds.
	setTimeout := func(d time.Duration) { strict.opts.Timeout, stale.opts.Timeout = d, d }

	const workers, calls = 8, 12
	phase := func(name string, allowed ...Kind) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 2*workers*calls)
		for w := range workers {
			wg.Go(func() {
				c := mqttClient(fmt.Sprintf("client-%d", w), "alice")
				for i := range calls {
					check := func(who string, d hooks.Decision, err error) {
						if err == nil && d.Result == hooks.Allow {
							return
						}
						if err != nil && who == "strict" && slices.Contains(allowed, kindOf(err)) {
							return
						}
						errs <- fmt.Errorf("%s: %s call %d: %+v, %v", name, who, i, d, err)
					}
					if i%3 == 2 {
						d, err := strict.FilterTopic(context.Background(), c, publish)
						check("strict", d, err)
						d, err = stale.FilterTopic(context.Background(), c, publish)
						check("stale", d, err)
						continue
					}
					d, err := auth(strict, c, "pw")
					check("strict", d, err)
					d, err = auth(stale, c, "pw")
					check("stale", d, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	setAll := func(h http.HandlerFunc) {
		f.handle("/authenticate", h)
		f.handle("/topic_filtering", h)
	}
	slow := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

	phase("healthy")
	setAll(slow)
	setTimeout(100 * time.Millisecond)
	phase("slow", KindTimeout, KindBreakerOpen)
	setTimeout(bound)
	setAll(answer(200, `{"result":`))
	phase("garbage", KindBadAnswer, KindBreakerOpen)
	setAll(answer(500, `oops`))
	phase("500s", KindStatus, KindBreakerOpen)
	f.srv.Close()
	phase("down", KindRefused, KindBreakerOpen)
	if s := strict.auth.breaker.State(); s == gobreaker.StateClosed {
		t.Fatalf("breaker closed while the plugin is down")
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("cannot bring the plugin back on %s: %v", addr, err)
	}
	back := newUnstartedFake(t, ln)
	back.srv.Start()
	for _, p := range []*Plugin{strict, stale} {
		for _, ep := range p.endpoints() {
			eventually(t, p.Alias()+" "+ep.name+" breaker to close", func() bool {
				if ep == p.auth {
					auth(p, mqttClient("probe", "alice"), "pw")
				} else {
					p.FilterTopic(context.Background(), mqttClient("probe", "alice"), publish)
				}
				return ep.breaker.State() == gobreaker.StateClosed
			})
		}
	}
	phase("recovered")
	if got := counterValue(t, strict, "mqttd_webhook_breaker_transitions_total", map[string]string{"to": "open"}); got < 2 {
		t.Errorf("the strict plugin's breakers opened %v times, want at least once per endpoint", got)
	}
	if got := counterValue(t, stale, "mqttd_webhook_cache_stale_serves_total", nil); got == 0 {
		t.Error("the stale plugin never served a stale decision")
	}
}

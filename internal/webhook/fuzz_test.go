package webhook

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/webhook/cache"
	"github.com/mqttd/mqttd/internal/webhook/wire"
)

// FuzzReadDecision feeds arbitrary statuses, Cache-Control values and
// bodies to the answer rules. Nothing may panic; statuses keep their
// meaning whatever the body says (204 allows, 401 and 403 deny, other 4xx
// but 404, 405, 408, 410 and 429 are KindRejected refusals, non-2xx others are KindStatus
// errors, never "ignore"); a 2xx body that parses has
// a result the wire format knows, and any other result is an error; and
// no answer gives a negative or unbounded lifetime, nor a cache policy a
// negative one. Seeds live in testdata/fuzz/FuzzReadDecision.
func FuzzReadDecision(f *testing.F) {
	f.Fuzz(func(t *testing.T, status int, cacheControl string, body []byte, tooLong bool) {
		r := &response{status: status, header: http.Header{}, body: body, tooLong: tooLong}
		if cacheControl != "" {
			r.header.Add("Cache-Control", cacheControl)
		}
		v, kind, err := readDecision(r, &DefaultLogin)
		if kind == 0 && err != nil {
			t.Fatalf("error %v without a kind", err)
		}
		if kind != 0 && v != (verdict{}) {
			t.Fatalf("kind %v with a verdict %+v", kind, v)
		}
		switch {
		case status == http.StatusNoContent:
			if kind != 0 || v.d.Result != hooks.Allow {
				t.Fatalf("204 gave %+v, kind %v", v, kind)
			}
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			if kind != 0 || v.d.Result != hooks.Deny {
				t.Fatalf("%d gave %+v, kind %v", status, v, kind)
			}
		case status >= 200 && status < 300:
			_, perr := parseDecision(r, &DefaultLogin)
			if (perr != nil) != (kind == KindBadAnswer) || (perr == nil && kind != 0) {
				t.Fatalf("%d: parse error %v but kind %v", status, perr, kind)
			}
		case status >= 400 && status < 500 && !slices.Contains([]int{404, 405, 408, 410, 429}, status):
			if kind != KindRejected {
				t.Fatalf("%d gave %+v, kind %v; want a KindRejected refusal", status, v, kind)
			}
		default:
			if kind != KindStatus {
				t.Fatalf("%d gave %+v, kind %v; want a KindStatus error", status, v, kind)
			}
		}
		if kind == 0 {
			checkVerdict(t, v)
		}

		pv, err := parseDecision(r, &DefaultLogin)
		if err != nil {
			return
		}
		checkVerdict(t, pv)
		var d wire.Decision
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatalf("parseDecision accepted a body that does not unmarshal: %v", err)
		}
		want := map[wire.DecisionResult]hooks.Result{
			wire.DecisionResultAllow: hooks.Allow, wire.DecisionResultDeny: hooks.Deny, wire.DecisionResultIgnore: hooks.Ignore,
		}
		if w, ok := want[d.Result]; !ok || pv.d.Result != w {
			t.Fatalf("result %q parsed to %v", d.Result, pv.d.Result)
		}
		if d.CacheTTL != nil {
			if !pv.given || (*d.CacheTTL > 0 && pv.ttl < time.Duration(min(*d.CacheTTL, maxAnswerSeconds))*time.Second) {
				t.Fatalf("cache_ttl %d gave %v (given %v)", *d.CacheTTL, pv.ttl, pv.given)
			}
		}
	})
}

// checkVerdict requires a lifetime the cache can use: not negative, at
// most maxAnswerSeconds, and one no policy turns negative.
func checkVerdict(t *testing.T, v verdict) {
	t.Helper()
	switch v.d.Result {
	case hooks.Allow, hooks.Deny, hooks.Ignore:
	default:
		t.Fatalf("result %v", v.d.Result)
	}
	if v.ttl < 0 || v.ttl > maxAnswerSeconds*time.Second || (!v.given && v.ttl != 0) {
		t.Fatalf("lifetime %v (given %v)", v.ttl, v.given)
	}
	p := cache.Policy{TTL: time.Minute, DenyTTL: time.Second, Jitter: 0.5}
	if life := p.Lifetime(v.ttl, v.given, v.d.Result == hooks.Deny); life < 0 {
		t.Fatalf("lifetime %v from ttl %v", life, v.ttl)
	}
}

// FuzzRequestSizeGuard builds authenticate requests from arbitrary client
// ids, user names, passwords and user properties. The body is always valid
// JSON; the guard refuses exactly the bodies over max-request, with a deny
// that neither on-error nor the breaker sees (no error) and without a call;
// and two requests differing only in a user property never share a cache
// key.
func FuzzRequestSizeGuard(f *testing.F) {
	f.Add("door-1", "alice", []byte("pw"), "tenant", "plant-7", 3, int64(512))
	f.Add("", "", []byte{0xff, 0xfe}, "", "", 0, int64(1))
	f.Add("c", "u", []byte(nil), "k\x00", "v\"\\", 200, int64(64<<10))
	p := &Plugin{keys: cache.NewKeyer(), auth: &endpoint{name: epAuthenticate, m: endpointMetrics{outcome: map[string]prometheus.Counter{
		KindTooLarge.outcome(): prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}),
	}}}}
	f.Fuzz(func(t *testing.T, id, user string, password []byte, key, value string, n int, max int64) {
		if n < 0 || n > 500 || max < 1 {
			return
		}
		p.opts.MaxRequest = max
		c := mqttClient(id, user)
		for i := range n {
			c.UserProperties = append(c.UserProperties, packets.UserProperty{Key: key, Value: value + strconv.Itoa(i)})
		}
		req := &hooks.AuthRequest{Client: c, Password: password}
		body, err := authBody(req)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(body) {
			t.Fatalf("authenticate body is not JSON: %q", body)
		}
		d, refused := p.tooLarge(p.auth, body)
		if refused != (int64(len(body)) > max) {
			t.Fatalf("a body of %d bytes with max-request %d: refused %v", len(body), max, refused)
		}
		if refused && d.Result != hooks.Deny {
			t.Fatalf("a refused request answered %+v", d)
		}
		other := *c
		other.UserProperties = append(slices.Clone(c.UserProperties), packets.UserProperty{Key: key, Value: value})
		if authKey(p.keys, req) == authKey(p.keys, &hooks.AuthRequest{Client: &other, Password: password}) {
			t.Fatal("an extra user property left the cache key unchanged")
		}
	})
}

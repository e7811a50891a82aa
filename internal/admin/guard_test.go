package admin

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

func TestTokenRules(t *testing.T) {
	e, _ := startWithPlugin(t, testToken)
	e.client("c1", "alice", nil)

	// Missing, wrong and right tokens, on reads and on changes.
	for _, path := range []string{"/api/v1/clients", "/api/v1/plugins", "/api/v1/stats", "/plugins/", "/debug/vars"} {
		r := e.must(401, "GET", path, "", "Authorization", "")
		if r.header.Get("WWW-Authenticate") == "" || !strings.Contains(r.errorText(t), "admin.token") {
			t.Fatalf("GET %s without a token: %v %s", path, r.header, r.body)
		}
		e.must(401, "GET", path, "", "Authorization", "Bearer wrong")
		e.must(401, "GET", path, "", "Authorization", testToken) // no scheme
	}
	e.must(200, "GET", "/api/v1/clients", "", "Authorization", "bearer "+testToken) // the scheme is case-insensitive
	e.must(401, "POST", "/api/v1/clients/c1/kick", `{}`, "Authorization", "")
	e.must(401, "POST", "/api/v1/clients/c1/kick", `{}`, "Authorization", "Bearer "+testToken+"x")
	e.must(401, "POST", "/api/v1/publish", `{"topic":"a","payload":"x"}`, "Authorization", "")

	// Health, readiness and metrics stay open; the dashboard's page shell
	// is not refused by the guard (it is not mounted here: 404).
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		e.must(200, "GET", path, "", "Authorization", "")
	}
	if r := e.call("GET", "/ui/", "", "Authorization", ""); r.status == 401 || r.status == 403 {
		t.Fatalf("/ui/ refused: %d", r.status)
	}

	// The old purge route: refused without the token, cross-origin or
	// not; accepted with it.
	e.must(401, "POST", "/plugins/accounts/cache/purge", "", "Authorization", "")
	e.must(403, "POST", "/plugins/accounts/cache/purge", "", "Authorization", "", "Origin", "http://evil.example")
	e.must(200, "POST", "/plugins/accounts/cache/purge", "")
	e.must(200, "POST", "/plugins/accounts/cache/purge?username=alice", "", "Origin", e.url)
	if got := e.refusals(refusedToken); got != 19 {
		t.Fatalf("unauthorized requests counted %v", got)
	}
}

// A page on another origin cannot make a browser act on the admin API:
// with or without a token configured, with or without one sent.
func TestCrossOriginRefused(t *testing.T) {
	for _, token := range []string{testToken, ""} {
		e, _ := startWithPlugin(t, token)
		e.client("c1", "alice", nil)
		for _, h := range [][]string{
			{"Origin", "http://evil.example"},
			{"Origin", "null"},
			{"Origin", strings.Replace(e.url, "http://", "https://", 1)},
			{"Sec-Fetch-Site", "cross-site"},
			{"Sec-Fetch-Site", "same-site"},
		} {
			for _, req := range [][2]string{
				{"/api/v1/clients/c1/kick", `{}`},
				{"/api/v1/publish", `{"topic":"a","payload":"x"}`},
				{"/api/v1/cache/purge", `{}`},
				{"/plugins/accounts/cache/purge", ``},
			} {
				r := e.must(403, "POST", req[0], req[1], h...)
				if !strings.Contains(r.errorText(t), "origin") {
					t.Fatalf("token %q, %v: %s", token, h, r.body)
				}
			}
			e.must(403, "DELETE", "/api/v1/retained/a", "", h...)
		}
		// A form post, the one cross-origin POST a browser sends without
		// asking first, carries no Origin from some old browsers: its
		// content type still fails it.
		e.must(415, "POST", "/api/v1/publish", "topic=a&payload=x", "Content-Type", "application/x-www-form-urlencoded")
		e.must(415, "POST", "/api/v1/clients/c1/kick", `{}`, "Content-Type", "text/plain")
		e.must(415, "POST", "/api/v1/cache/purge", `{}`, "Content-Type", "")
		// The listener's own origin and a fetch from the address bar pass.
		e.must(200, "POST", "/api/v1/publish", `{"topic":"a","payload":"x"}`, "Origin", e.url, "Sec-Fetch-Site", "same-origin")
		e.must(200, "POST", "/api/v1/cache/purge", `{}`, "Sec-Fetch-Site", "none")
		// Reads are not changes: a GET with a foreign Origin is only a
		// matter of the token (and CORS, which the API never grants).
		r := e.must(200, "GET", "/api/v1/stats", "", "Origin", "http://evil.example")
		if r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatal("the API granted CORS")
		}
		// But no cross-site page may make the browser fetch anything
		// guarded, reads included (an image tag on a profile burns CPU).
		for _, path := range []string{"/api/v1/stats", "/debug/pprof/cmdline", "/plugins"} {
			e.must(403, "GET", path, "", "Sec-Fetch-Site", "cross-site")
		}
		e.must(200, "GET", "/api/v1/stats", "", "Sec-Fetch-Site", "same-origin")
		e.must(200, "GET", "/healthz", "", "Sec-Fetch-Site", "cross-site") // open paths stay open
		if got := e.refusals(refusedOrigin); got < 23 {
			t.Fatalf("cross-origin refusals counted %v", got)
		}
	}
}

// With no token, the API answers over loopback with a literal host only.
func TestNoTokenLoopbackOnly(t *testing.T) {
	e, _ := startWithPlugin(t, "")
	e.client("c1", "alice", nil)
	e.must(200, "GET", "/api/v1/clients", "")
	e.must(200, "POST", "/api/v1/clients/c1/kick", `{}`)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(e.url, "http://"))
	e.must(200, "GET", "/api/v1/stats", "", "Host", "localhost:"+port)
	// A DNS-rebinding page reaches loopback under its own name.
	r := e.must(403, "GET", "/api/v1/stats", "", "Host", "rebind.evil.example:"+port)
	if !strings.Contains(r.errorText(t), "admin.token") {
		t.Fatalf("message: %s", r.body)
	}
	e.must(403, "POST", "/api/v1/cache/purge", `{}`, "Host", "rebind.evil.example:"+port)

	// A request that reached a non-loopback address (a public bind).
	g := NewGuard("", nil)
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }))
	for _, path := range []string{"/api/v1/clients", "/plugins/", "/healthz"} {
		req := httptest.NewRequest("GET", path, nil)
		req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 9180}))
		req.Host = "192.0.2.7:9180"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		want := http.StatusForbidden
		if path == "/healthz" {
			want = http.StatusOK
		}
		if rec.Code != want {
			t.Errorf("%s on a public address without a token: %d, want %d", path, rec.Code, want)
		}
	}
	if !Loopback(&net.TCPAddr{IP: net.IPv6loopback}) || Loopback(&net.TCPAddr{IP: net.ParseIP("0.0.0.0")}) {
		t.Fatal("Loopback")
	}
}

// refusals reads the guard's refusal counter for one reason.
func (e *env) refusals(reason string) float64 {
	var m dto.Metric
	if err := e.guard.refused.WithLabelValues(reason).Write(&m); err != nil {
		e.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

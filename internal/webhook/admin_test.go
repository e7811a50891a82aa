package webhook

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// adminCall makes one request to the admin API and decodes its JSON answer
// into out.
func adminCall(t *testing.T, srv *httptest.Server, method, path string, wantStatus int, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, body, wantStatus)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("%s %s: %v in %s", method, path, err, body)
	}
}

func TestAdminRoutes(t *testing.T) {
	f := newFake(t)
	accounts := newPlugin(t, f.url(), nil)
	audit := newPlugin(t, f.url(), func(o *Options) { o.Alias = "audit" })
	srv := httptest.NewServer(AdminRoutes(func() []*Plugin { return []*Plugin{accounts, audit} }, nil))
	defer srv.Close()

	for _, id := range []string{"c1", "c2", "c3"} {
		auth(accounts, mqttClient(id, "alice"), "pw")
	}
	auth(accounts, mqttClient("c4", "bob"), "pw")
	accounts.FilterTopic(t.Context(), mqttClient("c1", "bob"), publish)

	var list []Status
	adminCall(t, srv, "GET", "/", 200, &list)
	if len(list) != 2 || list[0].Alias != "accounts" || list[1].Alias != "audit" {
		t.Fatalf("list = %+v", list)
	}
	var one Status
	adminCall(t, srv, "GET", "/accounts", 200, &one)
	if one.URL != f.url() || !one.Ready || one.CacheEntries != 5 ||
		one.Endpoints["authenticate"].BreakerState != "closed" || one.Endpoints["topic_filtering"].Requests != 1 {
		t.Fatalf("status = %+v", one)
	}
	if _, ok := one.Events.Dropped["overflow"]; !ok {
		t.Fatalf("events = %+v", one.Events)
	}

	var e map[string]string
	adminCall(t, srv, "GET", "/nope", 404, &e)
	if !strings.Contains(e["error"], "nope") {
		t.Fatalf("404 body = %v", e)
	}
	adminCall(t, srv, "POST", "/nope/cache/purge", 404, &e)
	adminCall(t, srv, "POST", "/accounts/cache/purge?client_id=c1&username=bob", 400, &e)

	var purged map[string]int
	adminCall(t, srv, "POST", "/accounts/cache/purge?client_id=c1", 200, &purged)
	if purged["purged"] != 2 { // c1's authenticate and topic_filtering decisions
		t.Fatalf("purge client c1 = %v, want 2", purged)
	}
	adminCall(t, srv, "POST", "/accounts/cache/purge?username=alice", 200, &purged)
	if purged["purged"] != 2 { // c2 and c3
		t.Fatalf("purge user alice = %v, want 2", purged)
	}
	adminCall(t, srv, "POST", "/accounts/cache/purge", 200, &purged)
	if purged["purged"] != 1 || accounts.cacheLen() != 0 {
		t.Fatalf("purge all = %v, left %d", purged, accounts.cacheLen())
	}
	// A purged decision is asked again.
	before := f.count("/authenticate")
	auth(accounts, mqttClient("c4", "bob"), "pw")
	if f.count("/authenticate") != before+1 {
		t.Fatal("a purged decision was still served from the cache")
	}
}

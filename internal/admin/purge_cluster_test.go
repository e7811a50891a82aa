package admin

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/webhook"
)

// In a cluster, both purge routes pass the purge to the other nodes after
// purging here, with its target; a refused request passes nothing.
func TestPurgePassedToOtherNodes(t *testing.T) {
	p, err := webhook.New(webhook.Options{Alias: "accounts", URL: "http://127.0.0.1:1", Timeout: time.Second,
		Cache: webhook.CacheOptions{Size: 10, TTL: time.Minute}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var got [][3]string
	a := &API{
		Plugins:     func() []PluginInfo { return []PluginInfo{{Alias: "accounts", Type: "http", HTTP: p}} },
		PurgeOthers: func(alias, client, user string) { got = append(got, [3]string{alias, client, user}) },
	}
	h := a.Handler()
	for _, r := range []struct {
		path, body string
		status     int
	}{
		{"/cache/purge", `{"username":"alice"}`, 200},
		{"/plugins/accounts/cache/purge", `{"client_id":"c2"}`, 200},
		{"/cache/purge", `{"client_id":"c2","username":"bob"}`, 400},
		{"/plugins/nope/cache/purge", `{}`, 404},
	} {
		req := httptest.NewRequest(http.MethodPost, r.path, strings.NewReader(r.body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != r.status {
			t.Errorf("POST %s %s: %d %s, want %d", r.path, r.body, w.Code, w.Body, r.status)
		}
	}
	want := [][3]string{{"", "", "alice"}, {"accounts", "c2", ""}}
	if !slices.Equal(got, want) {
		t.Errorf("passed to the other nodes: %v, want %v", got, want)
	}
}

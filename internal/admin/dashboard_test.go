package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestDashboardMount(t *testing.T) {
	h := NewHandler(&fakeSource{}, func() error { return nil }, prometheus.NewRegistry())
	if code, body, _ := get(t, h, http.MethodGet, "/ui/"); code != http.StatusOK || !strings.Contains(body, "<title>mqttd dashboard</title>") {
		t.Errorf("GET /ui/ = %d, want 200 and the page", code)
	}
	if code, body, _ := get(t, h, http.MethodGet, "/ui/app.js"); code != http.StatusOK || !strings.Contains(body, "/api/v1/stats") {
		t.Errorf("GET /ui/app.js = %d, want 200 and the script", code)
	}
	if code, _, hdr := get(t, h, http.MethodGet, "/ui"); code != http.StatusMovedPermanently || hdr.Get("Location") != "/ui/" {
		t.Errorf("GET /ui = %d Location %q, want a redirect to /ui/", code, hdr.Get("Location"))
	}
}

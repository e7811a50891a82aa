package ui_test

import (
	"context"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mqttd/mqttd/internal/admin"
	"github.com/mqttd/mqttd/internal/admin/ui/uitest"
)

// TestDashboardInBrowser runs the dashboard scenario in headless Chromium
// against the admin handler (the real /ui/ mount and /metrics) with the
// fake API mounted at /api/v1. Set MQTTD_DASHBOARD_PNG to a path to keep
// the screenshot there too (docs/dashboard.png is made that way, after a
// fuller chart).
func TestDashboardInBrowser(t *testing.T) {
	points := 0
	if os.Getenv("MQTTD_DASHBOARD_PNG") != "" {
		points = 60
	}
	const token = "s3cret-admin-token"
	reg := admin.NewRegistry()
	api := newFakeAPI(token, reg)
	srv := httptest.NewServer(admin.NewHandler(api, func() error { return nil }, reg,
		admin.Mount{Pattern: "/api/v1", Handler: api.routes()}))
	t.Cleanup(srv.Close)

	uitest.Scenario(t, uitest.Target{
		URL: srv.URL, Token: token, Plugin: "auth", Client: "dash-client-1", ChartPoints: points,
		WantText: map[string]string{
			`[data-plugin="auth"] [data-latency]`:                 "p50 1.0 ms · p99 45 ms",
			`[data-plugin="auth"] [data-cache-ratio]`:             "90.0 %",
			`[data-plugin="auth"] [data-queue-depth]`:             "12",
			`[data-plugin="auth"] [data-dropped]`:                 "2 (overflow 2)",
			`#retained`:                                           "42",
			`#refusals tr[data-refusal="laptop-3"] td:last-child`: "auth",
			`#refusals tr[data-refusal="probe"] td:last-child`:    "broker",
		},
		Connect:     func(testing.TB) { api.connect("dash-client-1", "carol") },
		OpenBreaker: func(testing.TB) { api.setBreaker("open") },
		Kicked: func(t testing.TB) {
			select {
			case k := <-api.kicks:
				if k.ClientID != "dash-client-1" || k.Authorization != "Bearer "+token ||
					!strings.HasPrefix(k.ContentType, "application/json") || k.DiscardSession {
					t.Errorf("kick arrived as %+v, want dash-client-1 with the token, JSON, discard_session false", k)
				}
			case <-time.After(90 * time.Second):
				t.Fatal("no kick request reached the API within 90 s")
			}
		},
		Screenshot: func(t testing.TB, png []byte) {
			if path := os.Getenv("MQTTD_DASHBOARD_PNG"); path != "" {
				if err := os.WriteFile(path, png, 0o644); err != nil {
					t.Error(err)
				}
			}
		},
	})
	// The page waited for the token before calling the API: no request
	// went out without it.
	if n := api.unauthorized.Load(); n != 0 {
		t.Errorf("%d API requests came without the token", n)
	}
}

// TestDashboardWrongToken: a refused token brings the prompt back with the
// reason, and the page does not keep the token.
func TestDashboardWrongToken(t *testing.T) {
	reg := admin.NewRegistry()
	api := newFakeAPI("right-token", reg)
	srv := httptest.NewServer(admin.NewHandler(api, func() error { return nil }, reg,
		admin.Mount{Pattern: "/api/v1", Handler: api.routes()}))
	t.Cleanup(srv.Close)

	tab := uitest.NewBrowser(t, 3*time.Minute)
	ctx, cancel := context.WithTimeout(tab, 2*time.Minute)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/ui/?refresh=500"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-state="need-token"]`)),
		chromedp.SendKeys(chromedp.CSS("#token"), "wrong-token"),
		chromedp.Click(chromedp.CSS("#token-use")),
	)
	if err == nil {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.body.dataset.state === "need-token" && `+
			`/refused the admin token \(401\)/.test(document.getElementById("banner").textContent)`, chromedp.WithPollingTimeout(0)))
	}
	if err != nil {
		t.Fatalf("the page did not say the token was refused: %v", err)
	}
	kept, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(sessionStorage.getItem("mqttd.admin.token"))`))
	if err != nil || kept != "null" {
		t.Errorf("sessionStorage keeps %q (%v) after a refused token, want nothing", kept, err)
	}
	if api.unauthorized.Load() == 0 {
		t.Error("the fake API saw no request with the wrong token")
	}
}

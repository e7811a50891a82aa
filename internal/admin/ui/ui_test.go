package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func serve(t *testing.T, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), string(body)
}

func TestServesThePageAndItsFiles(t *testing.T) {
	for _, tc := range []struct{ path, contentType, contains string }{
		{"/", "text/html", `<script src="app.js"`},
		{"/app.js", "text/javascript", "Authorization"},
		{"/style.css", "text/css", "--bad"},
	} {
		res, body := serve(t, http.MethodGet, tc.path)
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), tc.contentType) {
			t.Errorf("GET %s = %d %s, want 200 %s", tc.path, res.StatusCode, res.Header.Get("Content-Type"), tc.contentType)
		}
		if !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s lacks %q", tc.path, tc.contains)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy = %q, want own scripts only and no framing", tc.path, csp)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: headers %v", tc.path, res.Header)
		}
	}
}

func TestRefusesWritesAndUnknownFiles(t *testing.T) {
	if res, _ := serve(t, http.MethodPost, "/"); res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST / = %d Allow %q, want 405 GET, HEAD", res.StatusCode, res.Header.Get("Allow"))
	}
	if res, _ := serve(t, http.MethodGet, "/nope.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope.js = %d, want 404", res.StatusCode)
	}
	if res, body := serve(t, http.MethodHead, "/app.js"); res.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD /app.js = %d with %d bytes, want 200 and no body", res.StatusCode, len(body))
	}
}

package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// admin.pprof puts Go's profiles on the admin listener; without it they
// are not there.
func TestAdminPprof(t *testing.T) {
	isolate(t)
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint("pprof=", on), func(t *testing.T) {
			mqttAddr, adminAddr := freePort(t), freePort(t)
			cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`
listeners:
  default: {bind: %q}
admin: {bind: %q, pprof: %v}
`, mqttAddr, adminAddr, on))
			serveUntilCleanup(t, cfg, adminAddr)
			for path, want := range map[string]string{
				"/debug/pprof/":                  "goroutine",
				"/debug/pprof/goroutine?debug=1": "goroutine profile: total",
			} {
				resp, err := http.Get("http://" + adminAddr + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !on {
					if resp.StatusCode != http.StatusNotFound {
						t.Errorf("GET %s with pprof off = %d, want 404", path, resp.StatusCode)
					}
					continue
				}
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
					t.Errorf("GET %s = %d, body lacks %q:\n%.300s", path, resp.StatusCode, want, body)
				}
			}
		})
	}
}

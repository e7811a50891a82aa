// Package ui is the operator's dashboard: one static page (HTML, JavaScript
// and CSS embedded in the binary, no build step) that the admin listener
// serves under /ui/. The page itself holds no data: the browser reads the
// admin REST API with the token the operator types in, and /metrics.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// contentSecurityPolicy lets the page load only its own files and talk only
// to its own origin, so nothing a client id or a refusal reason contains
// can pull in a script.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the dashboard's files at the root of its URL space
// ("/" is the page, "/app.js" its script): mount it with its prefix
// stripped. Only GET and HEAD are answered.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the dashboard is read with GET", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Embedded files carry no modification time: ask the browser to
		// check again, so an upgraded broker's page is picked up at once.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

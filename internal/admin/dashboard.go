package admin

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/mqttd/mqttd/internal/admin/ui"
)

// mountDashboard serves the dashboard (package ui) under /ui/. Its files
// are public, like /metrics: they hold no data, and the page asks the
// operator for the token the API routes want. /ui redirects to /ui/ so the
// page's relative URLs resolve.
func mountDashboard(r chi.Router) {
	r.Get("/ui", func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, "/ui/", http.StatusMovedPermanently)
	})
	r.Handle("/ui/*", http.StripPrefix("/ui", ui.Handler()))
}

package admin

import (
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyFunc reports whether the broker should receive traffic: nil when it
// should, else an error whose message says why not ("starting",
// "shutting down").
type ReadyFunc func() error

// Mount is a subtree of the admin surface owned by another package, such as
// the HTTP plugins' /plugins.
type Mount struct {
	Pattern string       // e.g. "/plugins"
	Handler http.Handler // mounted with chi: a chi router here routes relative to Pattern
}

// Profiler mounts Go's runtime profiles (net/http/pprof) and expvar
// under /debug: /debug/pprof/, /debug/pprof/profile?seconds=N, ...
func Profiler() Mount { return Mount{Pattern: "/debug", Handler: middleware.Profiler()} }

// NewHandler returns the admin routes:
//
//	GET /healthz  200 "ok" while the process serves HTTP at all
//	GET /readyz   200 "ready" when ready() is nil, else 503 and its reason
//	GET /metrics  Prometheus text exposition of reg
//
// It registers a Collector for src in reg (nil: a NewRegistry), so other
// packages can add their own metrics to the same registry, and mounts
// each of mounts under its pattern. HEAD is answered like GET.
func NewHandler(src StatsSource, ready ReadyFunc, reg *prometheus.Registry, mounts ...Mount) http.Handler {
	if reg == nil {
		reg = NewRegistry()
	}
	reg.MustRegister(NewCollector(src))

	r := chi.NewRouter()
	r.Use(middleware.Recoverer, middleware.GetHead)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		text(w, http.StatusOK, "ok")
	})
	r.Get("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			text(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
		text(w, http.StatusOK, "ready")
	})
	r.Method(http.MethodGet, "/metrics", promhttp.InstrumentMetricHandler(reg,
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError})))
	mountDashboard(r)
	for _, m := range mounts {
		r.Mount(m.Pattern, m.Handler)
	}
	return r
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	io.WriteString(w, body+"\n")
}

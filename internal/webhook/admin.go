package webhook

import (
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Status is what the admin API shows of one plugin.
type Status struct {
	Alias          string                    `json:"alias"`           // the plugin's config alias
	URL            string                    `json:"url"`             // its base URL
	Ready          bool                      `json:"ready"`           // its manifest or a decision call has answered
	Endpoints      map[string]EndpointStatus `json:"endpoints"`       // by decision endpoint name
	CacheEntries   int                       `json:"cache_entries"`   // decisions cached now
	CacheEvictions uint64                    `json:"cache_evictions"` // entries pushed out for room, since start
	CacheHits      uint64                    `json:"cache_hits"`      // since start
	CacheMisses    uint64                    `json:"cache_misses"`    // since start
	QueueDepth     int                       `json:"queue_depth"`     // events waiting to be sent
	Events         EventStatus               `json:"events"`          // event delivery counts
}

// Listed is one plugin in the admin API's list: every alias, built-ins
// included. An HTTP plugin's Status fields come along (alias, url, ready,
// ...); a built-in has alias, type and capabilities only.
type Listed struct {
	Alias        string   `json:"alias"`        // the plugin's config alias
	Type         string   `json:"type"`         // http, password-file, acl-file or event-log
	Capabilities []string `json:"capabilities"` // authenticate, topic_filtering, events
	*Status               // an HTTP plugin's; nil for a built-in
}

// EndpointStatus is one decision endpoint's breaker.
type EndpointStatus struct {
	BreakerState        string `json:"breaker_state"`        // closed, half_open or open
	Requests            uint32 `json:"requests"`             // in the breaker's current window
	Failures            uint32 `json:"failures"`             // in the breaker's current window
	ConsecutiveFailures uint32 `json:"consecutive_failures"` // since the last success; the breaker opens on these
	// Decision call times since start, from the request duration
	// histogram: how many, and the median and 99th percentile estimated
	// within its buckets (0 before any call).
	Calls        uint64  `json:"calls"`
	LatencyP50Ms float64 `json:"latency_p50_ms"` // median call time, ms
	LatencyP99Ms float64 `json:"latency_p99_ms"` // 99th percentile call time, ms
}

// EventStatus counts this plugin instance's event deliveries.
type EventStatus struct {
	Sent    uint64            `json:"sent"`    // events in batches the plugin accepted
	Retried uint64            `json:"retried"` // batch POSTs sent again after a retryable failure
	Dropped map[string]uint64 `json:"dropped"` // events lost, by reason: overflow, failed, encode, shutdown
}

// Status returns a snapshot of the plugin for the admin API.
func (p *Plugin) Status() Status {
	st := p.events.Stats()
	s := Status{
		Alias:        p.opts.Alias,
		URL:          p.opts.URL,
		Ready:        p.Ready(),
		Endpoints:    map[string]EndpointStatus{},
		CacheEntries: p.cacheLen(),
		CacheHits:    p.hits.Value(),
		CacheMisses:  uint64(readCounter(p.misses)),
		QueueDepth:   st.Queued,
		Events: EventStatus{Sent: st.Sent, Retried: st.Retried, Dropped: map[string]uint64{
			"overflow": st.Dropped.Overflow, "failed": st.Dropped.Failed,
			"encode": st.Dropped.Encode, "shutdown": st.Dropped.Shutdown,
		}},
	}
	if p.cache != nil {
		s.CacheEvictions = p.cache.Evictions()
	}
	for _, ep := range p.endpoints() {
		c := ep.breaker.Counts()
		es := EndpointStatus{
			BreakerState:        stateName(ep.breaker.State()),
			Requests:            c.Requests,
			Failures:            c.TotalFailures,
			ConsecutiveFailures: c.ConsecutiveFailures,
		}
		if h := histogramOf(ep.m.duration); h != nil {
			es.Calls = h.GetSampleCount()
			es.LatencyP50Ms = quantile(h, 0.5) * 1000
			es.LatencyP99Ms = quantile(h, 0.99) * 1000
		}
		s.Endpoints[ep.name] = es
	}
	return s
}

// readCounter reads a Prometheus counter; 0 if it cannot be read.
func readCounter(c prometheus.Counter) float64 {
	var m dto.Metric
	if c == nil || c.Write(&m) != nil || m.Counter == nil {
		return 0
	}
	return m.Counter.GetValue()
}

// histogramOf reads a Prometheus histogram; nil if o is not one.
func histogramOf(o prometheus.Observer) *dto.Histogram {
	pm, ok := o.(prometheus.Metric)
	if !ok {
		return nil
	}
	var m dto.Metric
	if pm.Write(&m) != nil {
		return nil
	}
	return m.Histogram
}

// quantile estimates the q-quantile of h as Prometheus's
// histogram_quantile does: linearly within the bucket that holds it. A
// quantile beyond the last bucket is reported as that bucket's bound.
func quantile(h *dto.Histogram, q float64) float64 {
	total := float64(h.GetSampleCount())
	if total == 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range h.GetBucket() {
		upper, cum := b.GetUpperBound(), float64(b.GetCumulativeCount())
		if cum >= rank {
			if cum == below {
				return upper
			}
			return lower + (upper-lower)*(rank-below)/(cum-below)
		}
		lower, below = upper, cum
	}
	return lower
}

// PurgeCache drops cached decisions: all of them, or only those of one
// client id or one user name (give at most one). It returns how many the
// cache held; the topic memo's copies of them go too but are not counted
// again. Filtering scans the whole cache (see cache.PurgeClient).
//
// The cache goes before the memo: a memo insert racing the purge then
// either read the cache before the purge, and is refused or cleared by the
// memo purge, or read it after and found nothing to memoize.
func (p *Plugin) PurgeCache(clientID, username string) int {
	var n int
	switch {
	case p.cache == nil:
		return 0
	case clientID != "":
		n = p.cache.PurgeClient(p.keys.Tag(domainClientID, clientID))
		p.memo.purge(func(k *memoKey) bool { return k.clientID == clientID })
	case username != "":
		n = p.cache.PurgeUser(p.keys.Tag(domainUsername, username))
		p.memo.purge(func(k *memoKey) bool { return k.username == username })
	default:
		n = p.cache.Purge()
		p.memo.purge(nil)
	}
	return n
}

// AdminRoutes serves the plugins' admin API, meant to be mounted under
// /plugins on the admin listener:
//
//	GET  /                      every plugin's Status
//	GET  /{alias}               one plugin's Status
//	POST /{alias}/cache/purge   drop its cached decisions; ?client_id= or
//	                            ?username= limits the purge to those
//
// list is called per request, so a config reload is seen at once. These
// are the routes from before the admin REST API, kept for compatibility:
// /api/v1/plugins and its purge routes (internal/admin) serve the same
// data, and the admin listener's guard (token, same-origin, JSON bodies)
// covers both.
//
// all, when not nil, lists every plugin for GET /, built-ins included, each
// with its type and capabilities (and an HTTP plugin's Status); nil lists
// the HTTP plugins alone, as before.
func AdminRoutes(list func() []*Plugin, all func() []Listed) http.Handler {
	r := chi.NewRouter()
	find := func(w http.ResponseWriter, req *http.Request) *Plugin {
		alias := chi.URLParam(req, "alias")
		for _, p := range list() {
			if p.Alias() == alias {
				return p
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no HTTP plugin with alias " + alias + " (GET / lists them)"})
		return nil
	}
	r.Get("/", func(w http.ResponseWriter, _ *http.Request) {
		if all != nil {
			out := all()
			if out == nil {
				out = []Listed{}
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		out := []Status{}
		for _, p := range list() {
			out = append(out, p.Status())
		}
		writeJSON(w, http.StatusOK, out)
	})
	r.Get("/{alias}", func(w http.ResponseWriter, req *http.Request) {
		if p := find(w, req); p != nil {
			writeJSON(w, http.StatusOK, p.Status())
		}
	})
	r.Post("/{alias}/cache/purge", func(w http.ResponseWriter, req *http.Request) {
		p := find(w, req)
		if p == nil {
			return
		}
		q := req.URL.Query()
		client, user := q.Get("client_id"), q.Get("username")
		if client != "" && user != "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "give client_id or username, not both (or neither to purge everything)"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"purged": p.PurgeCache(client, user)})
	})
	return r
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

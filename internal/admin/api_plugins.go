package admin

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/mqttd/mqttd/internal/admin/adminapi"
	"github.com/mqttd/mqttd/internal/webhook"
)

func (a *API) plugins() []PluginInfo {
	if a.Plugins == nil {
		return nil
	}
	return a.Plugins()
}

func pluginStatus(s webhook.Status) *adminapi.PluginStatus {
	out := &adminapi.PluginStatus{
		Alias:          s.Alias,
		URL:            s.URL,
		Ready:          s.Ready,
		Endpoints:      map[string]adminapi.EndpointStatus{},
		CacheEntries:   s.CacheEntries,
		CacheEvictions: int64(s.CacheEvictions),
		CacheHits:      int64(s.CacheHits),
		CacheMisses:    int64(s.CacheMisses),
		QueueDepth:     s.QueueDepth,
		Events: adminapi.EventStatus{
			Sent:    int64(s.Events.Sent),
			Retried: int64(s.Events.Retried),
			Dropped: map[string]int64{},
		},
	}
	for reason, n := range s.Events.Dropped {
		out.Events.Dropped[reason] = int64(n)
	}
	for name, e := range s.Endpoints {
		out.Endpoints[name] = adminapi.EndpointStatus{
			BreakerState:        adminapi.EndpointStatusBreakerState(e.BreakerState),
			Requests:            int(e.Requests),
			Failures:            int(e.Failures),
			ConsecutiveFailures: int(e.ConsecutiveFailures),
			Calls:               int64(e.Calls),
			LatencyP50Ms:        e.LatencyP50Ms,
			LatencyP99Ms:        e.LatencyP99Ms,
		}
	}
	return out
}

// GET /plugins
func (a *API) listPlugins(w http.ResponseWriter, _ *http.Request) {
	out := adminapi.PluginList{Items: []adminapi.Plugin{}}
	for _, p := range a.plugins() {
		item := adminapi.Plugin{Alias: p.Alias, Type: p.Type, Capabilities: []adminapi.PluginCapabilities{}}
		for _, c := range p.Capabilities {
			item.Capabilities = append(item.Capabilities, adminapi.PluginCapabilities(c))
		}
		if p.HTTP != nil {
			item.Status = pluginStatus(p.HTTP.Status())
		}
		out.Items = append(out.Items, item)
	}
	writeJSON(w, http.StatusOK, out)
}

// purgeTarget reads {client_id?, username?}; it answers the request and
// returns false when the body is wrong.
func (a *API) purgeTarget(w http.ResponseWriter, r *http.Request) (client, user string, ok bool) {
	var req adminapi.PurgeRequest
	if !a.readJSON(w, r, &req) {
		return "", "", false
	}
	if req.ClientID != nil {
		client = *req.ClientID
	}
	if req.Username != nil {
		user = *req.Username
	}
	if client != "" && user != "" {
		writeError(w, http.StatusBadRequest, "give client_id or username, not both (or neither to purge everything)")
		return "", "", false
	}
	return client, user, true
}

// POST /plugins/{alias}/cache/purge
func (a *API) purgePlugin(w http.ResponseWriter, r *http.Request) {
	alias := chi.URLParam(r, "alias")
	var found *PluginInfo
	ps := a.plugins()
	for i := range ps {
		if ps[i].Alias == alias {
			found = &ps[i]
		}
	}
	switch {
	case found == nil:
		writeError(w, http.StatusNotFound, "no plugin with alias "+alias+" (GET /api/v1/plugins lists them)")
		return
	case found.HTTP == nil:
		writeError(w, http.StatusNotFound, "plugin "+alias+" is a built-in ("+found.Type+") and caches no decisions; only HTTP plugins have a cache to purge")
		return
	}
	client, user, ok := a.purgeTarget(w, r)
	if !ok {
		return
	}
	n := found.HTTP.PurgeCache(client, user)
	a.purgeOthers(alias, client, user)
	writeJSON(w, http.StatusOK, adminapi.PurgeResult{Purged: n})
}

// POST /cache/purge
func (a *API) purgeAll(w http.ResponseWriter, r *http.Request) {
	client, user, ok := a.purgeTarget(w, r)
	if !ok {
		return
	}
	out := adminapi.PurgeResult{Plugins: map[string]int{}}
	for _, p := range a.plugins() {
		if p.HTTP != nil {
			n := p.HTTP.PurgeCache(client, user)
			out.Plugins[p.Alias] = n
			out.Purged += n
		}
	}
	a.purgeOthers("", client, user)
	writeJSON(w, http.StatusOK, out)
}

func (a *API) purgeOthers(alias, client, user string) {
	if a.PurgeOthers != nil {
		a.PurgeOthers(alias, client, user)
	}
}

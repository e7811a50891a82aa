package admin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mqttd/mqttd/internal/admin/adminapi"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook"
)

// Broker is what the REST API reads and acts on: *mqtt.Broker in the
// mqttd command; in handler tests, a real broker wrapped to show a state
// that is slow to reach for real, such as a list of refused logins.
//
// Each method serves the routes named beside it (under APIPrefix).
type Broker interface {
	Stats() mqtt.Stats                                       // GET /stats
	Clients() []mqtt.ClientView                              // GET /clients
	Client(id string) (mqtt.SessionView, bool)               // GET /clients/{id}
	Subscriptions() []mqtt.SubscriptionView                  // GET /subscriptions
	RetainedMatching(filter string) ([]*mqtt.Message, error) // GET /retained?filter=
	Retained(topic string) (*mqtt.Message, bool)             // GET /retained/{topic}
	DeleteRetained(topic string) bool                        // DELETE /retained/{topic}
	Kick(id string, discard bool) (kicked, found bool)       // POST /clients/{id}/kick
	Publish(p mqtt.PublishRequest) (int, error)              // POST /publish
	RecentRefusals() []mqtt.Refusal                          // GET /refusals
}

// PluginInfo is one configured plugin. HTTP is set for an HTTP plugin.
type PluginInfo struct {
	Alias        string          // the key under plugins in the config
	Type         string          // "http" or the built-in's type
	Capabilities []string        // authenticate, topic_filtering, events
	HTTP         *webhook.Plugin // nil for a built-in; its breaker, cache and queue feed GET /plugins
}

// APIPrefix is where the REST API is mounted.
const APIPrefix = "/api/v1"

// API is the REST API described by api/admin.yaml.
type API struct {
	Broker Broker // what every route reads or acts on; required
	// Plugins lists the configured plugins; it is called per request, so
	// a config reload is seen at once. Nil means none.
	Plugins func() []PluginInfo
	// MaxBody bounds a request body; larger ones get 413. 0 means 1 MiB.
	MaxBody int64
	// PurgeOthers, in a cluster, asks the other nodes to purge the same
	// entries from their plugins' caches (alias "" for every plugin) after
	// this node purged its own; the counts answered are this node's. Nil on
	// a single node.
	PurgeOthers func(alias, clientID, username string)
}

// Mount returns the API as a Mount for NewHandler.
func (a *API) Mount() Mount { return Mount{Pattern: APIPrefix, Handler: a.Handler()} }

// Handler returns the API's routes, relative to APIPrefix.
func (a *API) Handler() http.Handler {
	r := chi.NewRouter()
	r.Get("/clients", a.listClients)
	r.Get("/clients/*", a.getClient)
	r.Post("/clients/*", a.kickClient)
	r.Get("/subscriptions", a.listSubscriptions)
	r.Get("/retained", a.listRetained)
	r.Get("/retained/*", a.getRetained)
	r.Delete("/retained/*", a.deleteRetained)
	r.Post("/publish", a.publish)
	r.Get("/plugins", a.listPlugins)
	r.Post("/plugins/{alias}/cache/purge", a.purgePlugin)
	r.Post("/cache/purge", a.purgeAll)
	r.Get("/refusals", a.listRefusals)
	r.Get("/stats", a.stats)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such admin API route: "+r.Method+" "+r.URL.Path+" (api/admin.yaml lists them)")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+" (api/admin.yaml lists the methods)")
	})
	return r
}

// writeError answers with the API's error object.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, adminapi.Error{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// readJSON decodes the request body into v, refusing unknown fields and
// trailing data. An empty body leaves v as it is. It answers the request
// itself and returns false when the body is not acceptable.
func (a *API) readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	max := a.MaxBody
	if max <= 0 {
		max = 1 << 20
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes", max))
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "cannot read the request body: "+err.Error())
		return false
	case len(bytes.TrimSpace(body)) == 0:
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "the request body is not the JSON api/admin.yaml describes: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "the request body holds more than one JSON value")
		return false
	}
	return true
}

// pathRest returns the still escaped part of r's path after prefix (below
// APIPrefix), unescaped, so that ids and topics may hold '/' as %2F.
func pathRest(r *http.Request, prefix string) (string, bool) {
	p := r.URL.EscapedPath()
	i := strings.Index(p, APIPrefix+prefix)
	if i < 0 {
		return "", false
	}
	s, err := url.PathUnescape(p[i+len(APIPrefix+prefix):])
	return s, err == nil && s != ""
}

// paging is a list request's limit and cursor.
type paging struct {
	limit  int
	cursor string // the sort key of the last item already returned
}

const (
	defaultLimit = 100
	maxLimit     = 1000
)

func parsePaging(w http.ResponseWriter, r *http.Request) (paging, bool) {
	q := r.URL.Query()
	p := paging{limit: defaultLimit}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a whole number from 1 to %d", maxLimit))
			return p, false
		}
		p.limit = n
	}
	if s := q.Get("cursor"); s != "" {
		k, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "cursor is not one this API returned: pass the 'next' of the previous page as it is")
			return p, false
		}
		p.cursor = string(k)
	}
	return p, true
}

// page returns the items after the cursor (items are sorted by key), at
// most limit of them, and the cursor of the next page ("" when this is
// the last).
func page[T any](items []T, key func(T) string, p paging) ([]T, string) {
	start := 0
	if p.cursor != "" {
		start = sort.Search(len(items), func(i int) bool { return key(items[i]) > p.cursor })
	}
	end := min(start+p.limit, len(items))
	out := items[start:end]
	if end < len(items) && len(out) > 0 {
		return out, base64.RawURLEncoding.EncodeToString([]byte(key(out[len(out)-1])))
	}
	return out, ""
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func (a *API) stats(w http.ResponseWriter, _ *http.Request) {
	s := a.Broker.Stats()
	writeJSON(w, http.StatusOK, adminapi.Stats{
		ClientsConnected: s.ClientsConnected,
		MessagesReceived: s.MessagesIn,
		MessagesSent:     s.MessagesOut,
		BytesReceived:    s.BytesIn,
		BytesSent:        s.BytesOut,
		Subscriptions:    s.Subscriptions,
		Retained:         s.Retained,
		UptimeSeconds:    s.UptimeSeconds,
		Time:             time.Now().UTC(),
	})
}

func (a *API) listRefusals(w http.ResponseWriter, _ *http.Request) {
	out := adminapi.RefusalList{Items: []adminapi.Refusal{}}
	for _, f := range a.Broker.RecentRefusals() {
		out.Items = append(out.Items, adminapi.Refusal{
			Time:       f.Time.UTC(),
			ClientID:   f.ClientID,
			Username:   f.Username,
			RemoteAddr: f.RemoteAddr,
			Listener:   f.Listener,
			Protocol:   int(f.Protocol),
			ReasonCode: int(f.ReasonCode),
			Reason:     f.Reason,
			Plugin:     f.Plugin,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

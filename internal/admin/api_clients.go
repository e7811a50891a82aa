package admin

import (
	"net/http"
	"strings"

	"github.com/mqttd/mqttd/internal/admin/adminapi"
	"github.com/mqttd/mqttd/internal/mqtt"
)

func clientSummary(v mqtt.ClientView) adminapi.ClientSummary {
	return adminapi.ClientSummary{
		ClientID:      v.ClientID,
		Username:      v.Username,
		RemoteAddr:    v.RemoteAddr,
		Protocol:      adminapi.Protocol(v.Protocol),
		Listener:      v.Listener,
		Transport:     v.Transport,
		Connected:     v.Connected,
		ConnectedAt:   timePtr(v.ConnectedAt),
		Subscriptions: v.Subs,
		Inflight:      v.Inflight,
		Queued:        v.Queued,
	}
}

// GET /clients?q=&limit=&cursor=&include_offline=
func (a *API) listClients(w http.ResponseWriter, r *http.Request) {
	p, ok := parsePaging(w, r)
	if !ok {
		return
	}
	q := r.URL.Query().Get("q")
	offline := r.URL.Query().Get("include_offline") == "true"
	var match []mqtt.ClientView
	for _, v := range a.Broker.Clients() {
		if (v.Connected || offline) && (q == "" || containsFold(v.ClientID, q) || containsFold(v.Username, q)) {
			match = append(match, v)
		}
	}
	items, next := page(match, func(v mqtt.ClientView) string { return v.ClientID }, p)
	out := adminapi.ClientList{Items: []adminapi.ClientSummary{}, Next: next, Total: len(match)}
	for _, v := range items {
		out.Items = append(out.Items, clientSummary(v))
	}
	writeJSON(w, http.StatusOK, out)
}

// GET /clients/{id}
func (a *API) getClient(w http.ResponseWriter, r *http.Request) {
	id, ok := pathRest(r, "/clients/")
	if !ok {
		writeError(w, http.StatusNotFound, "give a client id: GET /api/v1/clients/{id} (URL-escaped)")
		return
	}
	v, ok := a.Broker.Client(id)
	if !ok {
		writeError(w, http.StatusNotFound, "no client or session with id "+id+" (GET /api/v1/clients?include_offline=true lists them)")
		return
	}
	out := adminapi.ClientDetail{
		ClientID:      v.ClientID,
		Username:      v.Username,
		RemoteAddr:    v.RemoteAddr,
		Protocol:      adminapi.Protocol(v.Protocol),
		Listener:      v.Listener,
		Transport:     v.Transport,
		Connected:     v.Connected,
		ConnectedAt:   timePtr(v.ConnectedAt),
		Clean:         v.Clean,
		Expiry:        int64(v.Expiry),
		Subscriptions: []adminapi.SessionSubscription{},
		Inflight:      v.Inflight,
		Queued:        v.Queued,
	}
	for _, s := range v.Subscriptions {
		out.Subscriptions = append(out.Subscriptions, adminapi.SessionSubscription{
			Filter:            s.Filter,
			QOS:               int(s.QoS),
			NoLocal:           s.NoLocal,
			RetainAsPublished: s.RetainAsPublished,
			SubscriptionID:    int(s.SubscriptionID),
			ShareGroup:        s.ShareGroup,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// POST /clients/{id}/kick {"discard_session": bool}
func (a *API) kickClient(w http.ResponseWriter, r *http.Request) {
	rest, _ := pathRest(r, "/clients/")
	id, isKick := strings.CutSuffix(rest, "/kick")
	if !isKick || id == "" {
		writeError(w, http.StatusNotFound, "to disconnect a client, POST /api/v1/clients/{id}/kick (the id URL-escaped)")
		return
	}
	var req adminapi.KickRequest
	if !a.readJSON(w, r, &req) {
		return
	}
	discard := req.DiscardSession != nil && *req.DiscardSession
	kicked, found := a.Broker.Kick(id, discard)
	if !found {
		writeError(w, http.StatusNotFound, "no client or session with id "+id+" (GET /api/v1/clients?include_offline=true lists them)")
		return
	}
	writeJSON(w, http.StatusOK, adminapi.KickResult{Kicked: kicked, SessionDiscarded: discard})
}

// GET /subscriptions?q=&limit=&cursor=
func (a *API) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	p, ok := parsePaging(w, r)
	if !ok {
		return
	}
	q := r.URL.Query().Get("q")
	var match []mqtt.SubscriptionView
	for _, s := range a.Broker.Subscriptions() {
		if q == "" || containsFold(s.ClientID, q) || containsFold(s.Filter, q) {
			match = append(match, s)
		}
	}
	key := func(s mqtt.SubscriptionView) string { return s.ClientID + "\x00" + s.Filter + "\x00" + s.ShareGroup }
	items, next := page(match, key, p)
	out := adminapi.SubscriptionList{Items: []adminapi.SubscriptionItem{}, Next: next, Total: len(match)}
	for _, s := range items {
		out.Items = append(out.Items, adminapi.SubscriptionItem{ClientID: s.ClientID, Filter: s.Filter, QOS: int(s.QoS), ShareGroup: s.ShareGroup})
	}
	writeJSON(w, http.StatusOK, out)
}

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// The plugin's decisions: POST /authenticate and POST /topic_filtering
// are checked for the fields the plugin counts by, then answered, after
// the configured delay, with one body fixed at start-up.

// decisionBody is the answer to every decision request of one kind.
func decisionBody(result string, ttl, reasonCode int) []byte {
	b := []byte(`{"result":"` + result + `"`)
	if ttl >= 0 {
		b = append(b, `,"cache_ttl":`+strconv.Itoa(ttl)...)
	}
	if reasonCode > 0 && result == "deny" {
		b = append(b, `,"reason":"mqttbench says no","reason_code":`+strconv.Itoa(reasonCode)...)
	}
	return append(b, '}')
}

// sleepCtx sleeps d unless the broker gives up on the call first.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
}

func (s *pluginServer) authenticate(w http.ResponseWriter, r *http.Request) {
	s.authN.Add(1)
	n := s.authInFlight.Add(1)
	defer s.authInFlight.Add(-1)
	for {
		m := s.authMax.Load()
		if n <= m || s.authMax.CompareAndSwap(m, n) {
			break
		}
	}
	buf := s.readBody(r)
	if buf == nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var req struct {
		ClientID *string `json:"client_id"`
		Username *string `json:"username"`
		Password string  `json:"password"`
		PassB64  string  `json:"password_base64"`
		Protocol int     `json:"protocol_version"`
	}
	err := json.Unmarshal(buf.Bytes(), &req)
	s.bufs.Put(buf)
	if err != nil || req.ClientID == nil || req.Username == nil || req.Protocol == 0 {
		s.bad("/authenticate: not an authenticate request (err %v)", err)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	key := strconv.Quote(*req.ClientID) + strconv.Quote(*req.Username) + strconv.Quote(req.Password+"\x00"+req.PassB64)
	s.mu.Lock()
	s.authKeys[key] = struct{}{}
	s.mu.Unlock()
	sleepCtx(r.Context(), s.cfg.authDelay)
	writeJSONBody(w, s.authBody)
}

func (s *pluginServer) topicFiltering(w http.ResponseWriter, r *http.Request) {
	s.topicN.Add(1)
	buf := s.readBody(r)
	if buf == nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var req struct {
		ClientID *string `json:"client_id"`
		Topic    string  `json:"topic"`
		Action   string  `json:"action"`
		QoS      *int    `json:"qos"`
	}
	err := json.Unmarshal(buf.Bytes(), &req)
	s.bufs.Put(buf)
	if err != nil || req.ClientID == nil || req.Topic == "" || req.QoS == nil {
		s.bad("/topic_filtering: not a topic_filtering request (err %v)", err)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	switch req.Action {
	case "subscribe":
		s.topicSub.Add(1)
	case "publish":
		s.topicPub.Add(1)
	case "receive":
		s.topicRcv.Add(1)
	default:
		s.bad("/topic_filtering: action %q", req.Action)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	sleepCtx(r.Context(), s.cfg.topicDelay)
	writeJSONBody(w, s.topicBody)
}

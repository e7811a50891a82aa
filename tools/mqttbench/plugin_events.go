package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"
)

// isMessageEvent reports the event types that carry a message.
func isMessageEvent(t string) bool {
	return t == "broker_message_received" || t == "broker_message_broadcast" || t == "broker_retained_message"
}

func (s *pluginServer) postEvents(w http.ResponseWriter, r *http.Request) {
	n := s.posts.Add(1)
	buf := s.readBody(r)
	if buf == nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	h := s.heads.Get().(*eventHeads)
	ok, fast := true, false
	if !s.sampled(n) {
		h.events, fast = scanFast(buf.Bytes(), h.events[:0])
	}
	if fast {
		s.count(buf.Len(), h.events)
	} else {
		ok = s.checkBatch(buf.Bytes(), h)
	}
	clear(h.events) // they point into buf, which goes back to its pool
	s.heads.Put(h)
	s.bufs.Put(buf)
	if !ok {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// sampled reports whether batch n (from 1) is checked in full. The sample
// is random, not every k-th batch: the broker sends from several lanes
// (one per client group) in turn, and a fixed stride could keep landing on
// the same lane.
func (s *pluginServer) sampled(n uint64) bool {
	k := s.cfg.validateEvery
	return n <= uint64(max(s.cfg.validateFirst, 0)) || k <= 1 || rand.N(k) == 0
}

// checkBatch checks body in full, counts it, and reports whether it was a
// batch at all (it is then a bad request, counted).
func (s *pluginServer) checkBatch(body []byte, h *eventHeads) bool {
	s.validated.Add(1)
	b := s.batches.Get().(*eventBatch)
	defer s.putBatch(b)
	var err error
	b.Events, err = scanBatch(body, b.Events[:0])
	if err != nil || len(b.Events) == 0 {
		s.bad("/events: not a batch of events (%d bytes, err %v)", len(body), err)
		return false
	}
	var bad uint64
	for i := range b.Events {
		e := &b.Events[i]
		why := ""
		switch {
		case e.ID == "" || e.Seq == 0 || e.Type == "" || e.Broker == "":
			why = "id, seq, type or broker missing"
		case !validTime(e.Time):
			why = fmt.Sprintf("time %q is not RFC 3339", e.Time)
		case isMessageEvent(e.Type) && (e.Message == nil || e.Message.Topic == ""):
			why = "message or its topic missing"
		case e.Type == "broker_message_received" && e.ClientID == nil:
			why = "client_id missing"
		case isMessageEvent(e.Type) && !validBase64(e.Message.Payload):
			why = "payload is not base64"
		}
		if why != "" {
			bad++
			s.note("/events: event %q (seq %d, %s): %s", e.ID, e.Seq, e.Type, why)
		}
	}
	s.badEvents.Add(bad)
	s.validatedEvents.Add(uint64(len(b.Events)))
	h.arena = h.arena[:0]
	for i := range b.Events {
		h.arena = append(append(h.arena, b.Events[i].ID...), b.Events[i].Type...)
	}
	h.events = h.events[:0]
	at := 0
	for i := range b.Events {
		e := &b.Events[i]
		id, typ := at, at+len(e.ID)
		at = typ + len(e.Type)
		h.events = append(h.events, fastEvent{id: h.arena[id:typ:typ], typ: h.arena[typ:at:at]})
	}
	s.count(len(body), h.events)
	return true
}

// count adds a batch of size bytes and its events to the counters. An
// event without an id is not looked up: the full check has counted it
// bad, and the fast path never yields one.
func (s *pluginServer) count(size int, events []fastEvent) {
	s.mu.Lock()
	// Types come in runs (a batch is often one type), so the map is
	// touched once per run rather than once per event.
	var run []byte
	var runN uint64
	for _, e := range events {
		id, typ := e.id, e.typ
		if len(id) > 0 && !s.ids.add(id) {
			s.dups++
		}
		if runN > 0 && string(typ) == string(run) {
			runN++
			continue
		}
		if runN > 0 {
			s.addType(run, runN)
		}
		run, runN = typ, 1
	}
	if runN > 0 {
		s.addType(run, runN)
	}
	s.maxBatch = max(s.maxBatch, uint64(len(events)))
	s.mu.Unlock()
	s.events.Add(uint64(len(events)))
	s.eventBytes.Add(uint64(size))
}

// addType counts n events of type t; s.mu must be held.
func (s *pluginServer) addType(t []byte, n uint64) {
	c := s.byType[string(t)]
	if c == nil {
		c = new(uint64)
		s.byType[string(t)] = c
	}
	*c += n
}

// putBatch returns b to the pool with its events zeroed: json.Unmarshal
// decodes into the elements a slice already has, so a field the next batch
// leaves out would otherwise keep this batch's value.
func (s *pluginServer) putBatch(b *eventBatch) {
	clear(b.Events[:cap(b.Events)])
	b.Events = b.Events[:0]
	s.batches.Put(b)
}

func validTime(v string) bool {
	_, err := time.Parse(time.RFC3339Nano, v)
	return err == nil
}

// validBase64 reports whether v is standard, padded base64.
func validBase64(v string) bool {
	if len(v)%4 != 0 {
		return false
	}
	pad := 0
	for i := len(v) - 1; i >= 0 && i >= len(v)-2 && v[i] == '='; i-- {
		pad++
	}
	for i := 0; i < len(v)-pad; i++ {
		c := v[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

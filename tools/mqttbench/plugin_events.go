package main

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
)

// POST /events gets one of two readings (why two: plugin.go, at its top):
//
//   - on most batches, scanFast (eventcount.go): one allocation-free pass
//     that takes each event's id and type, which is all counting needs;
//   - on the first -validate-first batches, one in -validate-every at
//     random after that, and any batch scanFast declines: the full check,
//     the whole request (headers and body) validated against
//     api/openapi.yaml by internal/webhook/contract.
//
// A sampled batch that scanFast reads is counted and answered at once, and
// checked afterwards by the checker goroutine (checker.go): the full check
// takes 0.1-0.4 s for 1,000 events on two cores, and a plugin that held its
// answer that long would measure its own slowness as the broker's (the
// broker's lane waits for the answer, and its queue fills meanwhile). What
// the late check finds still counts as a bad request or bad events and
// fails the run; only the broker is not told. A batch scanFast declines is
// checked before the answer, as it cannot be counted otherwise, and is
// answered 400 when it is not a batch of events at all.

func (s *pluginServer) postEvents(w http.ResponseWriter, r *http.Request) {
	n := s.posts.Add(1)
	buf := s.readBody(r)
	if buf == nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	h := s.heads.Get().(*eventHeads)
	var fast bool
	h.events, fast = scanFast(buf.Bytes(), h.events[:0])
	ok := true
	if fast {
		s.count(buf.Len(), h.events)
	}
	clear(h.events) // they point into buf
	switch {
	case fast && s.sampled(n):
		s.checkLater(r, buf) // buf goes back to its pool once checked
		buf = nil
	case !fast:
		s.waitChecks() // so that problems are noted in the order batches came
		ok = s.checkBatch(r, buf.Bytes(), h, true)
		clear(h.events)
	}
	s.heads.Put(h)
	if buf != nil {
		s.bufs.Put(buf)
	}
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

// checkBatch validates the request r with body against the contract,
// counts its events when count is set (a batch checked after scanFast
// counted it is not counted again), and reports whether it was a batch of
// events at all. A batch whose only faults are inside some events is
// counted, those events as bad; anything else (not JSON, no events, a
// missing header) is a bad request, not counted.
func (s *pluginServer) checkBatch(r *http.Request, body []byte, h *eventHeads, count bool) bool {
	s.validated.Add(1)
	err := s.contract.Request(r, body)
	var bad []int
	if err != nil {
		var whole bool
		if bad, whole = badEvents(err); whole {
			s.bad("/events: %v", err)
			return false
		}
	}
	var batch eventBatchHeads
	if jerr := json.Unmarshal(body, &batch); jerr != nil {
		// An id or type that is not a string is left empty, and the
		// contract check has blamed its event; nothing else gets here.
		var te *json.UnmarshalTypeError
		if !errors.As(jerr, &te) || len(bad) == 0 {
			s.bad("/events: %v", jerr)
			return false
		}
	}
	if len(bad) > 0 && bad[0] < len(batch.Events) {
		e := batch.Events[bad[0]]
		s.note("/events: %d of %d events break the contract, the first (id %q, type %q): %v",
			len(bad), len(batch.Events), e.ID, e.Type, err)
	}
	s.badEvents.Add(uint64(len(bad)))
	s.validatedEvents.Add(uint64(len(batch.Events)))
	if count {
		h.fromHeads(batch.Events)
		s.count(len(body), h.events)
	}
	return true
}

// eventBatchHeads is what counting needs of a batch read by encoding/json.
type eventBatchHeads struct {
	Events []eventIDType `json:"events"`
}

type eventIDType struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// fromHeads copies the ids and types into h's arena, so that count gets
// the same []byte form from both readings without a conversion per event.
func (h *eventHeads) fromHeads(events []eventIDType) {
	h.arena = h.arena[:0]
	for _, e := range events {
		h.arena = append(append(h.arena, e.ID...), e.Type...)
	}
	h.events = h.events[:0]
	at := 0
	for _, e := range events {
		id, typ := at, at+len(e.ID)
		at = typ + len(e.Type)
		h.events = append(h.events, fastEvent{id: h.arena[id:typ:typ], typ: h.arena[typ:at:at]})
	}
}

// badEvents reads a contract failure of an events request: the indexes of
// the events it blames, each once, or whole = true when something other
// than individual events is wrong (the body is not JSON or has no events,
// a header is missing). It relies on the validator reporting each schema
// failure with its JSON pointer (/events/N/...).
func badEvents(err error) (bad []int, whole bool) {
	var reqErrs openapi3.MultiError
	if !errors.As(err, &reqErrs) {
		reqErrs = openapi3.MultiError{err}
	}
	seen := map[int]bool{}
	for _, e := range reqErrs {
		var re *openapi3filter.RequestError
		if !errors.As(e, &re) || re.RequestBody == nil {
			return nil, true
		}
		var schemaErrs openapi3.MultiError
		if !errors.As(re.Err, &schemaErrs) {
			schemaErrs = openapi3.MultiError{re.Err}
		}
		for _, se := range schemaErrs {
			i, ok := eventIndex(se)
			if !ok {
				return nil, true
			}
			if !seen[i] {
				seen[i] = true
				bad = append(bad, i)
			}
		}
	}
	return bad, len(bad) == 0
}

// eventIndex is the index of the event a schema error points into.
func eventIndex(err error) (int, bool) {
	var se *openapi3.SchemaError
	if !errors.As(err, &se) {
		return 0, false
	}
	p := se.JSONPointer()
	if len(p) < 2 || p[0] != "events" {
		return 0, false
	}
	i, err := strconv.Atoi(p[1])
	return i, err == nil && i >= 0
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

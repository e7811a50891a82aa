package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// -mode plugin is a loopback plugin service for benchmarks: it speaks the
// broker's plugin contract (api/openapi.yaml, DESIGN §4) with answers
// fixed by flags, and counts what it receives so a script can read the
// counters from GET /stats.
//
//	GET  /manifest         name, version, authenticate and topic_filtering true, -manifest-events
//	POST /authenticate     after -auth-delay: -auth-result with -auth-cache-ttl
//	POST /topic_filtering  after -topic-delay: -topic-result with -topic-cache-ttl
//	POST /events           counts every event, by type, and duplicate ids; on a sample of batches
//	                       also checks each is well-formed (valid JSON; each event's id, seq, type,
//	                       time and broker; a message event's client and base64 payload); 204
//	GET  /stats            the counters below, as JSON
//
// It is a plain net/http server: decisions are answered from one
// precomputed body; an events batch is read into a pooled buffer. Its own
// CPU time is in /stats, so a run can tell whether it was the bottleneck.
//
// The plugin runs on the same cores as the broker whose events cost it
// measures, so what it spends per event is taken from the broker and
// lowers the ratio being measured. Every batch therefore gets only what a
// count needs: one pass that finds each event's id and type where the
// broker's encoder puts them (scanFast), with the ids kept as bits. The
// full check, which costs several times as much, runs on the first
// validateFirst batches and then on one batch in validateEvery, picked at
// random, and on any batch the fast pass cannot read. A broker bug that
// loses, repeats or mislabels events, or breaks the head of one, is caught
// on every batch; one that damages a field further inside events is caught
// once a damaged batch is sampled: at 1,000 batches/s, one in 16 is some
// 60 batches checked in full every second. The fast pass costs about a
// twentieth of the full check (BenchmarkPostEvents).

// pluginConfig are the answers the plugin gives.
type pluginConfig struct {
	authDelay, topicDelay   time.Duration
	authTTL, topicTTL       int    // cache_ttl in seconds; negative: left out of the answer
	authResult, topicResult string // allow, deny or ignore
	authReasonCode          int    // deny: reason_code in the answer; 0 = none
	manifestEvents          []string
	noManifest              bool // GET /manifest answers 404 (the broker's config then decides)

	// The first validateFirst batches are checked in full, then one in
	// validateEvery at random; validateEvery 0 or 1 checks every batch.
	validateFirst, validateEvery int
}

// pluginStats are the plugin's counters since it started. Its JSON form is
// what GET /stats serves and what mqttbench reads back, so fields are only
// ever added.
type pluginStats struct {
	UptimeS float64 `json:"uptime_s"`
	CPUS    float64 `json:"cpu_s"` // this process's CPU time, user + system

	Manifest       uint64 `json:"manifest"`
	Authenticate   uint64 `json:"authenticate"`
	AuthDistinct   uint64 `json:"authenticate_distinct"` // distinct (client_id, username, password)
	AuthMaxConcur  uint64 `json:"authenticate_max_concurrent"`
	TopicFiltering uint64 `json:"topic_filtering"`
	TopicSubscribe uint64 `json:"topic_subscribe"`
	TopicPublish   uint64 `json:"topic_publish"`
	TopicReceive   uint64 `json:"topic_receive"`

	EventPosts      uint64            `json:"event_posts"` // POST /events, i.e. batches
	Events          uint64            `json:"events"`
	EventsByType    map[string]uint64 `json:"events_by_type,omitempty"`
	EventBytes      uint64            `json:"event_bytes"`
	MaxBatch        uint64            `json:"max_batch"`
	Duplicates      uint64            `json:"duplicate_events"` // an event id seen before
	BadEvents       uint64            `json:"bad_events"`       // events missing a required field (checked batches only)
	BadRequests     uint64            `json:"bad_requests"`     // bodies that are not the contract's JSON
	ValidatedPosts  uint64            `json:"validated_posts"`  // batches checked in full
	ValidatedEvents uint64            `json:"validated_events"` // the events in them

	Errors []string `json:"errors,omitempty"` // the first few problems, for humans
}

// minus is s - o for every counter (o taken earlier from the same plugin).
// UptimeS and CPUS become the elapsed wall and CPU time; maxima and
// errors are s's.
func (s pluginStats) minus(o pluginStats) pluginStats {
	d := s
	d.UptimeS -= o.UptimeS
	d.CPUS -= o.CPUS
	d.Manifest -= o.Manifest
	d.Authenticate -= o.Authenticate
	d.AuthDistinct -= o.AuthDistinct
	d.TopicFiltering -= o.TopicFiltering
	d.TopicSubscribe -= o.TopicSubscribe
	d.TopicPublish -= o.TopicPublish
	d.TopicReceive -= o.TopicReceive
	d.EventPosts -= o.EventPosts
	d.Events -= o.Events
	d.EventBytes -= o.EventBytes
	d.Duplicates -= o.Duplicates
	d.BadEvents -= o.BadEvents
	d.BadRequests -= o.BadRequests
	d.ValidatedPosts -= o.ValidatedPosts
	d.ValidatedEvents -= o.ValidatedEvents
	d.EventsByType = nil
	for k, v := range s.EventsByType {
		if v -= o.EventsByType[k]; v > 0 {
			if d.EventsByType == nil {
				d.EventsByType = map[string]uint64{}
			}
			d.EventsByType[k] = v
		}
	}
	return d
}

// benchEvent is the part of an event the plugin checks.
type benchEvent struct {
	ID       string        `json:"id"`
	Seq      uint64        `json:"seq"`
	Type     string        `json:"type"`
	Time     string        `json:"time"`
	Broker   string        `json:"broker"`
	ClientID *string       `json:"client_id"`
	Message  *eventMessage `json:"message"`
}

type eventMessage struct {
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
}

type eventBatch struct {
	Events []benchEvent `json:"events"`
}

// pluginServer is the http.Handler of -mode plugin.
type pluginServer struct {
	cfg       pluginConfig
	start     time.Time
	manifest  []byte
	authBody  []byte
	topicBody []byte

	manifestN, authN, topicN     atomic.Uint64
	topicSub, topicPub, topicRcv atomic.Uint64
	authInFlight, authMax        atomic.Int64
	posts, events, eventBytes    atomic.Uint64
	badEvents, badRequests       atomic.Uint64
	validated, validatedEvents   atomic.Uint64

	mu       sync.Mutex         // guards the fields below
	byType   map[string]*uint64 // pointers, so that a count from []byte keys allocates no string
	ids      idSet
	dups     uint64
	maxBatch uint64
	authKeys map[string]struct{}
	errs     []string

	bufs    sync.Pool // *bytes.Buffer for request bodies
	batches sync.Pool // *eventBatch
	heads   sync.Pool // *eventHeads
}

// eventHeads is what count needs of a batch's events. arena holds copies
// of the ids and types of a fully checked batch, so that both paths hand
// count the same bytes without a conversion per event.
type eventHeads struct {
	events []fastEvent
	arena  []byte
}

func newPluginServer(cfg pluginConfig) (*pluginServer, error) {
	for _, r := range []string{cfg.authResult, cfg.topicResult} {
		if r != "allow" && r != "deny" && r != "ignore" {
			return nil, fmt.Errorf("result %q: want allow, deny or ignore", r)
		}
	}
	events := cfg.manifestEvents
	if events == nil {
		events = []string{}
	}
	manifest, err := json.Marshal(map[string]any{
		"name": "mqttbench", "version": "1", "authenticate": true, "topic_filtering": true, "events": events,
	})
	if err != nil {
		return nil, err
	}
	s := &pluginServer{
		cfg: cfg, start: time.Now(), manifest: manifest,
		authBody:  decisionBody(cfg.authResult, cfg.authTTL, cfg.authReasonCode),
		topicBody: decisionBody(cfg.topicResult, cfg.topicTTL, 0),
		byType:    map[string]*uint64{},
		authKeys:  map[string]struct{}{},
	}
	s.bufs.New = func() any { return new(bytes.Buffer) }
	s.batches.New = func() any { return new(eventBatch) }
	s.heads.New = func() any { return new(eventHeads) }
	return s, nil
}

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

func (s *pluginServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/manifest" && r.Method == http.MethodGet:
		s.manifestN.Add(1)
		if s.cfg.noManifest {
			http.NotFound(w, r)
			return
		}
		writeJSONBody(w, s.manifest)
	case r.URL.Path == "/authenticate" && r.Method == http.MethodPost:
		s.authenticate(w, r)
	case r.URL.Path == "/topic_filtering" && r.Method == http.MethodPost:
		s.topicFiltering(w, r)
	case r.URL.Path == "/events" && r.Method == http.MethodPost:
		s.postEvents(w, r)
	case r.URL.Path == "/stats" && r.Method == http.MethodGet:
		b, _ := json.Marshal(s.stats())
		writeJSONBody(w, b)
	default:
		s.bad("%s %s: not part of the contract", r.Method, r.URL.Path)
		http.NotFound(w, r)
	}
}

func writeJSONBody(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.Write(b)
}

// bad counts a malformed request and keeps the first few reasons.
func (s *pluginServer) bad(format string, a ...any) {
	s.badRequests.Add(1)
	s.note(format, a...)
}

func (s *pluginServer) note(format string, a ...any) {
	s.mu.Lock()
	if len(s.errs) < 10 {
		s.errs = append(s.errs, fmt.Sprintf(format, a...))
	}
	s.mu.Unlock()
}

// readBody reads a JSON request body into a pooled buffer; nil when the
// request is not JSON (counted).
func (s *pluginServer) readBody(r *http.Request) *bytes.Buffer {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		s.bad("%s: Content-Type %q, want application/json", r.URL.Path, ct)
		return nil
	}
	buf := s.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	// A buffer new to the pool (the pool is emptied by every other GC)
	// would otherwise grow by doubling, copying a batch several times over;
	// MinRead more is the room ReadFrom wants for the read that sees EOF.
	if n := r.ContentLength; n > 0 && n <= 64<<20 {
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(r.Body); err != nil {
		s.bufs.Put(buf)
		s.bad("%s: reading the body: %v", r.URL.Path, err)
		return nil
	}
	return buf
}

// wait sleeps d unless the broker gives up on the call first.
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

func (s *pluginServer) stats() pluginStats {
	st := pluginStats{
		UptimeS:         time.Since(s.start).Seconds(),
		Manifest:        s.manifestN.Load(),
		Authenticate:    s.authN.Load(),
		AuthMaxConcur:   uint64(s.authMax.Load()),
		TopicFiltering:  s.topicN.Load(),
		TopicSubscribe:  s.topicSub.Load(),
		TopicPublish:    s.topicPub.Load(),
		TopicReceive:    s.topicRcv.Load(),
		EventPosts:      s.posts.Load(),
		Events:          s.events.Load(),
		EventBytes:      s.eventBytes.Load(),
		BadEvents:       s.badEvents.Load(),
		BadRequests:     s.badRequests.Load(),
		ValidatedPosts:  s.validated.Load(),
		ValidatedEvents: s.validatedEvents.Load(),
	}
	if cpu, err := procCPU(0); err == nil {
		st.CPUS = cpu.Seconds()
	}
	s.mu.Lock()
	st.AuthDistinct = uint64(len(s.authKeys))
	st.Duplicates = s.dups
	st.MaxBatch = s.maxBatch
	if len(s.byType) > 0 {
		st.EventsByType = make(map[string]uint64, len(s.byType))
		for k, v := range s.byType {
			st.EventsByType[k] = *v
		}
	}
	st.Errors = slices.Clone(s.errs)
	s.mu.Unlock()
	return st
}

// runPlugin serves until SIGINT or SIGTERM (or stop is closed, in tests),
// then prints the final counters: JSON with asJSON, else text.
func runPlugin(listen string, cfg pluginConfig, asJSON bool, stdout, stderr io.Writer, stop <-chan struct{}) int {
	s, err := newPluginServer(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "mqttbench: %v\n", err)
		return 2
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintf(stderr, "mqttbench: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "mqttbench: plugin listening on http://%s\n", l.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case <-sig:
	case <-stop:
	case err := <-done:
		fmt.Fprintf(stderr, "mqttbench: plugin server: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(stderr, "mqttbench: plugin shutdown: %v\n", err)
	}
	st := s.stats()
	if asJSON {
		writeJSONLine(stdout, st)
	} else {
		st.writeText(stdout)
	}
	if st.BadRequests > 0 || st.BadEvents > 0 || st.Duplicates > 0 {
		return 1
	}
	return 0
}

func (st *pluginStats) writeText(w io.Writer) {
	fmt.Fprintf(w, "plugin     up %.1fs, %.2fs CPU\n", st.UptimeS, st.CPUS)
	fmt.Fprintf(w, "calls      manifest %d, authenticate %d (%d distinct, at most %d at once), topic_filtering %d (subscribe %d, publish %d, receive %d)\n",
		st.Manifest, st.Authenticate, st.AuthDistinct, st.AuthMaxConcur, st.TopicFiltering, st.TopicSubscribe, st.TopicPublish, st.TopicReceive)
	fmt.Fprintf(w, "events     %d in %d batches (largest %d), %d bytes; by type %v\n", st.Events, st.EventPosts, st.MaxBatch, st.EventBytes, st.EventsByType)
	fmt.Fprintf(w, "checked    %d batches (%d events) in full, the rest counted only\n", st.ValidatedPosts, st.ValidatedEvents)
	fmt.Fprintf(w, "problems   %d bad requests, %d bad events, %d duplicate events\n", st.BadRequests, st.BadEvents, st.Duplicates)
	for _, e := range st.Errors {
		fmt.Fprintf(w, "  - %s\n", e)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mqttd/mqttd/internal/webhook/contract"
)

// `mqttbench plugin` is a loopback plugin service for benchmarks: it speaks
// the broker's plugin contract (api/openapi.yaml) with answers fixed by
// flags, and counts what it receives so a script can read the counters
// from GET /stats.
//
//	GET  /manifest         name, version, authenticate and topic_filtering true, -manifest-events
//	POST /authenticate     after -auth-delay: -auth-result with -auth-cache-ttl
//	POST /topic_filtering  after -topic-delay: -topic-result with -topic-cache-ttl
//	POST /events           counts every event, by type, and duplicate ids; 204; a sample of batches
//	                       is also checked against api/openapi.yaml, after the answer
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
// full check (internal/webhook/contract: every header, field, type, format
// and enum the spec names, and no field it does not), which costs some
// 200 times as much, runs on the first validateFirst batches, then on
// one batch in validateEvery, picked at random (after answering, so that
// the broker does not wait for it), and on any batch the fast pass cannot
// read (before answering). A broker bug that loses, repeats or mislabels events,
// or breaks the head of one, is caught on every batch; one that damages a
// field further inside events is caught once a damaged batch is sampled.
// BenchmarkPostEvents measures both readings and the sampled mix.

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

// pluginServer is the http.Handler of `mqttbench plugin`.
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

	contract *contract.Validator // the full check of event batches
	bufs     sync.Pool           // *bytes.Buffer for request bodies
	heads    sync.Pool           // *eventHeads
	checks   checker             // the full checks of sampled batches, after their answer
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
	v, err := contract.New()
	if err != nil {
		return nil, err
	}
	s := &pluginServer{
		cfg: cfg, start: time.Now(), manifest: manifest, contract: v,
		authBody:  decisionBody(cfg.authResult, cfg.authTTL, cfg.authReasonCode),
		topicBody: decisionBody(cfg.topicResult, cfg.topicTTL, 0),
		byType:    map[string]*uint64{},
		authKeys:  map[string]struct{}{},
	}
	s.checks.init()
	s.bufs.New = func() any { return new(bytes.Buffer) }
	s.heads.New = func() any { return new(eventHeads) }
	return s, nil
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
	s.closeChecks() // what was answered is checked before the verdict
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

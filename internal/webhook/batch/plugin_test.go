package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// failAfter bounds waits for something that should happen promptly; it is
// a failure bound, never a measurement.
const failAfter = 10 * time.Second

// wireEvent is the part of an event the test encoder writes and the test
// plugin reads back.
type wireEvent struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Seq      uint64 `json:"seq"`
	ClientID string `json:"client_id"`
	Topic    string `json:"topic"`
}

// encode is the tests' Encoder: a few fields, written by hand like the real
// one. An event whose topic is "bad" fails after writing half an object, so
// the tests see that the pipeline discards it.
func encode(dst []byte, e *hooks.Event) ([]byte, error) {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendQuote(dst, e.ID)
	dst = append(dst, `,"type":`...)
	dst = strconv.AppendQuote(dst, e.Type.String())
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, e.Seq, 10)
	if e.Topic == "bad" {
		return dst, errors.New("cannot encode")
	}
	if e.Client != nil {
		dst = append(dst, `,"client_id":`...)
		dst = strconv.AppendQuote(dst, e.Client.ClientID)
	}
	if e.Topic != "" {
		dst = append(dst, `,"topic":`...)
		dst = strconv.AppendQuote(dst, e.Topic)
	}
	return append(dst, '}'), nil
}

func ev(client string, seq int) *hooks.Event {
	return &hooks.Event{
		ID:     fmt.Sprintf("%s-%d", client, seq),
		Seq:    uint64(seq),
		Type:   mqtt.EventMessageReceived,
		Client: &mqtt.ClientInfo{ClientID: client},
	}
}

// plugin is an HTTP plugin's POST /events on loopback that records what it
// is sent. answer, when set, picks the status of request number req
// (1-based), may set headers, and may block; it must return when r's
// context ends.
type plugin struct {
	t      *testing.T
	srv    *httptest.Server
	client *http.Client
	answer func(w http.ResponseWriter, r *http.Request, req int, events []wireEvent) int

	mu       sync.Mutex
	requests int
	accepted [][]wireEvent // batches answered 2xx, in the order answered
	sizes    []int         // body size of every request
	changed  chan struct{}
}

// newPlugin starts the plugin; clientTimeout (0: none) is the sender's
// HTTP timeout.
func newPlugin(t *testing.T, clientTimeout time.Duration, answer func(w http.ResponseWriter, r *http.Request, req int, events []wireEvent) int) *plugin {
	pl := &plugin{t: t, answer: answer, changed: make(chan struct{}, 1)}
	pl.srv = httptest.NewServer(pl)
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	pl.client = &http.Client{Transport: tr, Timeout: clientTimeout}
	t.Cleanup(func() {
		// Close waits for every handler, and a handler that waits for
		// its client to go away waits for ever if the test failed before
		// closing its pipeline: cutting the connections ends both, so a
		// failing test fails instead of hanging (goleak still reports a
		// pipeline left running).
		pl.srv.CloseClientConnections()
		pl.srv.Close()
		tr.CloseIdleConnections()
	})
	return pl
}

func (pl *plugin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var batch struct {
		Events []wireEvent `json:"events"`
	}
	if err == nil {
		err = json.Unmarshal(body, &batch)
	}
	if err != nil {
		pl.t.Errorf("plugin got a body that is not a batch: %v: %q", err, body)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	pl.mu.Lock()
	pl.requests++
	req := pl.requests
	pl.sizes = append(pl.sizes, len(body))
	pl.mu.Unlock()
	pl.signal()

	status := http.StatusOK
	if pl.answer != nil {
		status = pl.answer(w, r, req, batch.Events)
	}
	if status/100 == 2 {
		pl.mu.Lock()
		pl.accepted = append(pl.accepted, batch.Events)
		pl.mu.Unlock()
		pl.signal()
	}
	w.WriteHeader(status)
}

func (pl *plugin) signal() {
	select {
	case pl.changed <- struct{}{}:
	default:
	}
}

// send is the tests' Sender: a plain POST with the pipeline's verdict on
// the outcome.
func (pl *plugin) send(ctx context.Context, body []byte, n int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, pl.srv.URL+"/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := pl.client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return Classify(resp, err)
}

// waitFor waits until cond, run under the plugin's lock, holds.
func (pl *plugin) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(failAfter)
	for {
		pl.mu.Lock()
		ok := cond()
		pl.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-pl.changed:
		case <-deadline:
			t.Fatalf("plugin: still waiting for %s", what)
		}
	}
}

func (pl *plugin) batchSizes() []int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	s := make([]int, len(pl.accepted))
	for i, b := range pl.accepted {
		s[i] = len(b)
	}
	return s
}

// seqs lists the seqs of the accepted events of client, in arrival order.
func (pl *plugin) seqs(client string) []uint64 {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.seqsLocked(client)
}

func (pl *plugin) seqsLocked(client string) []uint64 {
	var s []uint64
	for _, b := range pl.accepted {
		for _, e := range b {
			if e.ClientID == client {
				s = append(s, e.Seq)
			}
		}
	}
	return s
}

func (pl *plugin) requestCount() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.requests
}

// pipe starts a pipeline delivering to pl, closed at cleanup if the test
// did not close it.
func pipe(t *testing.T, opts Options, pl *plugin) *Pipeline {
	p := New(opts, encode, pl.send)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), failAfter)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func closeWithin(t *testing.T, p *Pipeline) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// gate holds requests until opened; it opens itself at cleanup so no
// handler outlives the test.
type gate chan struct{}

func newGate(t *testing.T) gate {
	g := make(gate)
	t.Cleanup(g.open)
	return g
}

func (g gate) open() {
	select {
	case <-g:
	default:
		close(g)
	}
}

func (g gate) wait(r *http.Request) {
	select {
	case <-g:
	case <-r.Context().Done():
	}
}

func wantInts[T comparable](t *testing.T, what string, got []T, want ...T) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
}

func upTo(n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = uint64(i)
	}
	return s
}

package contract

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
)

// Recorder is an http.Handler that validates every request it sees before
// handing it, body intact, to the handler it wraps, and keeps the failures.
// Put one in front of a test plugin and assert Failures is empty (and Seen
// is not zero) at the end of the test.
type Recorder struct {
	v    *Validator
	next http.Handler

	mu       sync.Mutex
	seen     int
	failures []error
}

// Wrap returns a Recorder validating requests with v and serving them with
// next.
func Wrap(v *Validator, next http.Handler) *Recorder {
	return &Recorder{v: v, next: next}
}

// ServeHTTP validates r, records any failure, and serves r with the wrapped
// handler whether or not it was valid: the contract is checked, never
// enforced, so the test goes on as the broker would see it.
func (rec *Recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		err = fmt.Errorf("%s %s: reading the body: %w", r.Method, r.URL.Path, err)
	} else {
		err = rec.v.Request(r, body)
	}
	rec.mu.Lock()
	rec.seen++
	if err != nil {
		rec.failures = append(rec.failures, err)
	}
	rec.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec.next.ServeHTTP(w, r)
}

// Seen is the number of requests served so far.
func (rec *Recorder) Seen() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.seen
}

// Failures returns a copy of the failures recorded so far, in arrival
// order.
func (rec *Recorder) Failures() []error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]error(nil), rec.failures...)
}

// Check fails t for every recorded failure. Call it at the end of a test
// (or in t.Cleanup), after the broker has stopped sending.
func (rec *Recorder) Check(t testing.TB) {
	t.Helper()
	for _, err := range rec.Failures() {
		t.Errorf("contract: %v", err)
	}
}

package batch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRetryAfterValues(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-3", 0},
		{"7", 7 * time.Second},
		{"99999999999999", 24 * time.Hour}, // would overflow a Duration unclamped
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"soon", 0},
	} {
		if got := retryAfter(tc.v, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

func TestBackoffIsJitteredExponentialAndCapped(t *testing.T) {
	o := Options{Backoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second}.withDefaults()
	for attempt := range 70 { // past the shift that would overflow
		ceil := min(o.Backoff<<min(attempt, 62), o.MaxBackoff)
		if attempt >= 62 || ceil <= 0 {
			ceil = o.MaxBackoff
		}
		var spread bool
		first := o.backoff(attempt, 0)
		for range 50 {
			d := o.backoff(attempt, 0)
			if d < 0 || d > ceil {
				t.Fatalf("attempt %d: backoff %v outside [0, %v]", attempt, d, ceil)
			}
			spread = spread || d != first
		}
		if !spread {
			t.Fatalf("attempt %d: 50 backoffs all %v; want full jitter", attempt, first)
		}
	}
	if d := o.backoff(0, time.Hour); d != o.MaxBackoff {
		t.Fatalf("Retry-After of an hour gave %v, want MaxBackoff %v", d, o.MaxBackoff)
	}
	if d := o.backoff(3, 2*time.Second); d != 2*time.Second {
		t.Fatalf("Retry-After of 2s gave %v, want 2s", d)
	}
}

func TestCloseCutsABackoffShort(t *testing.T) {
	pl := newPlugin(t, 0, func(http.ResponseWriter, *http.Request, int, []wireEvent) int {
		return http.StatusBadGateway
	})
	p := New(Options{Lanes: 1, Linger: -1, Backoff: time.Hour, MaxBackoff: time.Hour}, encode, pl.send)
	p.Push(ev("c", 0))
	pl.waitFor(t, "the first attempt", func() bool { return pl.requests == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- p.Close(ctx) }()
	select {
	case err := <-closed:
		if err == nil {
			t.Fatal("Close gave up a batch but returned nil")
		}
	case <-time.After(failAfter):
		t.Fatal("Close waited out an hour's backoff")
	}
	if s := p.Stats(); s.Dropped.Shutdown != 1 || s.Dropped.Failed != 0 {
		t.Fatalf("stats %+v; want the batch counted as a shutdown drop", s)
	}
}

// syncBuffer lets the lanes log while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func TestFailuresAreLoggedRateLimitedWithCounts(t *testing.T) {
	pl := newPlugin(t, 0, func(http.ResponseWriter, *http.Request, int, []wireEvent) int {
		return http.StatusBadRequest
	})
	var out syncBuffer
	log := slog.New(slog.NewJSONHandler(&out, nil))
	p := pipe(t, Options{Lanes: 1, MaxEvents: 1, Linger: -1, Logger: log}, pl)
	const n = 20
	for i := range n {
		p.Push(ev("c", i))
	}
	closeWithin(t, p)

	var lines int
	var failed float64
	sc := bufio.NewScanner(&out.b)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		lines++
		failed += rec["dropped_failed"].(float64)
		if e, _ := rec["last_error"].(string); !strings.Contains(e, "400") {
			t.Fatalf("log line without the plugin's answer: %q", sc.Text())
		}
	}
	if failed != n || lines == 0 || lines >= n/2 {
		t.Fatalf("%d log lines counting %v failed events; want a few lines counting all %d", lines, failed, n)
	}
}

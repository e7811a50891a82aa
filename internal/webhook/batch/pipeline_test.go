package batch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/mqttd/mqttd/internal/hooks"
)

func TestBatchesByCount(t *testing.T) {
	pl := newPlugin(t, 0, nil)
	// An hour's linger: only MaxEvents, or Close, can end a batch.
	p := pipe(t, Options{Lanes: 1, MaxEvents: 10, Linger: 3600e9}, pl)
	for i := range 25 {
		p.Push(ev("c", i))
	}
	pl.waitFor(t, "two full batches", func() bool { return len(pl.accepted) == 2 })
	closeWithin(t, p) // ends the linger of the third batch
	wantInts(t, "batch sizes", pl.batchSizes(), 10, 10, 5)
	wantInts(t, "seqs", pl.seqs("c"), upTo(25)...)
	if s := p.Stats(); s.Batches != 3 || s.Sent != 25 || s.Dropped != (Drops{}) {
		t.Fatalf("stats %+v, want 3 batches, 25 sent, nothing dropped", s)
	}
}

func TestBatchesByBytes(t *testing.T) {
	pl := newPlugin(t, 0, nil)
	one, _ := encode(nil, ev("c", 0))
	maxBytes := len(head) + 3*len(one) + 2 + len(tail) // three events and their commas
	p := pipe(t, Options{Lanes: 1, MaxBytes: maxBytes, Linger: 3600e9}, pl)
	for i := range 10 {
		p.Push(ev("c", i))
	}
	big := ev("c", 10)
	big.Topic = strings.Repeat("t", 2*maxBytes)
	p.Push(big)
	p.Push(ev("c", 11))
	p.Push(ev("c", 12))
	closeWithin(t, p)

	// 9 does not fit with 6..8; the oversized event goes alone.
	wantInts(t, "batch sizes", pl.batchSizes(), 3, 3, 3, 1, 1, 2)
	wantInts(t, "seqs", pl.seqs("c"), upTo(13)...)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for i, size := range pl.sizes {
		if size > maxBytes && i != 4 {
			t.Fatalf("request %d has %d bytes, over MaxBytes %d", i+1, size, maxBytes)
		}
	}
}

func TestBatchLingerSendsAPartialBatch(t *testing.T) {
	pl := newPlugin(t, 0, nil)
	p := pipe(t, Options{Lanes: 1, MaxEvents: 100, Linger: 20e6}, pl)
	p.Push(ev("c", 0))
	// Neither MaxEvents nor Close: only the linger running out sends it.
	pl.waitFor(t, "the lone event", func() bool { return len(pl.accepted) == 1 })
	p.Push(ev("c", 1))
	p.Push(ev("c", 2))
	pl.waitFor(t, "the next events", func() bool { return len(pl.seqsLocked("c")) == 3 })
	wantInts(t, "seqs", pl.seqs("c"), 0, 1, 2)
}

func TestPerClientOrderUnderConcurrentPushers(t *testing.T) {
	pl := newPlugin(t, 0, nil)
	p := pipe(t, Options{QueueSize: 100000, Lanes: 4, MaxEvents: 50, Linger: 1e6}, pl)
	const pushers, clientsEach, perClient = 8, 4, 300
	var wg sync.WaitGroup
	for w := range pushers {
		wg.Go(func() {
			for i := range perClient {
				for c := range clientsEach {
					p.Push(ev(fmt.Sprintf("client-%d-%d", w, c), i))
				}
			}
		})
	}
	wg.Wait()
	closeWithin(t, p)

	lanes := map[int]bool{}
	for w := range pushers {
		for c := range clientsEach {
			id := fmt.Sprintf("client-%d-%d", w, c)
			wantInts(t, id+" seqs", pl.seqs(id), upTo(perClient)...)
			lanes[p.laneOf(ev(id, 0))] = true
		}
	}
	if len(lanes) < 2 {
		t.Fatalf("%d clients all hashed to one lane", pushers*clientsEach)
	}
	if s := p.Stats(); s.Sent != pushers*clientsEach*perClient {
		t.Fatalf("stats %+v, want every event sent", s)
	}
}

func TestClientsOnOtherLanesAreNotHeldUp(t *testing.T) {
	g := newGate(t)
	pl := newPlugin(t, 0, func(_ http.ResponseWriter, r *http.Request, _ int, es []wireEvent) int {
		if es[0].ClientID == "slow" {
			g.wait(r)
		}
		return http.StatusOK
	})
	p := pipe(t, Options{Lanes: 4, Linger: -1}, pl)
	fast := ""
	for i := 0; fast == "" && i < 1000; i++ {
		if id := fmt.Sprint("fast-", i); p.laneOf(ev(id, 0)) != p.laneOf(ev("slow", 0)) {
			fast = id
		}
	}
	if fast == "" {
		t.Fatal("1000 client ids all share the slow client's lane")
	}
	p.Push(ev("slow", 0))
	pl.waitFor(t, "the slow client's batch in flight", func() bool { return pl.requests == 1 })
	p.Push(ev(fast, 0))
	pl.waitFor(t, "the fast client's batch while the slow one hangs", func() bool { return len(pl.accepted) == 1 })
	g.open()
	closeWithin(t, p)
	wantInts(t, "slow seqs", pl.seqs("slow"), 0)
}

func TestLifecycleEventsUseLaneZeroAndClientsStick(t *testing.T) {
	pl := newPlugin(t, 0, nil)
	p := pipe(t, Options{Lanes: 8}, pl)
	if l := p.laneOf(&hooks.Event{}); l != 0 {
		t.Fatalf("an event without a client went to lane %d, want 0", l)
	}
	for i := range 100 {
		id := fmt.Sprint("c", i)
		if p.laneOf(ev(id, 0)) != p.laneOf(ev(id, 1)) {
			t.Fatalf("client %s's events went to two lanes", id)
		}
	}
}

// failFirst answers status to the first n requests, then 200.
func failFirst(n, status int) func(http.ResponseWriter, *http.Request, int, []wireEvent) int {
	return func(_ http.ResponseWriter, _ *http.Request, req int, _ []wireEvent) int {
		if req <= n {
			return status
		}
		return http.StatusOK
	}
}

func TestRetriesOn500(t *testing.T) {
	pl := newPlugin(t, 0, failFirst(2, http.StatusInternalServerError))
	p := pipe(t, Options{Lanes: 1, MaxEvents: 3, Linger: 3600e9, Backoff: 1e6, MaxBackoff: 5e6}, pl)
	for i := range 3 {
		p.Push(ev("c", i))
	}
	closeWithin(t, p)
	wantInts(t, "seqs", pl.seqs("c"), 0, 1, 2)
	if s := p.Stats(); pl.requestCount() != 3 || s.Retried != 2 || s.Sent != 3 || s.Batches != 1 || s.Dropped != (Drops{}) {
		t.Fatalf("%d requests, stats %+v; want 3 requests, 2 retries, 3 sent in 1 batch", pl.requestCount(), s)
	}
}

func TestRetriesRunOutThenTheLaneMovesOn(t *testing.T) {
	pl := newPlugin(t, 0, failFirst(3, http.StatusServiceUnavailable))
	p := pipe(t, Options{Lanes: 1, Linger: -1, Retries: 2, Backoff: 1e6, MaxBackoff: 5e6}, pl)
	p.Push(ev("c", 0))
	pl.waitFor(t, "three attempts", func() bool { return pl.requests == 3 })
	p.Push(ev("c", 1))
	closeWithin(t, p)
	wantInts(t, "seqs", pl.seqs("c"), 1)
	if s := p.Stats(); s.Retried != 2 || s.Dropped.Failed != 1 || s.Sent != 1 {
		t.Fatalf("stats %+v; want 2 retries, 1 failed, 1 sent", s)
	}
}

func TestRetryAfterIsHonouredAndCapped(t *testing.T) {
	for _, tc := range []struct {
		name       string
		retryAfter string
		opts       Options
	}{
		// With an hour of backoff only Retry-After's second lets the retry
		// happen before the test's failure bound.
		{"honoured", "1", Options{Backoff: 3600e9, MaxBackoff: 3600e9}},
		// Retry-After says an hour; MaxBackoff caps it.
		{"capped", "3600", Options{Backoff: 1e6, MaxBackoff: 50e6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl := newPlugin(t, 0, func(w http.ResponseWriter, _ *http.Request, req int, _ []wireEvent) int {
				if req == 1 {
					w.Header().Set("Retry-After", tc.retryAfter)
					return http.StatusTooManyRequests
				}
				return http.StatusOK
			})
			opts := tc.opts
			opts.Lanes, opts.Linger = 1, -1
			p := pipe(t, opts, pl)
			p.Push(ev("c", 0))
			pl.waitFor(t, "the retried batch", func() bool { return len(pl.accepted) == 1 })
			closeWithin(t, p)
			if s := p.Stats(); s.Retried != 1 || s.Sent != 1 {
				t.Fatalf("stats %+v; want 1 retry, 1 sent", s)
			}
		})
	}
}

func TestRetriesOnTimeout(t *testing.T) {
	g := newGate(t)
	pl := newPlugin(t, 200e6, func(_ http.ResponseWriter, r *http.Request, req int, _ []wireEvent) int {
		if req == 1 {
			g.wait(r) // never opened before the client gives up
		}
		return http.StatusOK
	})
	p := pipe(t, Options{Lanes: 1, Linger: -1, Backoff: 1e6, MaxBackoff: 5e6}, pl)
	p.Push(ev("c", 0))
	pl.waitFor(t, "the batch after a timeout", func() bool { return len(pl.accepted) == 1 })
	closeWithin(t, p)
	if s := p.Stats(); pl.requestCount() != 2 || s.Retried != 1 || s.Sent != 1 {
		t.Fatalf("%d requests, stats %+v; want 2 requests, 1 retry, 1 sent", pl.requestCount(), s)
	}
}

func TestNoRetryOnOther4xx(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusUnauthorized} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			pl := newPlugin(t, 0, func(http.ResponseWriter, *http.Request, int, []wireEvent) int { return status })
			p := pipe(t, Options{Lanes: 1, MaxEvents: 3, Linger: 3600e9, Backoff: 1e6}, pl)
			for i := range 3 {
				p.Push(ev("c", i))
			}
			closeWithin(t, p)
			if s := p.Stats(); pl.requestCount() != 1 || s.Retried != 0 || s.Dropped.Failed != 3 {
				t.Fatalf("%d requests, stats %+v; want 1 request, no retry, 3 failed", pl.requestCount(), s)
			}
		})
	}
}

// Overflow drops single events, oldest first, also from the middle of a
// batch that is already encoded: the batch then starts at its first kept
// event and is still valid JSON (the test plugin fails on anything else).
func TestOverflowDropsOldest(t *testing.T) {
	for _, tc := range []struct {
		maxEvents int
		sizes     []int // batches: the one in flight, then what is left of 1-3, 4-6, ...
	}{
		{maxEvents: 1, sizes: []int{1, 1, 1, 1, 1, 1}},
		{maxEvents: 3, sizes: []int{1, 1, 3, 1}}, // 4 and 5 of 4-6 make way
	} {
		t.Run(fmt.Sprint("max-events=", tc.maxEvents), func(t *testing.T) {
			g, pl := holdingFirst(t)
			p := pipe(t, Options{Lanes: 1, QueueSize: 5, MaxEvents: tc.maxEvents, Linger: -1}, pl)
			p.Push(ev("c", 0))
			pl.waitFor(t, "the first batch in flight", func() bool { return pl.requests == 1 })
			for i := 1; i <= 10; i++ {
				p.Push(ev("c", i))
			}
			if s := p.Stats(); s.Dropped.Overflow != 5 || s.Queued != 5 {
				t.Fatalf("stats %+v; want 5 overflow drops, 5 queued", s)
			}
			g.open()
			closeWithin(t, p)
			wantInts(t, "seqs", pl.seqs("c"), 0, 6, 7, 8, 9, 10)
			wantInts(t, "batch sizes", pl.batchSizes(), tc.sizes...)
		})
	}
}

// Push encodes at once and keeps nothing of the event: the broker may
// reuse its buffers as soon as Push returns. It allocates nothing once
// the lane's buffers have grown.
func TestPushKeepsNothingAndDoesNotAllocate(t *testing.T) {
	pl := newPlugin(t, 0, nil)
	p := pipe(t, Options{Lanes: 1, QueueSize: 1 << 20, MaxEvents: 1 << 20, MaxBytes: 1 << 30, Linger: 3600e9}, pl)
	topic := []byte("before")
	e := ev("c", 0)
	e.Topic = unsafe.String(&topic[0], len(topic))
	p.Push(e)
	copy(topic, "after!")
	for i := range 1000 { // grow the buffers
		p.Push(ev("c", i+1))
	}
	e = ev("c", 1001)
	if n := testing.AllocsPerRun(1000, func() { p.Push(e) }); n != 0 {
		t.Errorf("Push allocates %v times per event, want 0", n)
	}
	closeWithin(t, p)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if got := pl.accepted[0][0].Topic; got != "before" {
		t.Errorf("first event's topic = %q, want %q as it was at Push", got, "before")
	}
}

func TestEncodeErrorsAreDroppedAndCounted(t *testing.T) {
	pl := newPlugin(t, 0, nil) // fails the test if a half-written event leaks into a body
	p := pipe(t, Options{Lanes: 1, MaxEvents: 3, Linger: 3600e9}, pl)
	bad := ev("c", 1)
	bad.Topic = "bad"
	p.Push(bad)
	p.Push(ev("c", 0))
	p.Push(bad)
	p.Push(ev("c", 2))
	p.Push(ev("c", 3))
	closeWithin(t, p)
	wantInts(t, "seqs", pl.seqs("c"), 0, 2, 3)
	if s := p.Stats(); s.Dropped.Encode != 2 || s.Sent != 3 {
		t.Fatalf("stats %+v; want 2 encode drops, 3 sent", s)
	}
}

func TestCloseDrainsEverything(t *testing.T) {
	pl := newPlugin(t, 0, nil)
	p := pipe(t, Options{Lanes: 2, Linger: 3600e9}, pl)
	for i := range 1000 {
		p.Push(ev(fmt.Sprint("c", i%7), i))
	}
	closeWithin(t, p)
	p.Push(ev("late", 0))
	s := p.Stats()
	if s.Sent != 1000 || s.Queued != 0 || s.Dropped != (Drops{Shutdown: 1}) {
		t.Fatalf("stats %+v; want 1000 sent, the push after Close dropped", s)
	}
	if got := pl.seqs("late"); len(got) != 0 {
		t.Fatal("an event pushed after Close was delivered")
	}
}

func TestCloseDeadlineDropsTheRest(t *testing.T) {
	pl := newPlugin(t, 0, func(_ http.ResponseWriter, r *http.Request, req int, _ []wireEvent) int {
		if req > 1 {
			<-r.Context().Done() // hangs until the pipeline gives up
		}
		return http.StatusOK
	})
	p := New(Options{Lanes: 1, MaxEvents: 2, Linger: 3600e9}, encode, pl.send) // batches of exactly 2
	for i := range 10 {
		p.Push(ev("c", i))
	}
	pl.waitFor(t, "the hanging second batch", func() bool { return pl.requests == 2 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the deadline has already passed
	err := p.Close(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want an error wrapping context.Canceled", err)
	}
	s := p.Stats()
	if s.Sent != 2 || s.Dropped.Shutdown != 8 || s.Dropped.Failed != 0 || s.Queued != 0 {
		t.Fatalf("stats %+v; want 2 sent, 8 shutdown drops", s)
	}
}

func TestHangingSenderNeitherBlocksPushNorLeaks(t *testing.T) {
	pl := newPlugin(t, 0, func(_ http.ResponseWriter, r *http.Request, _ int, _ []wireEvent) int {
		<-r.Context().Done()
		return http.StatusOK
	})
	p := pipe(t, Options{QueueSize: 1000, Linger: -1}, pl) // closed at cleanup too, should the test fail first
	const n = 100000
	var done atomic.Int64
	pushed := make(chan struct{})
	go func() {
		defer close(pushed)
		for i := range n {
			p.Push(ev(fmt.Sprint("c", i%64), i))
			done.Add(1)
		}
	}()
	// Blocked means no progress: on a loaded machine under the race
	// detector 100000 pushes may take longer than failAfter, and a time
	// bound on all of them failed there.
	for last := int64(-1); ; {
		select {
		case <-pushed:
		case <-time.After(failAfter):
			if now := done.Load(); now == last {
				t.Fatalf("Push blocked behind a plugin that never answers (%d of %d pushed)", now, n)
			} else {
				last = now
			}
			continue
		}
		break
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50e6)
	defer cancel()
	if err := p.Close(ctx); err == nil {
		t.Fatal("Close with every lane hanging returned nil, want the shutdown drops reported")
	}
	s := p.Stats()
	if s.Sent != 0 || s.Dropped.Overflow == 0 || s.Dropped.Overflow+s.Dropped.Shutdown != n {
		t.Fatalf("stats %+v; want every one of %d events dropped by overflow or shutdown", s, n)
	}
	// TestMain's goleak check fails the run if a lane or request outlived Close.
}

// A burst of many small batches does not leave the lane holding all their
// buffers once it is over.
func TestSpentBatchesAreNotAllKept(t *testing.T) {
	g, pl := holdingFirst(t)
	p := pipe(t, Options{Lanes: 1, QueueSize: 1000, MaxEvents: 1, Linger: -1}, pl)
	for i := range 500 {
		p.Push(ev("c", i))
	}
	l := p.lanes[0]
	if n := l.len(); n < 400 {
		t.Fatalf("%d events queued behind the held batch, want most of 500", n)
	}
	g.open()
	pl.waitFor(t, "every event", func() bool { return len(pl.seqsLocked("c")) == 500 })
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) > keepFree || len(l.queue) != 0 {
		t.Fatalf("lane keeps %d spent and %d queued batches, want at most %d and 0", len(l.free), len(l.queue), keepFree)
	}
}

// Large events fill memory long before the event count does: past
// QueueBytes the oldest make way too, however few there are.
func TestOverflowByBytes(t *testing.T) {
	g, pl := holdingFirst(t)
	big := func(i int) *hooks.Event {
		e := ev("c", i)
		e.Topic = strings.Repeat("t", 1000)
		return e
	}
	one, _ := encode(nil, big(0)) // later seqs and ids take up to 4 bytes more
	p := pipe(t, Options{Lanes: 1, QueueSize: 1000, QueueBytes: 3*(len(one)+4) + 2, MaxEvents: 2, Linger: -1}, pl)
	p.Push(big(0))
	pl.waitFor(t, "the first batch in flight", func() bool { return pl.requests == 1 })
	for i := 1; i <= 10; i++ {
		p.Push(big(i))
	}
	if s := p.Stats(); s.Dropped.Overflow != 7 || s.Queued != 3 {
		t.Fatalf("stats %+v; want 7 overflow drops, 3 queued", s)
	}
	g.open()
	closeWithin(t, p)
	wantInts(t, "seqs", pl.seqs("c"), 0, 8, 9, 10)
}

// holdingFirst is a plugin that holds its first request until g opens (or
// the request is given up) and accepts every request.
func holdingFirst(t *testing.T) (g gate, pl *plugin) {
	g = newGate(t)
	pl = newPlugin(t, 0, func(_ http.ResponseWriter, r *http.Request, req int, _ []wireEvent) int {
		if req == 1 {
			g.wait(r)
		}
		return http.StatusOK
	})
	return g, pl
}

package batch

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// The lane against a model: random pushes of events of random sizes, a
// plugin that answers only when the test lets it, and random limits.
// Whatever the interleaving, every body is a valid batch no larger than
// MaxBytes unless it holds a single event, the events delivered are the
// pushed ones in push order with some left out, and exactly those left out
// are counted as overflow.
func TestLaneAgainstModel(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { laneModelRun(t, seed) })
	}
}

func laneModelRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	one, _ := encode(nil, ev("c", 0))
	opts := Options{
		Lanes:     1,
		QueueSize: 1 + rng.IntN(40),
		MaxEvents: 1 + rng.IntN(12),
		MaxBytes:  len(head) + len(tail) + len(one)*(1+rng.IntN(6)),
		Linger:    -1,
		Logger:    quiet,
	}
	if rng.IntN(2) == 0 {
		opts.QueueBytes = len(one) * (1 + rng.IntN(30))
	}
	permits := make(chan struct{})
	var mu sync.Mutex
	var bodies [][]byte
	send := func(ctx context.Context, body []byte, n int) error {
		mu.Lock()
		bodies = append(bodies, append([]byte(nil), body...))
		mu.Unlock()
		select {
		case <-permits:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	p := New(opts, encode, send)
	pushed := 0
	for range 300 {
		switch r := rng.IntN(10); {
		case r < 7:
			e := ev("c", pushed)
			if rng.IntN(8) == 0 { // now and then one larger than a whole batch
				e.Topic = strings.Repeat("t", opts.MaxBytes)
			} else {
				e.Topic = strings.Repeat("t", rng.IntN(len(one)))
			}
			p.Push(e)
			pushed++
			checkLaneCounts(t, p.lanes[0])
		default:
			for range rng.IntN(3) { // answer a batch if one is waiting
				select {
				case permits <- struct{}{}:
				case <-time.After(time.Millisecond):
				}
			}
		}
	}
	close(permits)
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	last := -1
	delivered := 0
	for i, b := range bodies {
		var batch struct{ Events []wireEvent }
		if err := json.Unmarshal(b, &batch); err != nil {
			t.Fatalf("opts %+v: body %d is not a batch: %v\n%s", opts, i, err, b)
		}
		if n := len(batch.Events); n == 0 || n > opts.MaxEvents || (len(b) > opts.MaxBytes && n > 1) {
			t.Fatalf("opts %+v: body %d holds %d events in %d bytes", opts, i, n, len(b))
		}
		for _, e := range batch.Events {
			if int(e.Seq) <= last || int(e.Seq) >= pushed {
				t.Fatalf("opts %+v: seq %d after %d (pushed %d)", opts, e.Seq, last, pushed)
			}
			last = int(e.Seq)
			delivered++
		}
	}
	checkLaneCounts(t, p.lanes[0])
	s := p.Stats()
	if int(s.Sent) != delivered || int(s.Dropped.Overflow) != pushed-delivered || s.Dropped.Failed+s.Dropped.Encode+s.Dropped.Shutdown != 0 || s.Queued != 0 {
		t.Fatalf("opts %+v: pushed %d, delivered %d, stats %+v", opts, pushed, delivered, s)
	}
}

// checkLaneCounts holds the lane's running counts to what its queue holds,
// and its bytes to the bound (the newest event may exceed it alone).
func checkLaneCounts(t *testing.T, l *lane) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	events, bytes := 0, 0
	for i, c := range l.queue {
		if c.events() == 0 {
			t.Fatalf("queued batch %d holds no event", i)
		}
		events += c.events()
		bytes += c.live()
	}
	if events != l.queued || bytes != l.bytes {
		t.Fatalf("lane counts %d events, %d bytes; its queue holds %d and %d", l.queued, l.bytes, events, bytes)
	}
	if int(l.nEvents.Load()) != l.queued || int(l.nBytes.Load()) != l.bytes {
		t.Fatalf("lane publishes %d events, %d bytes; it holds %d and %d", l.nEvents.Load(), l.nBytes.Load(), l.queued, l.bytes)
	}
	if lim := l.p.limit; l.queued > lim.Events || (l.bytes > lim.Bytes && l.queued > 1) {
		t.Fatalf("lane holds %d events, %d bytes; bounds %d and %d", l.queued, l.bytes, lim.Events, lim.Bytes)
	}
}

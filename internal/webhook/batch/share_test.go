package batch

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// One lane whose batch is out (a plugin slow on it, say) while events keep
// coming for its clients, faster than it drains: QueueSize bounds the
// events of all lanes together, so the lane borrows the room the others
// leave unused and drops nothing while the total stays within it. Past
// the bound its oldest make way. A lane within its share that needs room
// back takes it from the borrower's oldest, not from its own events.
//
// No clock: the plugin holds every request until the test lets it, so the
// lanes' goroutines stay in their sends while the test pushes.
func TestBurstOnOneLaneUsesTheWholeQueue(t *testing.T) {
	g := newGate(t)
	pl := newPlugin(t, 0, func(_ http.ResponseWriter, r *http.Request, _ int, _ []wireEvent) int {
		g.wait(r)
		return http.StatusOK
	})
	const lanes, size = 4, 40 // a lane's share: 10
	p := pipe(t, Options{Lanes: lanes, QueueSize: size, MaxEvents: 1, Linger: -1, Logger: quiet}, pl)
	a, b := clientsOnTwoLanes(t, p)

	p.Push(ev(a, 0))
	pl.waitFor(t, "a's first batch in flight", func() bool { return pl.requests == 1 })
	for i := 1; i <= 39; i++ { // four times a's share, within the total
		p.Push(ev(a, i))
	}
	p.Push(ev(b, 0))
	pl.waitFor(t, "b's first batch in flight", func() bool { return pl.requests == 2 })
	if s := p.Stats(); s.Dropped.Overflow != 0 || s.Queued != 39 {
		t.Fatalf("a burst within the total room: stats %+v; want nothing dropped, 39 queued", s)
	}

	for i := 40; i <= 45; i++ { // past the total: a's oldest make way
		p.Push(ev(a, i))
	}
	if s := p.Stats(); s.Dropped.Overflow != 5 || s.Queued != size {
		t.Fatalf("past the total: stats %+v; want 5 overflow drops, %d queued", s, size)
	}
	for i := 1; i <= 5; i++ { // b, within its share, takes room back from a
		p.Push(ev(b, i))
	}
	if s := p.Stats(); s.Dropped.Overflow != 10 || s.Queued != size {
		t.Fatalf("b taking back its share: stats %+v; want 10 overflow drops, %d queued", s, size)
	}

	g.open()
	closeWithin(t, p)
	wantA := []uint64{0}
	for i := 11; i <= 45; i++ {
		wantA = append(wantA, uint64(i))
	}
	wantInts(t, "a's seqs", pl.seqs(a), wantA...)
	wantInts(t, "b's seqs", pl.seqs(b), 0, 1, 2, 3, 4, 5)
	if s := p.Stats(); s.Sent != uint64(len(wantA)+6) || s.Dropped.Overflow != 10 || s.Queued != 0 {
		t.Fatalf("after close: stats %+v", s)
	}
}

// clientsOnTwoLanes finds two client ids that p puts on different lanes.
func clientsOnTwoLanes(t *testing.T, p *Pipeline) (a, b string) {
	t.Helper()
	a = "a"
	la := p.laneOf(ev(a, 0))
	for i := range 1000 {
		b = fmt.Sprint("b", i)
		if p.laneOf(ev(b, 0)) != la {
			return a, b
		}
	}
	t.Fatal("no client id on another lane than a's")
	return "", ""
}

// The lanes against the queue's bounds, with random clients on up to four
// lanes, a plugin that answers only when the test lets it, and random
// bounds: after every push the lanes together hold no more than
// QueueSize and QueueBytes, unless each holds no more than its share; a push drops only as
// many events as the whole queue was over, never while there was room;
// each client's events arrive in order; and what did not arrive is
// exactly what was counted as overflow.
func TestLanesShareTheBoundsAgainstModel(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { sharedModelRun(t, seed) })
	}
}

func sharedModelRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 11))
	one, _ := encode(nil, ev("c0", 0))
	opts := Options{
		Lanes:     1 + rng.IntN(4),
		QueueSize: 1 + rng.IntN(40),
		MaxEvents: 1 + rng.IntN(8),
		Linger:    -1,
		Logger:    quiet,
	}
	byBytes := rng.IntN(3) == 0
	if byBytes {
		opts.QueueBytes = len(one) * (1 + rng.IntN(30))
	}
	permits := make(chan struct{})
	var mu sync.Mutex
	var bodies [][]byte
	send := func(ctx context.Context, body []byte, n int) error {
		select {
		case <-permits:
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		bodies = append(bodies, append([]byte(nil), body...))
		mu.Unlock()
		return nil
	}
	p := New(opts, encode, send)
	clients := 1 + rng.IntN(6)
	next := make([]int, clients)
	pushed := 0
	held := func() (events, bytes int) { // what the lanes hold; only their goroutines take from it meanwhile
		for _, l := range p.lanes {
			l.mu.Lock()
			events, bytes = events+l.queued, bytes+l.bytes
			l.mu.Unlock()
		}
		return events, bytes
	}
	for range 400 {
		if rng.IntN(10) < 7 {
			c := rng.IntN(clients)
			e := ev(fmt.Sprint("c", c), next[c])
			e.Topic = strings.Repeat("t", rng.IntN(2*len(one)))
			before, _ := held()
			dropped := p.Stats().Dropped.Overflow
			p.Push(e)
			next[c]++
			pushed++
			d := int(p.Stats().Dropped.Overflow - dropped)
			if !byBytes && d > max(0, before+1-opts.QueueSize) {
				t.Fatalf("opts %+v: a push onto %d held dropped %d", opts, before, d)
			}
			// Past the bounds only on the lanes' own shares: one event
			// each at least, so the newest of each stays (a queue smaller
			// than the lanes, or lone events larger than QueueBytes).
			if n, b := held(); p.limit.Over(n, b) && p.borrowers.Load() != 0 {
				t.Fatalf("opts %+v: the lanes hold %d events, %d bytes after a push, %d beyond their shares", opts, n, b, p.borrowers.Load())
			}
			for _, l := range p.lanes {
				checkLaneCounts(t, l)
			}
			continue
		}
		for range rng.IntN(3) { // answer a batch if one is waiting
			select {
			case permits <- struct{}{}:
			default:
			}
		}
	}
	close(permits)
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	last := map[string]int{}
	delivered := 0
	for i, b := range bodies {
		var batch struct{ Events []wireEvent }
		if err := json.Unmarshal(b, &batch); err != nil {
			t.Fatalf("opts %+v: body %d is not a batch: %v", opts, i, err)
		}
		for _, e := range batch.Events {
			if prev, ok := last[e.ClientID]; ok && int(e.Seq) <= prev {
				t.Fatalf("opts %+v: client %s: seq %d after %d", opts, e.ClientID, e.Seq, prev)
			}
			last[e.ClientID] = int(e.Seq)
			delivered++
		}
	}
	s := p.Stats()
	if int(s.Sent) != delivered || int(s.Dropped.Overflow) != pushed-delivered || s.Queued != 0 || p.borrowers.Load() != 0 {
		t.Fatalf("opts %+v: pushed %d, delivered %d, stats %+v, borrowers %d", opts, pushed, delivered, s, p.borrowers.Load())
	}
}

// A durable lane beyond its share gives way to the spool, not by dropping:
// when another lane within its share needs room back, the borrower's
// queue moves to the spool, and every event arrives, in order.
func TestDurableBorrowerGivesWayToTheSpool(t *testing.T) {
	g := newGate(t)
	pl := newPlugin(t, 0, func(_ http.ResponseWriter, r *http.Request, _ int, _ []wireEvent) int {
		g.wait(r)
		return http.StatusOK
	})
	sp := openSpool(t, t.TempDir(), 0)
	defer sp.Close()
	o := durableOpts(sp)
	o.QueueSize, o.MaxEvents, o.Linger, o.Logger = 40, 1, -1, quiet
	p := pipe(t, o, pl)
	a, b := clientsOnTwoLanes(t, p)

	p.Push(ev(a, 0))
	pl.waitFor(t, "a's first batch in flight", func() bool { return pl.requests == 1 })
	for i := 1; i <= 39; i++ {
		p.Push(ev(a, i))
	}
	p.Push(ev(b, 0))
	pl.waitFor(t, "b's first batch in flight", func() bool { return pl.requests == 2 })
	if s := p.Stats(); s.Queued != 39 || s.Spooled != 0 {
		t.Fatalf("within the total room: stats %+v; want 39 queued, nothing spooled", s)
	}
	for i := 1; i <= 5; i++ { // b takes its room back: a's queue goes to the spool
		p.Push(ev(b, i))
	}
	poll(t, "a's events spooled", func() bool { return p.Stats().Spooled >= 40 })
	if s := p.Stats(); s.Dropped != (Drops{}) {
		t.Fatalf("stats %+v: want nothing dropped", s)
	}
	g.open()
	allArrived(t, pl, []string{a}, 40)
	allArrived(t, pl, []string{b}, 6)
	closeWithin(t, p)
}

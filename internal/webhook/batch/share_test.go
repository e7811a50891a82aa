package batch

import (
	"fmt"
	"net/http"
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

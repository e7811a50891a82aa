package batch

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/webhook/spool"
)

// downPlugin answers 503 while down is set.
func downPlugin(t *testing.T, down *atomic.Bool) *plugin {
	return newPlugin(t, 0, func(w http.ResponseWriter, r *http.Request, req int, events []wireEvent) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
}

func openSpool(t *testing.T, dir string, maxBytes int64) *spool.Spool {
	t.Helper()
	s, err := spool.Open(dir, spool.Options{MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// durableOpts: fast retries so a test waits on events, not on backoff.
func durableOpts(sp *spool.Spool) Options {
	return Options{Lanes: 4, MaxEvents: 7, Linger: 2 * time.Millisecond, Backoff: time.Millisecond,
		MaxBackoff: 20 * time.Millisecond, Spool: sp}
}

// firstSeen lists client's accepted seqs with repeats removed, keeping
// the first arrival of each, and how many repeats there were.
func (pl *plugin) firstSeen(client string) (seqs []uint64, dups int) {
	seen := map[uint64]bool{}
	for _, s := range pl.seqs(client) {
		if seen[s] {
			dups++
			continue
		}
		seen[s] = true
		seqs = append(seqs, s)
	}
	return seqs, dups
}

// poll waits for cond, which no plugin request signals, checking every
// millisecond up to failAfter.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func distinct(seqs []uint64) int {
	seen := map[uint64]bool{}
	for _, s := range seqs {
		seen[s] = true
	}
	return len(seen)
}

func pushRound(p *Pipeline, clients []string, from, to int) {
	for i := from; i < to; i++ {
		for _, c := range clients {
			p.Push(ev(c, i))
		}
	}
}

// allArrived waits until every client's first arrivals are 0..n-1, in
// that order, and returns the repeats.
func allArrived(t *testing.T, pl *plugin, clients []string, n int) int {
	t.Helper()
	pl.waitFor(t, fmt.Sprintf("%d events of each client", n), func() bool {
		for _, c := range clients {
			if distinct(pl.seqsLocked(c)) < n {
				return false
			}
		}
		return true
	})
	dups := 0
	for _, c := range clients {
		seqs, d := pl.firstSeen(c)
		wantInts(t, "first arrivals of "+c, seqs, upTo(n)...)
		dups += d
	}
	return dups
}

func TestDurableDownThenUp(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	pl := downPlugin(t, &down)
	sp := openSpool(t, t.TempDir(), 0)
	defer sp.Close()
	p := pipe(t, durableOpts(sp), pl)
	clients := []string{"a", "b", "c", "d", "e"}
	pushRound(p, clients, 0, 40)
	poll(t, "the spool to hold every event", func() bool { return p.Stats().Spooled >= 200 })
	pushRound(p, clients, 40, 60) // behind the spooled ones
	down.Store(false)
	allArrived(t, pl, clients, 60)
	// Events spooled while their send went on may still wait there, to
	// arrive twice: at least once is the promise.
	poll(t, "the spool to empty", func() bool { return sp.Stats().Records == 0 })
	closeWithin(t, p)
	s := p.Stats()
	if s.FromSpool < 200 || s.Dropped != (Drops{}) {
		t.Fatalf("stats %+v: want every spooled event delivered from the spool, nothing dropped", s)
	}
}

// TestDurableAcrossRestart: what a pipeline spooled (its plugin down at
// shutdown) is delivered by the next one, before the newer events of the
// same clients.
func TestDurableAcrossRestart(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	pl := downPlugin(t, &down)
	dir := t.TempDir()
	clients := []string{"a", "b", "c"}

	sp := openSpool(t, dir, 0)
	p := New(durableOpts(sp), encode, pl.send)
	pushRound(p, clients, 0, 30)
	closeWithin(t, p) // the plugin is down: everything goes to the spool
	if s := p.Stats(); s.Spooled != 90 || s.Dropped != (Drops{}) {
		t.Fatalf("first run: %+v, want 90 spooled, none dropped", s)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}

	down.Store(false)
	sp = openSpool(t, dir, 0)
	defer sp.Close()
	p = pipe(t, durableOpts(sp), pl)
	pushRound(p, clients, 30, 50) // must not overtake the spooled 0..29
	allArrived(t, pl, clients, 50)
	closeWithin(t, p)
}

// TestDurableOverflowSpoolsInsteadOfDropping: with the plugin holding the
// first batch, a full queue moves to the spool; nothing is dropped.
func TestDurableOverflowSpoolsInsteadOfDropping(t *testing.T) {
	g, pl := holdingFirst(t)
	sp := openSpool(t, t.TempDir(), 0)
	defer sp.Close()
	o := durableOpts(sp)
	o.Lanes, o.QueueSize = 1, 10
	p := pipe(t, o, pl)
	p.Push(ev("c", 0))
	pl.waitFor(t, "the first batch to be held", func() bool { return pl.requests == 1 })
	for i := 1; i < 100; i++ {
		p.Push(ev("c", i))
	}
	if s := p.Stats(); s.Dropped.Overflow != 0 {
		t.Fatalf("stats %+v: want nothing dropped", s)
	}
	poll(t, "events spooled", func() bool { return p.Stats().Spooled > 0 })
	g.open()
	allArrived(t, pl, []string{"c"}, 100)
	closeWithin(t, p)
}

// TestDurableByteBound: beyond the spool's bytes the oldest events are
// dropped and counted; what is left arrives in order.
func TestDurableByteBound(t *testing.T) {
	// The first pipeline's plugin is down for good and the second one's is
	// another server: Close cuts short the spool's send in flight, and the
	// server may still handle that request after Close returned. Had the
	// same plugin come back up meanwhile, it would take a batch the first
	// pipeline read from the spool before newer events pushed it out.
	var down atomic.Bool
	down.Store(true)
	gone := downPlugin(t, &down)
	dir := t.TempDir()
	sp := openSpool(t, dir, 2000)
	p := New(durableOpts(sp), encode, gone.send)
	pushRound(p, []string{"c"}, 0, 200)
	closeWithin(t, p)
	s := p.Stats()
	if s.Dropped.Spool == 0 || s.Spooled != 200 {
		t.Fatalf("stats %+v: want 200 spooled, some dropped for the byte bound", s)
	}
	kept := sp.Stats().Records
	if uint64(kept)+s.Dropped.Spool != 200 {
		t.Fatalf("%d kept + %d dropped != 200", kept, s.Dropped.Spool)
	}
	pl := newPlugin(t, 0, nil)
	p = New(durableOpts(sp), encode, pl.send)
	pl.waitFor(t, "the kept events", func() bool { return distinct(pl.seqsLocked("c")) >= kept })
	closeWithin(t, p)
	sp.Close()
	got, _ := pl.firstSeen("c")
	wantInts(t, "the newest events", got, upTo(200)[200-kept:]...)
}

// TestDurableSendCutShortIsSpooled: a batch whose send outlives Close's
// deadline is spooled, not dropped.
func TestDurableSendCutShortIsSpooled(t *testing.T) {
	_, pl := holdingFirst(t)
	sp := openSpool(t, t.TempDir(), 0)
	defer sp.Close()
	p := New(durableOpts(sp), encode, pl.send)
	p.Push(ev("c", 0))
	pl.waitFor(t, "the batch to be held", func() bool { return pl.requests == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = p.Close(ctx)
	if s := p.Stats(); s.Dropped != (Drops{}) || s.Spooled != 1 || sp.Stats().Records != 1 {
		t.Fatalf("stats %+v, spool %+v: want the held event spooled", s, sp.Stats())
	}
}

// TestDurableGateAndKeep: with the gate shut, SpoolAll sends every event
// to the spool and nothing reaches the (healthy) plugin; once it opens, the
// spool is delivered through Keep, in order, and the lanes go back to
// memory for what follows.
func TestDurableGateAndKeep(t *testing.T) {
	var down atomic.Bool
	pl := downPlugin(t, &down)
	sp := openSpool(t, t.TempDir(), 0)
	defer sp.Close()
	gate := make(chan struct{})
	o := durableOpts(sp)
	o.Gate = gate
	o.Keep = func(js []byte) bool { return !bytes.Contains(js, []byte(`"seq":3`)) } // seq 3, 30..39 unwanted
	p := New(o, encode, pl.send)
	p.SpoolAll()
	pushRound(p, []string{"a", "b"}, 0, 50)
	poll(t, "100 events spooled", func() bool { return p.Stats().Spooled == 100 })
	if n := len(pl.seqs("a")) + len(pl.seqs("b")); n != 0 {
		t.Fatalf("%d events sent with the gate shut", n)
	}
	close(gate)
	var want []uint64
	for i := range uint64(50) {
		if i != 3 && i/10 != 3 {
			want = append(want, i)
		}
	}
	pl.waitFor(t, "the wanted events", func() bool {
		return distinct(pl.seqsLocked("a")) >= len(want) && distinct(pl.seqsLocked("b")) >= len(want)
	})
	poll(t, "the spool emptied", func() bool { return sp.Stats().Records == 0 })
	pushRound(p, []string{"a"}, 50, 60)
	pl.waitFor(t, "the later events", func() bool { return distinct(pl.seqsLocked("a")) >= len(want)+10 })
	closeWithin(t, p)
	for _, c := range []string{"a", "b"} {
		got, _ := pl.firstSeen(c)
		w := slices.Clone(want)
		if c == "a" {
			w = append(w, upTo(60)[50:]...)
		}
		wantInts(t, c, got, w...)
	}
	if s := p.Stats(); s.Unwanted != 22 {
		t.Fatalf("stats %+v: want 22 unwanted (seq 3 and 30-39, two clients)", s)
	}
}

package mqtt

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// retire gives back exactly the ids the collect-then-find-and-done passes
// (resendInflight, takeShared) give back, on rings built by random pushes
// and out-of-order acks, wrapped and grown: the same live entries remain,
// in the same order, with the same counts, and fn sees every live entry
// once, in send order, with its delivery intact.
func TestInflightRetireMatchesCollectAndDone(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 2000 {
		window := 1 + rng.IntN(8)
		var a, b inflightRing
		pid := uint16(0)
		for range rng.IntN(40) {
			if a.full(window) || (a.live > 0 && rng.IntN(3) == 0) {
				// an ack, in order or not
				var live []uint16
				a.each(func(e *inflightEntry) { live = append(live, e.pid) })
				p := live[rng.IntN(len(live))]
				a.done(a.find(p))
				b.done(b.find(p))
				continue
			}
			pid++
			e := inflightEntry{pid: pid, state: awaitAck, d: delivery{qos: 1, group: map[bool]string{true: "g"}[rng.IntN(2) == 0]}}
			a.push(window, e)
			b.push(window, e)
		}
		drop := func(e *inflightEntry) bool { return e.d.group != "" || e.pid%3 == 0 }

		// The old way: collect, then find and done each.
		var gone []uint16
		a.each(func(e *inflightEntry) {
			if drop(e) {
				gone = append(gone, e.pid)
			}
		})
		for _, p := range gone {
			if e := a.find(p); e != nil {
				a.done(e)
			}
		}
		// The new way.
		var seen, retired []uint16
		var wantSeen []uint16
		b.each(func(e *inflightEntry) { wantSeen = append(wantSeen, e.pid) })
		b.retire(func(e *inflightEntry) bool {
			seen = append(seen, e.pid)
			if e.d.qos != 1 {
				t.Fatalf("round %d: fn saw entry %d without its delivery", round, e.pid)
			}
			if drop(e) {
				retired = append(retired, e.pid)
				return true
			}
			return false
		})

		if !slices.Equal(seen, wantSeen) || !slices.Equal(retired, gone) {
			t.Fatalf("round %d: retire visited %v and retired %v; live were %v, the old pass retired %v", round, seen, retired, wantSeen, gone)
		}
		var la, lb []uint16
		a.each(func(e *inflightEntry) { la = append(la, e.pid) })
		b.each(func(e *inflightEntry) { lb = append(lb, e.pid) })
		if !slices.Equal(la, lb) || a.live != b.live || a.n != b.n || a.head != b.head {
			t.Fatalf("round %d: after retire live %v (live %d, n %d, head %d); the old pass leaves %v (live %d, n %d, head %d)",
				round, lb, b.live, b.n, b.head, la, a.live, a.n, a.head)
		}
		for i := range b.n {
			if e := b.ents[(b.head+i)%len(b.ents)]; e.state == entryDone && (e.d.qos != 0 || e.d.group != "") {
				t.Fatalf("round %d: a retired entry keeps its delivery", round)
			}
		}
	}
}

package jsstore

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/store"
)

// TestBodyCacheBound: the cache never holds more bytes than its bound,
// drops the least recently used record first, counts each eviction, does
// not keep a record larger than the bound, and forgets the records below
// a purge.
func TestBodyCacheBound(t *testing.T) {
	m := NewMetrics()
	rec := func(i int) string { return fmt.Sprintf("r%02d", i) }
	data := bytes.Repeat([]byte{7}, 200)
	per := (&cachedBody{rec: rec(0), data: data}).size()
	c := newBodyCache(3*per+per/2, m) // room for three
	for i := range 10 {
		c.put(rec(i), uint64(100+i), data)
		if n, b := c.held(); b > c.max || n > 3 {
			t.Fatalf("after %d records: %d held, %d bytes, bound %d", i+1, n, b, c.max)
		}
	}
	if got := counter(m.bodyEvictions); got != 7 {
		t.Fatalf("%v evictions counted, want 7", got)
	}
	for i := range 7 {
		if _, ok := c.get(rec(i)); ok {
			t.Fatalf("%s still held", rec(i))
		}
	}
	// Used last: r07 stays, r08 goes.
	if d, ok := c.get(rec(7)); !ok || !bytes.Equal(d, data) {
		t.Fatal("r07 not held")
	}
	c.put(rec(10), 110, data)
	if _, ok := c.get(rec(8)); ok {
		t.Fatal("r08, used least recently, still held")
	}
	if _, ok := c.get(rec(7)); !ok {
		t.Fatal("r07, used lately, evicted")
	}
	if hits, misses := counter(m.bodyHits), counter(m.bodyMisses); hits != 2 || misses != 8 {
		t.Fatalf("%v hits, %v misses counted, want 2 and 8", hits, misses)
	}
	// Larger than the bound: not kept, nothing evicted for it.
	c.put("big", 111, make([]byte, c.max))
	if _, ok := c.get("big"); ok || counter(m.bodyEvictions) != 8 {
		t.Fatalf("a record over the bound kept, or evicted others (%v evictions)", counter(m.bodyEvictions))
	}
	c.dropBelow(110)
	if n, _ := c.held(); n != 1 {
		t.Fatalf("%d records held after dropping those below 110, want 1", n)
	}
	if _, ok := c.get(rec(10)); !ok {
		t.Fatal("r10, at 110, dropped")
	}
	var none *bodyCache // a cache of 0 bytes keeps nothing
	none.put("x", 1, data)
	if _, ok := none.get("x"); ok || newBodyCache(0, nil) != nil {
		t.Fatal("the nil cache kept a record")
	}

	// Through the store: many shared messages written through a small
	// cache, which stays within its bound and counts what it drops,
	// and reads back the same.
	ns := startNATS(t, t.TempDir(), -1)
	m2 := NewMetrics()
	s := open(t, connect(t, ns.ClientURL()), Options{BodyCacheBytes: 8 << 10, Metrics: m2})
	const n = 40
	for i := range n {
		var b store.Batch
		b.Enqueue(bigMsg(i, 1000), []store.Delivery{{ClientID: "x", QoS: 1}, {ClientID: "y", QoS: 1}})
		commit(t, s, &b)
		if _, b := s.bodies.held(); b > 8<<10 {
			t.Fatalf("after %d commits the cache holds %d bytes", i+1, b)
		}
	}
	held, _ := s.bodies.held()
	if held == 0 || counter(m2.bodyEvictions) != float64(n-held) {
		t.Fatalf("%d records held, %v evictions counted, %d written", held, counter(m2.bodyEvictions), n)
	}
	for _, id := range []string{"x", "y"} {
		got, _ := payloads(t, s, id)
		if len(got) != n {
			t.Fatalf("%s reads %d of %d", id, len(got), n)
		}
		for i, p := range got {
			if p != string(bigMsg(i, 1000).Payload) {
				t.Fatalf("%s entry %d differs", id, i)
			}
		}
		if _, b := s.bodies.held(); b > 8<<10 {
			t.Fatalf("after reading %s the cache holds %d bytes", id, b)
		}
	}
}

// queued is the whole of a session's queue, read in pages of 7, as text
// to compare: seq, QoS, topic, payload of each entry.
func queued(t testing.TB, s *Store, id string) []string {
	t.Helper()
	var out []string
	eachQueued(t, s, id, func(e store.Queued) {
		out = append(out, fmt.Sprintf("%d %d %s %q", e.Seq, e.QoS, e.Msg.Topic, e.Msg.Payload))
	})
	return out
}

// TestBodyCacheSameMessages: sessions read the same queues through a
// store that wrote the messages (its cache filled by the writes), one
// that read them before (filled by the reads), one without a cache and a
// new one, after shared and inline messages are queued, after some are
// acknowledged and the bodies reclaimed by the store without a cache
// (the caches still hold the purged bodies), after the queues are
// rewritten with their messages inline, and after a session is deleted.
// The sessions reading a backlog another read before fetch no body
// record, nor does the store that wrote them.
func TestBodyCacheSameMessages(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	mw, mr := NewMetrics(), NewMetrics()
	w := open(t, connect(t, ns.ClientURL()), Options{LaggardAge: -1, Metrics: mw})
	r := open(t, connect(t, ns.ClientURL()), Options{LaggardAge: -1, Metrics: mr})
	mu := NewMetrics()
	u := open(t, connect(t, ns.ClientURL()), Options{LaggardAge: -1, BodyCacheBytes: -1, Metrics: mu})
	ids := []string{"a", "b", "c"}
	const n = 300 // more than a bucket
	next := 0
	for next < n {
		enqueue(t, w, next, 30, ids...)
		enqueue(t, w, next+30, 3, "a") // inline, between shared ones
		next += 33
	}
	compare := func(stage string) {
		t.Helper()
		fresh := open(t, connect(t, ns.ClientURL()), Options{LaggardAge: -1})
		for _, id := range ids {
			want := queued(t, u, id)
			for k, st := range []*Store{w, r, fresh} {
				if got := queued(t, st, id); !slices.Equal(got, want) {
					t.Fatalf("%s: %s reads %d entries through store %d, %d without a cache\n%v\n%v", stage, id, len(got), k, len(want), got, want)
				}
			}
		}
	}
	// The writer's reads fetch nothing; another store's sessions fetch
	// each body once between them.
	if got := queued(t, w, "a"); len(got) != next {
		t.Fatalf("a reads %d of %d", len(got), next)
	}
	if got := counter(mw.bodyMisses); got != 0 || counter(mw.bodyHits) == 0 {
		t.Fatalf("the writer fetched %v body records (%v from its cache)", got, counter(mw.bodyHits))
	}
	queued(t, r, "a")
	fetched := counter(mr.bodyMisses)
	if fetched == 0 {
		t.Fatal("a new store found bodies in its cache before reading any")
	}
	queued(t, r, "b")
	queued(t, r, "c")
	if got := counter(mr.bodyMisses); got != fetched {
		t.Fatalf("b and c fetched %v body records that a read before", got-fetched)
	}
	compare("queued")

	// Some acknowledged (the first bucket of each queue, and a random
	// third of the rest of b's and c's), and the bodies no chunk refers
	// to purged.
	rnd := rand.New(rand.NewPCG(1, 2))
	var bt store.Batch
	for seq := uint64(1); seq <= uint64(next); seq++ {
		for _, id := range ids {
			if seq <= bucketSize+10 || (id != "a" && rnd.IntN(3) == 0) {
				bt.Ack(id, seq)
			}
		}
	}
	commit(t, u, &bt)
	recs := count(t, u, "m.>")
	reclaim(t, u)
	if count(t, u, "m.>") >= recs {
		t.Fatal("nothing reclaimed")
	}
	compare("acknowledged and reclaimed")

	// Rewritten inline: every body goes.
	reclaimAge(t, u, time.Nanosecond)
	if c := count(t, u, "m.>"); c != 0 || counter(mu.laggards) == 0 {
		t.Fatalf("%d body records left, %v queues rewritten", c, counter(mu.laggards))
	}
	compare("rewritten")

	// More, then a session deleted and one emptied.
	enqueue(t, w, next, 40, ids...)
	next += 40
	compare("queued after the rewrite")
	bt.Reset()
	bt.DeleteSession("b")
	for seq := uint64(1); seq <= uint64(next); seq++ {
		bt.Ack("c", seq)
	}
	commit(t, r, &bt)
	compare("deleted")
	if got := queued(t, w, "b"); len(got) != 0 {
		t.Fatalf("deleted session reads %d entries", len(got))
	}
	// The writer purging the bodies forgets them: with no q chunk
	// left (a's messages after the rewrite are the only ones it still
	// refers to, until acknowledged), nothing below the stream's end.
	bt.Reset()
	for seq := uint64(1); seq <= uint64(next); seq++ {
		bt.Ack("a", seq)
	}
	commit(t, w, &bt)
	reclaim(t, w)
	if held, _ := w.bodies.held(); held != 0 || count(t, w, "m.>") != 0 {
		t.Fatalf("after every body was purged the writer's cache holds %d records (%d in the stream)", held, count(t, w, "m.>"))
	}
}

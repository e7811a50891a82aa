package jsstore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mqttd/mqttd/internal/store"
)

// streamState is what the stream holds: messages and bytes.
func streamState(t testing.TB, s *Store) (msgs, bytes uint64) {
	t.Helper()
	js, err := jetstream.New(s.nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(context.Background(), s.stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs, info.State.Bytes
}

// count is the number of messages on subjects matching pattern (after the
// store's prefix).
func count(t testing.TB, s *Store, pattern string) int {
	t.Helper()
	n := 0
	if _, err := s.each(context.Background(), s.p+pattern, 0, 256, func(_ string, _ uint64, data []byte) bool {
		if len(data) > 0 { // not a tombstone
			n++
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func reclaim(t testing.TB, s *Store) { reclaimAge(t, s, s.opts.LaggardAge) }

func reclaimAge(t testing.TB, s *Store, laggardAge time.Duration) {
	t.Helper()
	if err := s.reclaimBodies(context.Background(), laggardAge); err != nil {
		t.Fatal(err)
	}
}

func bigMsg(i, size int) *store.MessageRecord {
	p := bytes.Repeat([]byte{byte(i)}, size)
	copy(p, fmt.Sprint("payload ", i, " "))
	return &store.MessageRecord{Topic: fmt.Sprint("t/", i), Payload: p, QoS: 1}
}

// TestBodyStoredOnce: a message queued for N sessions adds its payload to
// the stream once, in one body record, and every session reads it back;
// a message for one session stays in its chunk (no body record).
func TestBodyStoredOnce(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	s := open(t, connect(t, ns.ClientURL()), Options{})
	const size = 20_000
	for _, n := range []int{1, 2, 10, 100} {
		var ids []string
		for i := range n {
			ids = append(ids, fmt.Sprint("n", n, "-", i))
		}
		_, before := streamState(t, s)
		recs := count(t, s, "m.>")
		var b store.Batch
		var ds []store.Delivery
		for _, id := range ids {
			ds = append(ds, store.Delivery{ClientID: id, QoS: 1})
		}
		b.Enqueue(bigMsg(n, size), ds)
		commit(t, s, &b)
		_, after := streamState(t, s)
		added := int(after - before)
		// The payload once, and per session a head and a chunk with a
		// reference (a few hundred bytes with the stream's overhead).
		if added < size || added > size+1000+n*400 {
			t.Fatalf("%d sessions: %d bytes added to the stream for a %d byte payload", n, added, size)
		}
		wantRecs := 1
		if n == 1 {
			wantRecs = 0
		}
		if got := count(t, s, "m.>") - recs; got != wantRecs {
			t.Fatalf("%d sessions: %d body records written, want %d", n, got, wantRecs)
		}
		for _, id := range ids {
			q, err := s.Scan(id, 0, 10)
			if err != nil || len(q) != 1 || !bytes.Equal(q[0].Msg.Payload, bigMsg(n, size).Payload) || q[0].Msg.Topic != fmt.Sprint("t/", n) {
				t.Fatalf("%s: %d entries, %v", id, len(q), err)
			}
		}
	}
	// One Enqueue naming one session twice is not shared.
	var b store.Batch
	b.Enqueue(msg(1), []store.Delivery{{ClientID: "twice", QoS: 1}, {ClientID: "twice", QoS: 0}})
	recs := count(t, s, "m.>")
	commit(t, s, &b)
	if got := count(t, s, "m.>"); got != recs {
		t.Fatalf("a message queued twice for one session wrote %d body records", got-recs)
	}
	if q, err := s.Scan("twice", 0, 10); err != nil || len(q) != 2 || q[1].QoS != 0 || string(q[1].Msg.Payload) != "payload 1" {
		t.Fatalf("twice: %+v %v", q, err)
	}
}

// TestBodiesReclaimed: sessions acknowledge a shared backlog in a random
// order, in several commits from two stores; the bodies stay readable to
// the sessions that still hold them whenever the reclaiming runs, and
// are all gone once every session has acknowledged.
func TestBodiesReclaimed(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	for seed := range 3 {
		r := rand.New(rand.NewPCG(uint64(seed), 11))
		prefix := fmt.Sprint("r", seed)
		// No cache: the reads must find every body they need in the
		// stream.
		a := open(t, connect(t, ns.ClientURL()), Options{Prefix: prefix, BodyCacheBytes: -1})
		b := open(t, connect(t, ns.ClientURL()), Options{Prefix: prefix, BodyCacheBytes: -1})
		ids := []string{"x", "y", "z"}
		const n = 300 // more than a bucket
		for i := 0; i < n; i += 30 {
			enqueue(t, a, i, 30, ids...)
		}
		type ack struct {
			id  string
			seq uint64
		}
		var acks []ack
		for _, id := range ids {
			for seq := uint64(1); seq <= n; seq++ {
				acks = append(acks, ack{id, seq})
			}
		}
		r.Shuffle(len(acks), func(i, j int) { acks[i], acks[j] = acks[j], acks[i] })
		acked := map[string]int{}
		for len(acks) > 0 {
			k := min(len(acks), 1+r.IntN(200))
			st := []*Store{a, b}[r.IntN(2)]
			var bt store.Batch
			for _, x := range acks[:k] {
				bt.Ack(x.id, x.seq)
				acked[x.id]++
			}
			commit(t, st, &bt)
			acks = acks[k:]
			reclaim(t, []*Store{a, b}[r.IntN(2)])
			for _, id := range ids {
				got, _ := payloads(t, a, id)
				if len(got) != n-acked[id] {
					t.Fatalf("seed %d: %s reads %d entries, %d queued", seed, id, len(got), n-acked[id])
				}
			}
		}
		reclaim(t, b)
		if c := count(t, a, "m.>"); c != 0 {
			t.Fatalf("seed %d: %d body records left after every session acknowledged", seed, c)
		}
		if c := count(t, a, "*.*.*.*.*"); c != 0 {
			t.Fatalf("seed %d: %d chunks left after every session acknowledged", seed, c)
		}
	}
}

// TestBodiesKeptForIdleSession: a session that acknowledges nothing keeps
// its messages, whatever the others do and however often the bodies are
// reclaimed, and a second store (another node) reads them, before and
// after reclaiming itself; the first store closing without reclaiming
// loses nothing either.
func TestBodiesKeptForIdleSession(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	a := open(t, connect(t, ns.ClientURL()), Options{LaggardAge: -1, BodyCacheBytes: -1})
	seqs := enqueue(t, a, 0, 40, "busy", "idle")
	enqueue(t, a, 40, 10, "idle", "other")
	var bt store.Batch
	for _, seq := range seqs["busy"] {
		bt.Ack("busy", seq)
	}
	bt.DeleteSession("other")
	commit(t, a, &bt)
	reclaim(t, a)
	want := func(st *Store) {
		t.Helper()
		got, seqs := payloads(t, st, "idle")
		if len(got) != 50 || seqs[0] != 1 || seqs[49] != 50 {
			t.Fatalf("idle reads %d entries", len(got))
		}
		for i, p := range got {
			if p != fmt.Sprint("payload ", i) {
				t.Fatalf("idle entry %d: %q", i, p)
			}
		}
	}
	want(a)
	enqueue(t, a, 50, 5, "busy", "new")
	a.Close() // a process stopping between its commits and any reclaiming
	b := open(t, connect(t, ns.ClientURL()), Options{LaggardAge: -1, BodyCacheBytes: -1})
	want(b)
	reclaim(t, b)
	want(b)
	if got, _ := payloads(t, b, "new"); len(got) != 5 {
		t.Fatalf("new reads %d entries", len(got))
	}
	if c := count(t, b, "m.>"); c == 0 {
		t.Fatal("no body record left while idle holds shared messages")
	}
	bt.Reset()
	bt.DeleteSession("idle")
	bt.DeleteSession("new")
	bt.DeleteSession("busy")
	commit(t, b, &bt)
	reclaim(t, b)
	if c := count(t, b, "m.>"); c != 0 {
		t.Fatalf("%d body records left after the sessions were deleted", c)
	}
}

// TestReclaimRacesCommits: reclaiming runs in a loop, from two stores,
// while a third enqueues shared messages and acknowledges them in two of
// three sessions, and Scans read all three: every Scan resolves every
// message (a body is never purged while a chunk refers to it).
func TestReclaimRacesCommits(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	// No cache: every Scan reads the bodies from the stream.
	w := open(t, connect(t, ns.ClientURL()), Options{BodyCacheBytes: -1})
	gc := []*Store{open(t, connect(t, ns.ClientURL()), Options{BodyCacheBytes: -1}), open(t, connect(t, ns.ClientURL()), Options{BodyCacheBytes: -1})}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for _, g := range gc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := g.reclaimBodies(context.Background(), g.opts.LaggardAge); err != nil {
					select {
					case <-stop: // the test failed and is closing
					default:
						t.Error(err)
					}
					return
				}
			}
		}()
	}
	next := 0
	for round := range 15 {
		seqs := enqueue(t, w, next, 10, "a", "b", "keep")
		next += 10
		var bt store.Batch
		for _, seq := range seqs["a"] {
			bt.Ack("a", seq)
		}
		for _, seq := range seqs["b"][:5] {
			bt.Ack("b", seq)
		}
		commit(t, w, &bt)
		reader := gc[round%2]
		if got, _ := payloads(t, reader, "keep"); len(got) != next {
			t.Fatalf("round %d: keep reads %d of %d", round, len(got), next)
		}
		if got, _ := payloads(t, reader, "b"); len(got) != 5*(round+1) {
			t.Fatalf("round %d: b reads %d", round, len(got))
		}
	}
	got, _ := payloads(t, w, "keep")
	for i, p := range got {
		if p != fmt.Sprint("payload ", i) {
			t.Fatalf("keep entry %d: %q", i, p)
		}
	}
}

// TestLaggard: sessions that acknowledge nothing hold the bodies back
// until their oldest chunk is older than LaggardAge; then their queues are
// rewritten with the messages inline, the bodies go, and the queue reads
// the same, from this store and a fresh one, and goes on taking
// messages and acknowledgements (from the store that knew its head
// before the rewrite). Too many chunks to rewrite in one batch: left,
// counted.
func TestLaggard(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	m := NewMetrics()
	s := open(t, connect(t, ns.ClientURL()), Options{LaggardAge: time.Hour, Metrics: m, BodyCacheBytes: -1})
	const n = 300
	var seqs map[string][]uint64
	for i := 0; i < n; i += 50 {
		seqs = enqueue(t, s, i, 50, "lag", "fast", "lag2", "fast2")
	}
	_ = seqs
	var bt store.Batch
	for seq := uint64(1); seq <= n; seq++ {
		bt.Ack("fast", seq)
		bt.Ack("fast2", seq)
		if seq%7 == 0 || seq < 20 {
			bt.Ack("lag", seq) // some acknowledged, not the oldest bucket
		}
	}
	commit(t, s, &bt)
	var want []uint64
	for seq := uint64(20); seq <= n; seq++ {
		if seq%7 != 0 {
			want = append(want, seq)
		}
	}
	check := func(st *Store) {
		t.Helper()
		got, seqs := payloads(t, st, "lag")
		if !slices.Equal(seqs, want) {
			t.Fatalf("lag seqs %v, want %v", seqs, want)
		}
		for i, p := range got {
			if p != fmt.Sprint("payload ", seqs[i]-1) {
				t.Fatalf("lag entry %d: %q", seqs[i], p)
			}
		}
		if q, _ := st.QueueLen("lag"); q != len(want) {
			t.Fatalf("QueueLen %d, want %d", q, len(want))
		}
	}
	reclaim(t, s)
	if c := count(t, s, "m.>"); c == 0 {
		t.Fatal("bodies reclaimed while the laggard is young")
	}
	check(s)
	// A Scan part way leaves a hint into the old chunks.
	if q, err := s.Scan("lag", 0, 3); err != nil || len(q) != 3 {
		t.Fatal(q, err)
	}
	before := count(t, s, "q.>")
	if before == 0 || count(t, s, "p.>") != 0 {
		t.Fatalf("%d q chunks, %d p chunks before the rewrite", before, count(t, s, "p.>"))
	}
	reclaimAge(t, s, time.Nanosecond)
	if c := count(t, s, "m.>"); c != 0 {
		t.Fatalf("%d body records left after the laggard was rewritten", c)
	}
	// Both laggards, in one pass.
	if got := counter(m.laggards); got != 2 {
		t.Fatalf("%v laggard rewrites counted", got)
	}
	if got, _ := payloads(t, s, "lag2"); len(got) != n || got[n-1] != fmt.Sprint("payload ", n-1) {
		t.Fatalf("lag2 reads %d entries", len(got))
	}
	if q, p := count(t, s, "q.>"), count(t, s, "p.>"); q != 0 || p != before {
		t.Fatalf("%d q chunks before the rewrite; %d q and %d p chunks after", before, q, p)
	}
	// The hint still holds: the rewritten chunks are later in the stream.
	q, err := s.Scan("lag", want[3], 5)
	if err != nil || len(q) != 5 || q[0].Seq != want[3] || q[4].Seq != want[7] {
		t.Fatalf("Scan from a hint older than the rewrite: %d entries, %v", len(q), err)
	}
	check(s)
	check(open(t, connect(t, ns.ClientURL()), Options{LaggardAge: -1}))
	// The rewritten queue holds nothing back: it is not rewritten again.
	reclaimAge(t, s, time.Nanosecond)
	if got := counter(m.laggards); got != 2 {
		t.Fatalf("%v laggard rewrites counted after a second pass", got)
	}
	check(s)
	more := enqueue(t, s, n, 5, "lag", "fast")
	want = append(want, more["lag"]...)
	check(s)
	bt.Reset()
	for _, seq := range want[:100] {
		bt.Ack("lag", seq)
	}
	commit(t, s, &bt)
	want = want[100:]
	check(s)

	// Too many chunks for one batch.
	m2 := NewMetrics()
	small := open(t, connect(t, ns.ClientURL()), Options{Prefix: "small", MaxBatch: 5, LaggardAge: -1, Metrics: m2})
	for i := range 8 {
		enqueue(t, small, i, 1, "lag", "fast")
	}
	reclaimAge(t, small, time.Nanosecond)
	if got := counter(m2.laggardTooBig); got != 1 {
		t.Fatalf("%v too-big laggards counted", got)
	}
	if got, _ := payloads(t, small, "lag"); len(got) != 8 {
		t.Fatalf("lag reads %d", len(got))
	}
}

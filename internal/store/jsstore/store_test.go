package jsstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mqttd/mqttd/internal/store"
)

func commit(t testing.TB, s *Store, b *store.Batch) {
	t.Helper()
	if err := s.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

func msg(i int) *store.MessageRecord {
	return &store.MessageRecord{Topic: "t/" + fmt.Sprint(i), Payload: []byte(fmt.Sprint("payload ", i)), QoS: 1}
}

// enqueue commits n messages for the sessions ids, one batch, and returns
// the seqs handed to each id.
func enqueue(t testing.TB, s *Store, first, n int, ids ...string) map[string][]uint64 {
	t.Helper()
	var b store.Batch
	var all [][]store.Delivery
	for i := first; i < first+n; i++ {
		var ds []store.Delivery
		for _, id := range ids {
			ds = append(ds, store.Delivery{ClientID: id, QoS: 1})
		}
		b.Enqueue(msg(i), ds)
		all = append(all, ds)
	}
	commit(t, s, &b)
	seqs := map[string][]uint64{}
	for _, ds := range all {
		for _, d := range ds {
			seqs[d.ClientID] = append(seqs[d.ClientID], d.Seq)
		}
	}
	return seqs
}

// payloads reads all of id's queue, 7 at a time, checking the seqs grow.
func payloads(t testing.TB, s *Store, id string) ([]string, []uint64) {
	t.Helper()
	var out []string
	var seqs []uint64
	eachQueued(t, s, id, func(e store.Queued) {
		if len(seqs) > 0 && e.Seq <= seqs[len(seqs)-1] {
			t.Fatalf("%s: seq %d after %d", id, e.Seq, seqs[len(seqs)-1])
		}
		out = append(out, string(e.Msg.Payload))
		seqs = append(seqs, e.Seq)
	})
	return out, seqs
}

// eachQueued calls f with each entry of id's queue, read in pages of 7.
func eachQueued(t testing.TB, s *Store, id string, f func(store.Queued)) {
	t.Helper()
	from := uint64(0)
	for {
		q, err := s.Scan(id, from, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(q) == 0 {
			return
		}
		for _, e := range q {
			f(e)
		}
		from = q[len(q)-1].Seq + 1
	}
}

func messageCount(t testing.TB, s *Store) int {
	t.Helper()
	n, err := s.MessageCount()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHandover: writer A fills a session; writer B, another store on
// another connection, loads it, continues it and acknowledges; seqs keep
// growing across the two, and nothing is lost or freed early.
func TestHandover(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	ma := NewMetrics()
	a := open(t, connect(t, ns.ClientURL()), Options{Metrics: ma})
	b := open(t, connect(t, ns.ClientURL()), Options{})

	var bt store.Batch
	bt.PutSession(&store.SessionRecord{ClientID: "x", Version: 5, Expiry: store.NeverExpires, Subs: []store.SubscriptionRecord{{Filter: "t/#", QoS: 1}}})
	bt.SetInflight("x", store.InflightRecord{PacketID: 7, Seq: 1, State: store.AwaitAck})
	bt.AddQoS2In("x", 3)
	commit(t, a, &bt)
	// Shared with y, so the bodies must outlive x's acknowledgements.
	seqA := enqueue(t, a, 0, 10, "x", "y")
	if !slices.Equal(seqA["x"], []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
		t.Fatalf("A's seqs %v", seqA["x"])
	}

	// B takes the session over.
	rec, err := b.Session("x")
	if err != nil || rec == nil || rec.Subs[0].Filter != "t/#" {
		t.Fatalf("Session: %+v %v", rec, err)
	}
	if r, err := b.Session("nobody"); r != nil || err != nil {
		t.Fatalf("absent session: %+v %v", r, err)
	}
	if inf, _ := b.Inflight("x"); len(inf) != 1 || inf[0].PacketID != 7 {
		t.Fatalf("Inflight %+v", inf)
	}
	if q2, _ := b.QoS2In("x"); !slices.Equal(q2, []uint16{3}) {
		t.Fatalf("QoS2In %v", q2)
	}
	got, _ := payloads(t, b, "x")
	if len(got) != 10 || got[0] != "payload 0" || got[9] != "payload 9" {
		t.Fatalf("B reads %q", got)
	}
	seqB := enqueue(t, b, 10, 5, "x")
	if !slices.Equal(seqB["x"], []uint64{11, 12, 13, 14, 15}) {
		t.Fatalf("B's seqs %v", seqB["x"])
	}
	bt.Reset()
	for _, seq := range seqA["x"] {
		bt.Ack("x", seq)
	}
	bt.ClearInflight("x", 7)
	commit(t, b, &bt)
	if n, _ := b.QueueLen("x"); n != 5 {
		t.Fatalf("QueueLen %d after B acked A's entries", n)
	}
	if n := messageCount(t, b); n != 15 {
		t.Fatalf("%d bodies, want 10 (still y's) + 5", n)
	}

	// A, still remembering the session as it left it, writes again (it
	// should not; the store must not let stale memory break the queue).
	seqA2 := enqueue(t, a, 15, 1, "x")
	if !slices.Equal(seqA2["x"], []uint64{16}) {
		t.Fatalf("stale writer got seq %v, want 16", seqA2["x"])
	}
	if n := counter(ma.conflicts); n != 1 {
		t.Fatalf("%v conflicts counted, want 1", n)
	}
	got, seqs := payloads(t, a, "x")
	if want := []string{"payload 10", "payload 11", "payload 12", "payload 13", "payload 14", "payload 15"}; !slices.Equal(got, want) {
		t.Fatalf("queue %q seqs %v", got, seqs)
	}
	// y's references go last, from A: bodies freed with them.
	bt.Reset()
	for _, seq := range seqA["y"] {
		bt.Ack("y", seq)
	}
	bt.Ack("y", seqA["y"][0]) // twice: nothing more happens
	commit(t, a, &bt)
	if n := messageCount(t, b); n != 6 {
		t.Fatalf("%d bodies after the last references went, want 6", n)
	}
	if n, _ := a.QueueLen("y"); n != 0 {
		t.Fatalf("y QueueLen %d", n)
	}
	bt.Reset()
	bt.DeleteSession("x")
	commit(t, b, &bt)
	if n := messageCount(t, a); n != 0 {
		t.Fatalf("%d bodies after DeleteSession", n)
	}
	if q, _ := a.Scan("x", 0, 100); len(q) != 0 {
		t.Fatalf("deleted queue scans %d", len(q))
	}
	if s := enqueue(t, a, 0, 1, "x"); s["x"][0] != 1 {
		t.Fatalf("recreated queue starts at %d", s["x"][0])
	}
}

// TestServerRestart: what was committed survives the JetStream server
// stopping and starting again on the same directory; a commit while it is
// away fails, and is not applied afterwards.
func TestServerRestart(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, dir, -1)
	port := ns.Addr().(*net.TCPAddr).Port
	nc := connect(t, ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	m := NewMetrics()
	s := open(t, nc, Options{Timeout: 2 * time.Second, Metrics: m})
	var b store.Batch
	b.PutSession(&store.SessionRecord{ClientID: "x", Version: 4, Expiry: store.NeverExpires})
	b.PutRetained(&store.MessageRecord{Topic: "r", Payload: []byte("kept"), Retain: true})
	commit(t, s, &b)
	enqueue(t, s, 0, 50, "x", "y")

	ns.Shutdown()
	ns.WaitForShutdown()
	b.Reset()
	b.Enqueue(msg(99), []store.Delivery{{ClientID: "x"}})
	if err := s.Commit(context.Background(), &b); err == nil {
		t.Fatal("commit succeeded with the server gone")
	}
	done := make(chan error, 1)
	b2 := store.Batch{}
	b2.Ack("x", 1)
	s.CommitAsync(&b2, func(err error) { done <- err })
	if err := <-done; err == nil {
		t.Fatal("CommitAsync succeeded with the server gone")
	}
	if n := counter(m.failed); n != 2 {
		t.Fatalf("%v failures counted, want 2", n)
	}

	startNATS(t, dir, port)
	deadline := time.Now().Add(20 * time.Second)
	for !nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("no reconnect")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A fresh store on the restarted server, and the old one, agree.
	s2 := open(t, connect(t, nc.ConnectedUrl()), Options{})
	for _, st := range []*Store{s, s2} {
		got, seqs := payloads(t, st, "x")
		if len(got) != 50 || seqs[49] != 50 {
			t.Fatalf("after restart: %d entries, last seq %v", len(got), seqs[len(seqs)-1:])
		}
		if rec, err := st.Session("x"); err != nil || rec == nil {
			t.Fatalf("session after restart: %v %v", rec, err)
		}
		var ret []string
		st.Retained(func(m *store.MessageRecord) error { ret = append(ret, string(m.Payload)); return nil })
		if !slices.Equal(ret, []string{"kept"}) {
			t.Fatalf("retained %q", ret)
		}
	}
	if n := messageCount(t, s2); n != 50 {
		t.Fatalf("%d bodies", n)
	}
	if seqs := enqueue(t, s, 100, 1, "x"); seqs["x"][0] != 51 {
		t.Fatalf("next seq after restart %d", seqs["x"][0])
	}
}

// TestSplitBatch: a batch over the atomic batch limit is applied in parts,
// all of it.
func TestSplitBatch(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	m := NewMetrics()
	s := open(t, connect(t, ns.ClientURL()), Options{MaxBatch: 20, Metrics: m})
	var ids []string
	for i := range 30 {
		ids = append(ids, fmt.Sprint("c", i))
	}
	seqs := enqueue(t, s, 0, 2, ids...)
	for _, id := range ids {
		if !slices.Equal(seqs[id], []uint64{1, 2}) {
			t.Fatalf("%s seqs %v", id, seqs[id])
		}
		if got, _ := payloads(t, s, id); len(got) != 2 {
			t.Fatalf("%s: %q", id, got)
		}
	}
	if n := messageCount(t, s); n != 2 {
		t.Fatalf("%d bodies", n)
	}
	if n := counter(m.split); n != 1 {
		t.Fatalf("%v split batches counted, want 1", n)
	}
	// Each part has the body records its chunks refer to: acknowledging
	// the sessions of the first part does not take the second's.
	if c := count(t, s, "m.>"); c < 2 {
		t.Fatalf("%d body records for a commit in parts", c)
	}
	var b store.Batch
	for _, id := range ids[:10] {
		b.Ack(id, 1)
		b.Ack(id, 2)
	}
	commit(t, s, &b)
	reclaim(t, s)
	for _, id := range ids[10:] {
		if got, _ := payloads(t, s, id); len(got) != 2 || got[1] != "payload 1" {
			t.Fatalf("%s: %q", id, got)
		}
	}
	b.Reset()
	for _, id := range ids[10:] {
		b.Ack(id, 1)
		b.Ack(id, 2)
	}
	commit(t, s, &b)
	reclaim(t, s)
	if c := count(t, s, "m.>"); c != 0 {
		t.Fatalf("%d body records left", c)
	}
}

// TestAsyncOrder: callbacks of concurrent CommitAsync calls run one at a
// time in commit order, which is the order of the seqs they were given.
func TestAsyncOrder(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	s := open(t, connect(t, ns.ClientURL()), Options{})
	const n = 200
	var mu sync.Mutex
	var order []uint64
	var wg sync.WaitGroup
	running := 0
	for i := range n {
		wg.Add(1)
		b := &store.Batch{}
		ds := []store.Delivery{{ClientID: "a"}}
		b.Enqueue(msg(i), ds)
		s.CommitAsync(b, func(err error) {
			defer wg.Done()
			mu.Lock()
			running++
			if running > 1 {
				t.Error("callbacks overlap")
			}
			if err != nil {
				t.Error(err)
			}
			order = append(order, ds[0].Seq)
			running--
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(order) != n || !slices.IsSorted(order) || order[0] != 1 || order[n-1] != n {
		t.Fatalf("callback order %v", order)
	}
}

// TestScanLongQueue pages through a queue with holes from every start,
// from a store that has not read it before.
func TestScanLongQueue(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	nc := connect(t, ns.ClientURL())
	s := open(t, nc, Options{ReadBatch: 16})
	for i := 0; i < 600; i += 200 {
		enqueue(t, s, i, 200, "q")
	}
	var b store.Batch
	for seq := uint64(1); seq <= 600; seq++ {
		if seq%3 == 0 || seq > 100 && seq < 300 {
			b.Ack("q", seq)
		}
	}
	commit(t, s, &b)
	var want []uint64
	for seq := uint64(1); seq <= 600; seq++ {
		if !(seq%3 == 0 || seq > 100 && seq < 300) {
			want = append(want, seq)
		}
	}
	if _, seqs := payloads(t, s, "q"); !slices.Equal(seqs, want) {
		t.Fatalf("seqs %v", seqs)
	}
	for _, from := range []uint64{0, 3, 99, 150, 300, 598, 601} {
		fresh := open(t, nc, Options{ReadBatch: 16})
		q, err := fresh.Scan("q", from, 5)
		if err != nil {
			t.Fatal(err)
		}
		i, _ := slices.BinarySearch(want, from)
		exp := want[i:min(i+5, len(want))]
		var got []uint64
		for _, e := range q {
			got = append(got, e.Seq)
		}
		if !slices.Equal(got, exp) {
			t.Fatalf("Scan from %d: %v, want %v", from, got, exp)
		}
	}
	if n, _ := s.QueueLen("q"); n != len(want) {
		t.Fatalf("QueueLen %d, want %d", n, len(want))
	}
}

// TestClosed: after Close, commits fail with store.ErrClosed.
func TestClosed(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	s := open(t, connect(t, ns.ClientURL()), Options{})
	s.Close()
	var b store.Batch
	b.AddQoS2In("a", 1)
	if err := s.Commit(context.Background(), &b); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Commit after Close: %v", err)
	}
	ch := make(chan error, 1)
	s.CommitAsync(&b, func(err error) { ch <- err })
	if err := <-ch; !errors.Is(err, store.ErrClosed) {
		t.Fatalf("CommitAsync after Close: %v", err)
	}
}

func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestConcurrentReleases: two stores, neither of which wrote the messages,
// acknowledge at the same time the two entries each message has (one per
// session, one session per store). Every message is gone once its last
// entry is, whichever store acknowledged it: nothing shared between the
// sessions is lost to the race.
func TestConcurrentReleases(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	a := open(t, connect(t, ns.ClientURL()), Options{})
	b := open(t, connect(t, ns.ClientURL()), Options{})
	seqs := enqueue(t, open(t, connect(t, ns.ClientURL()), Options{}), 0, 120, "x", "y")
	var wg sync.WaitGroup
	for _, w := range []struct {
		s  *Store
		id string
	}{{a, "x"}, {b, "y"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for chunk := range slices.Chunk(seqs[w.id], 4) {
				var bt store.Batch
				for _, seq := range chunk {
					bt.Ack(w.id, seq)
				}
				if err := w.s.Commit(context.Background(), &bt); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := messageCount(t, a); n != 0 {
		t.Fatalf("%d bodies left after every reference went", n)
	}
	for _, id := range []string{"x", "y"} {
		if n, _ := b.QueueLen(id); n != 0 {
			t.Fatalf("%s QueueLen %d", id, n)
		}
	}
}

// TestDeleteQueues: a deleted session's queue goes, short or spanning
// several buckets, while the messages other sessions still hold stay.
func TestDeleteQueues(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	s := open(t, connect(t, ns.ClientURL()), Options{})
	const long = bucketSize*2 + 10
	seqs := enqueue(t, s, 0, long, "long", "keep")
	enqueue(t, s, long, 5, "short", "keep")
	var b store.Batch
	b.Ack("long", seqs["long"][0])
	b.DeleteSession("long")
	b.DeleteSession("short")
	commit(t, s, &b)
	if n := messageCount(t, s); n != long+5 {
		t.Fatalf("%d bodies, want the %d keep holds", n, long+5)
	}
	for _, id := range []string{"long", "short"} {
		if n, _ := s.QueueLen(id); n != 0 {
			t.Fatalf("%s QueueLen %d", id, n)
		}
	}
	b.Reset()
	b.DeleteSession("keep")
	commit(t, s, &b)
	if n := messageCount(t, s); n != 0 {
		t.Fatalf("%d bodies after every queue went", n)
	}
}

// TestScanReadSized: paging through a queue of large chunks (commits of
// 250 entries for the session) asks the server for about the chunks each
// page needs, not for one per entry wanted (which would bring every chunk
// left, up to the page's size, on each page); then through chunks of one
// entry each, the guess from the large ones too small, a page still
// takes a few requests; every entry comes, in order.
func TestScanReadSized(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	s := open(t, connect(t, ns.ClientURL()), Options{})
	const big, small = 20 * 250, 300
	for i := 0; i < big; i += 250 {
		enqueue(t, s, i, 250, "q")
	}
	for i := big; i < big+small; i++ {
		enqueue(t, s, i, 1, "q")
	}
	page := func(from uint64) ([]store.Queued, int64) {
		t.Helper()
		before := s.asked.Load()
		q, err := s.Scan("q", from, 100)
		if err != nil {
			t.Fatal(err)
		}
		return q, s.asked.Load() - before
	}
	from, n, pages := uint64(0), 0, 0
	var bigAsked, smallAsked int64
	for {
		q, asked := page(from)
		if len(q) == 0 {
			break
		}
		for _, e := range q {
			if string(e.Msg.Payload) != fmt.Sprint("payload ", n) {
				t.Fatalf("entry %d: %q", n, e.Msg.Payload)
			}
			n++
		}
		pages++
		if n <= big {
			// Beyond the first page (no guess yet): the chunk the
			// last page stopped in and about the page's worth (a
			// commit's 250 entries are cut in two at each bucket
			// boundary, so a page meets up to three chunks).
			if pages > 1 && asked > 8 {
				t.Fatalf("page %d of chunks of 250 entries asked for %d chunks", pages, asked)
			}
			bigAsked += asked
		} else {
			smallAsked += asked
		}
		from = q[len(q)-1].Seq + 1
	}
	if n != big+small {
		t.Fatalf("read %d entries of %d", n, big+small)
	}
	// Without the guess every page of the large chunks asks for 100.
	if bigAsked > 10*big/100 {
		t.Fatalf("%d chunks asked for in %d pages of large chunks", bigAsked, big/100)
	}
	t.Logf("asked for %d chunks over the large ones (%d pages), %d over %d small ones", bigAsked, big/100, smallAsked, small)
}

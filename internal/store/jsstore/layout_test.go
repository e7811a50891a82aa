package jsstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mqttd/mqttd/internal/store"
)

// TestHeadAcks: random acknowledgements against a set of the sequence
// numbers still queued; the head's floor and spans agree with it, stay
// normalised (no span touching the floor or another) and survive their
// encoding.
func TestHeadAcks(t *testing.T) {
	for seed := range 50 {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		h := newHead(3)
		queued := map[uint64]bool{}
		for step := range 400 {
			if r.IntN(3) == 0 {
				n := 1 + r.IntN(5)
				for range n {
					h.next++
					queued[h.next] = true
				}
			} else {
				seq := r.Uint64N(h.next + 3)
				if got, want := h.ack(seq), queued[seq]; got != want {
					t.Fatalf("seed %d step %d: ack(%d) = %v, queued %v", seed, step, seq, got, want)
				}
				delete(queued, seq)
			}
			if h.live() != uint64(len(queued)) {
				t.Fatalf("seed %d step %d: live %d, want %d", seed, step, h.live(), len(queued))
			}
			for seq := uint64(0); seq <= h.next+1; seq++ {
				if h.isAcked(seq) == queued[seq] {
					t.Fatalf("seed %d step %d: isAcked(%d) = %v", seed, step, seq, h.isAcked(seq))
				}
			}
			if len(queued) > 0 && !queued[h.floor] {
				t.Fatalf("seed %d step %d: floor %d not queued", seed, step, h.floor)
			}
			prev := h.floor
			for _, s := range h.acked {
				if s.lo <= prev || s.hi < s.lo {
					t.Fatalf("seed %d step %d: spans %v after floor %d", seed, step, h.acked, h.floor)
				}
				prev = s.hi + 1
			}
			back, err := decodeHead(appendHead(nil, &h))
			if err != nil || !slices.Equal(back.acked, h.acked) || back.floor != h.floor || back.next != h.next {
				t.Fatalf("seed %d step %d: decoded %+v %v, want %+v", seed, step, back, err, h)
			}
		}
	}
}

// TestPurgeAcknowledged: acknowledged chunks leave the stream a bucket at
// a time, and a deleted session's all at once, while what is queued stays
// readable.
func TestPurgeAcknowledged(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	s := open(t, connect(t, ns.ClientURL()), Options{})
	const n = 3*bucketSize + 10
	for i := 0; i < n; i += 50 {
		enqueue(t, s, i, min(50, n-i), "q")
	}
	chunks := func() int {
		c := 0
		if _, err := s.each(context.Background(), s.p+"*.*.*.*.*", 0, 256, func(string, uint64, []byte) bool { c++; return true }); err != nil {
			t.Fatal(err)
		}
		return c
	}
	before := chunks()
	var b store.Batch
	for seq := uint64(1); seq <= n-5; seq++ {
		b.Ack("q", seq)
	}
	commit(t, s, &b)
	// The floor is in the last bucket: the chunks of the three before
	// it are gone.
	after := chunks()
	if after >= before || after > 2 {
		t.Fatalf("%d chunks before the acknowledgements, %d after", before, after)
	}
	got, seqs := payloads(t, s, "q")
	if len(got) != 5 || seqs[0] != n-4 || got[4] != fmt.Sprint("payload ", n-1) {
		t.Fatalf("queue after purge: %q %v", got, seqs)
	}
	// Emptied, the queue keeps no chunk.
	b.Reset()
	for seq := uint64(n - 4); seq <= n; seq++ {
		b.Ack("q", seq)
	}
	commit(t, s, &b)
	if c := chunks(); c != 0 {
		t.Fatalf("%d chunks left in an empty queue", c)
	}
	enqueue(t, s, 0, 3, "q")
	b.Reset()
	b.DeleteSession("q")
	commit(t, s, &b)
	if c := chunks(); c != 0 {
		t.Fatalf("%d chunks left after DeleteSession", c)
	}
}

// TestOldLayoutRefused: a stream written by the previous layout (records
// but no layout record) is refused with a message saying so, and left
// alone.
func TestOldLayoutRefused(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	nc := connect(t, ns.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "old_store", Subjects: []string{"old.store.>"},
		MaxMsgsPerSubject: 1, AllowDirect: true, AllowAtomicPublish: true, AllowMsgTTL: true}); err != nil {
		t.Fatal(err)
	}
	// A session head of the old layout: version 1, generation, last
	// seq, live entries.
	if _, err := js.Publish(ctx, "old.store.h.x", []byte{1, 1, 3, 3}); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, nc, Options{Prefix: "old", Logger: quiet()})
	if err == nil || !errors.Is(err, errOldLayout) || !strings.Contains(err.Error(), "earlier mqttd") {
		t.Fatalf("Open on an old stream: %v", err)
	}
	st, _ := js.Stream(ctx, "old_store")
	info, _ := st.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("the old stream holds %d messages after the refusal, want its 1", info.State.Msgs)
	}
	// A stream of layout 2 (a message copied into each session's
	// chunk) is refused too, and left alone.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "v2_store", Subjects: []string{"v2.store.>"},
		MaxMsgsPerSubject: 1, AllowDirect: true, AllowAtomicPublish: true, AllowMsgTTL: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "v2.store.layout", []byte{2}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "v2.store.q.x.1.0.1", []byte{2, 1, 0}); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, nc, Options{Prefix: "v2", Logger: quiet()})
	if err == nil || !errors.Is(err, errLayoutV2) || !strings.Contains(err.Error(), "layout 2") {
		t.Fatalf("Open on a layout 2 stream: %v", err)
	}
	st, _ = js.Stream(ctx, "v2_store")
	if info, _ := st.Info(ctx); info.State.Msgs != 2 {
		t.Fatalf("the layout 2 stream holds %d messages after the refusal, want its 2", info.State.Msgs)
	}
	// A new stream is marked, and opens again.
	s := open(t, nc, Options{Prefix: "fresh"})
	s.Close()
	s2 := open(t, nc, Options{Prefix: "fresh"})
	if q, err := s2.Scan("x", 0, 10); err != nil || len(q) != 0 {
		t.Fatalf("Scan on a fresh store: %v %v", q, err)
	}
}

// TestLargeChunks: entries too large together for one message (the
// server's maximum payload) are stored in several chunks, in one commit
// and across grouped ones.
func TestLargeChunks(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	s := open(t, connect(t, ns.ClientURL()), Options{})
	big := func(i int) *store.MessageRecord {
		p := make([]byte, 100_000)
		p[0] = byte(i)
		return &store.MessageRecord{Topic: "big", Payload: p, QoS: 1}
	}
	var b store.Batch
	for i := range 30 { // 3 MB, the maximum payload being 1 MB
		b.Enqueue(big(i), []store.Delivery{{ClientID: "a", QoS: 1}, {ClientID: "b", QoS: 1}})
	}
	commit(t, s, &b)
	done := make(chan error, 30)
	for i := range 30 {
		var b store.Batch
		b.Enqueue(big(30+i), []store.Delivery{{ClientID: "a", QoS: 1}})
		s.CommitAsync(&b, func(err error) { done <- err })
	}
	for range 30 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]int{"a": 60, "b": 30} {
		q, err := s.Scan(id, 0, 1000)
		if err != nil || len(q) != want {
			t.Fatalf("%s: %d entries, %v", id, len(q), err)
		}
		for i, e := range q {
			if e.Seq != uint64(i+1) || e.Msg.Payload[0] != byte(i) || len(e.Msg.Payload) != 100_000 {
				t.Fatalf("%s: entry %d: seq %d payload %d", id, i, e.Seq, e.Msg.Payload[0])
			}
		}
	}
}

// TestParts: a commit over the batch limit is cut between sessions, never
// inside one's head and chunks (unless one session alone is over it).
func TestParts(t *testing.T) {
	s := &Store{opts: Options{MaxBatch: 5}}
	grps := []int{0, 0, 1, 1, 2, 2, 2, 3, 4, 4, 4, 4, 4, 4, 4, 5}
	msgs := make([]pubMsg, len(grps))
	for i, g := range grps {
		msgs[i].grp = g
	}
	got := s.parts(msgs, 5)
	want := [][2]int{{0, 4}, {4, 8}, {8, 13}, {13, 16}}
	if !slices.Equal(got, want) {
		t.Fatalf("parts %v, want %v", got, want)
	}
}

// TestConcurrentOpen: processes starting together on a new stream (a
// cluster's nodes) all open it: the layout record one of them writes is
// not taken by the others for a record of the old layout.
func TestConcurrentOpen(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	for round := range 20 {
		prefix := fmt.Sprint("c", round)
		errs := make(chan error, 6)
		for range 6 {
			nc := connect(t, ns.ClientURL())
			go func() {
				s, err := Open(context.Background(), nc, Options{Prefix: prefix, Logger: quiet()})
				if err == nil {
					s.Close()
				}
				errs <- err
			}()
		}
		for range 6 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}

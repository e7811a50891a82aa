package mqtt

import (
	"context"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/memstore"
)

// queueTail finds one past the last queued sequence number with Scan
// alone, over gaps that acknowledgements leave.
func TestQueueTail(t *testing.T) {
	st := memstore.New()
	b := &Broker{disk: st}
	tail := func() uint64 {
		t.Helper()
		n, err := b.queueTail("c")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := tail(); n != 1 {
		t.Fatalf("empty queue: tail %d, want 1", n)
	}
	var seqs []uint64
	for i := range 1000 {
		var bt store.Batch
		bt.Enqueue(&store.MessageRecord{Topic: "t", Payload: []byte{byte(i)}, QoS: 1}, []store.Delivery{{ClientID: "c", QoS: 1}})
		if err := st.Commit(context.Background(), &bt); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, bt.Ops[0].Deliveries[0].Seq)
	}
	last := seqs[len(seqs)-1]
	if n := tail(); n != last+1 {
		t.Fatalf("tail %d, want %d", n, last+1)
	}
	var bt store.Batch
	for _, s := range seqs[:999] { // all but the last, gaps everywhere
		bt.Ack("c", s)
	}
	if err := st.Commit(context.Background(), &bt); err != nil {
		t.Fatal(err)
	}
	if n := tail(); n != last+1 {
		t.Fatalf("after acks: tail %d, want %d", n, last+1)
	}
}

// Of a message queued twice for a session that moved (once by each
// node), the copy in flight is kept, else the first; messages queued
// before tail are left alone.
func TestDropDuplicates(t *testing.T) {
	st := memstore.New()
	b, err := New(Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	msg := func(from, payload string, at time.Time) *store.MessageRecord {
		return &store.MessageRecord{Topic: "t", Payload: []byte(payload), QoS: 1, From: from, Created: at}
	}
	enqueue := func(m *store.MessageRecord) uint64 {
		var bt store.Batch
		bt.Enqueue(m, []store.Delivery{{ClientID: "c", QoS: 1}})
		if err := st.Commit(context.Background(), &bt); err != nil {
			t.Fatal(err)
		}
		return bt.Ops[0].Deliveries[0].Seq
	}
	old := enqueue(msg("p", "x", now)) // before the move: not a candidate
	tail := old + 1
	enqueue(msg("p", "x", now))                  // the same message again, after tail: kept (the first after tail)
	a1 := enqueue(msg("p", "a", now))            // first copy of a
	enqueue(msg("p", "b", now))                  // b once
	a2 := enqueue(msg("p", "a", now))            // second copy of a: in flight, so kept
	b2 := enqueue(msg("q", "b", now))            // another publisher's b: not a copy
	c1 := enqueue(msg("p", "c", now.Add(1)))     // c
	c2 := enqueue(msg("p", "c", now.Add(1)))     // and its copy: removed
	enqueue(msg("p", "c", now.Add(time.Second))) // c published again later: not a copy
	var bt store.Batch
	bt.SetInflight("c", store.InflightRecord{PacketID: 7, Seq: a2, State: store.AwaitAck})
	if err := st.Commit(context.Background(), &bt); err != nil {
		t.Fatal(err)
	}
	if n := b.dropDuplicates("c", tail); n != 2 {
		t.Fatalf("removed %d, want 2", n)
	}
	qs, err := st.Scan("c", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	have := map[uint64]bool{}
	for _, q := range qs {
		have[q.Seq] = true
	}
	if len(qs) != 7 || have[a1] || !have[a2] || have[c2] || !have[c1] || !have[b2] || !have[old] {
		t.Fatalf("left %d entries %v (a1 %d a2 %d c1 %d c2 %d)", len(qs), have, a1, a2, c1, c2)
	}
}

package memstore

import (
	"context"
	"testing"

	"github.com/mqttd/mqttd/internal/store"
)

func commit(t *testing.T, s *Store, b *store.Batch) {
	t.Helper()
	if err := s.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

func TestQueueSequenceAndReferences(t *testing.T) {
	s := New()
	defer s.Close()
	var b store.Batch
	ds := []store.Delivery{{ClientID: "a", QoS: 1, SubIDs: []uint32{4}}, {ClientID: "b"}}
	m := &store.MessageRecord{Topic: "t", Payload: []byte("x")}
	b.Enqueue(m, ds)
	b.Enqueue(m, []store.Delivery{{ClientID: "a"}})
	commit(t, s, &b)
	if ds[0].Seq != 1 || ds[1].Seq != 1 {
		t.Fatalf("seqs %d %d", ds[0].Seq, ds[1].Seq)
	}
	m.Payload[0] = 'y' // the store kept its own copy
	q, _ := s.Scan("a", 0, 10)
	if len(q) != 2 || q[1].Seq != 2 || string(q[0].Msg.Payload) != "x" || q[0].SubIDs[0] != 4 {
		t.Fatalf("queue a: %+v", q)
	}
	if q, _ := s.Scan("a", 2, 10); len(q) != 1 || q[0].Seq != 2 {
		t.Fatalf("scan from 2: %+v", q)
	}
	if n, _ := s.MessageCount(); n != 2 {
		t.Fatalf("%d messages", n)
	}
	b.Reset()
	b.Ack("a", 1)
	b.Ack("a", 99) // missing: nothing happens
	commit(t, s, &b)
	if n, _ := s.MessageCount(); n != 2 {
		t.Fatal("message freed while b still references it")
	}
	b.Reset()
	b.DeleteSession("b")
	commit(t, s, &b)
	if n, _ := s.MessageCount(); n != 1 {
		t.Fatalf("%d messages after the last reference went", n)
	}
	if n, _ := s.QueueLen("a"); n != 1 {
		t.Fatalf("QueueLen %d", n)
	}
}

func TestPacketIDs(t *testing.T) {
	s := New()
	defer s.Close()
	var b store.Batch
	b.SetInflight("a", store.InflightRecord{PacketID: 9, Seq: 1, State: store.AwaitAck})
	b.SetInflight("a", store.InflightRecord{PacketID: 2, Seq: 5, State: store.AwaitComp})
	b.AddQoS2In("a", 7)
	b.AddQoS2In("a", 3)
	b.RemoveQoS2In("a", 7)
	commit(t, s, &b)
	in, _ := s.Inflight("a")
	if len(in) != 2 || in[0].PacketID != 9 || in[1].PacketID != 2 {
		t.Fatalf("inflight not in send order: %+v", in)
	}
	if q2, _ := s.QoS2In("a"); len(q2) != 1 || q2[0] != 3 {
		t.Fatalf("qos2: %v", q2)
	}
}

func TestCommitAsyncAfterClose(t *testing.T) {
	s := New()
	s.Close()
	var b store.Batch
	b.DeleteRetained("t")
	done := make(chan error, 1)
	s.CommitAsync(&b, func(err error) { done <- err })
	if err := <-done; err != store.ErrClosed {
		t.Fatalf("got %v", err)
	}
}

// Acknowledgements in any order, front first or not, leave exactly the
// unacknowledged entries visible (Scan, QueueLen) and free every message
// with its last reference, across the trimming and compaction of the
// queue's entries.
func TestAckOutOfOrder(t *testing.T) {
	s := New()
	defer s.Close()
	const n = 300
	var b store.Batch
	for range n {
		b.Enqueue(&store.MessageRecord{Topic: "t"}, []store.Delivery{{ClientID: "a", QoS: 1}})
	}
	commit(t, s, &b)
	live := map[uint64]bool{}
	for seq := uint64(1); seq <= n; seq++ {
		live[seq] = true
	}
	// Every third from the back, then the front half, then the rest.
	var order []uint64
	for seq := uint64(n); seq >= 1; seq -= 3 {
		order = append(order, seq)
	}
	for seq := uint64(1); seq <= n; seq++ {
		order = append(order, seq) // repeats ack entries already gone: no-ops
	}
	for i, seq := range order {
		b.Reset()
		b.Ack("a", seq)
		commit(t, s, &b)
		delete(live, seq)
		if i%17 != 0 && i != len(order)-1 {
			continue
		}
		got, _ := s.Scan("a", 0, n)
		if len(got) != len(live) {
			t.Fatalf("after %d acks: scan has %d entries, want %d", i+1, len(got), len(live))
		}
		for _, q := range got {
			if !live[q.Seq] {
				t.Fatalf("after %d acks: scan returned acknowledged seq %d", i+1, q.Seq)
			}
		}
		if l, _ := s.QueueLen("a"); l != len(live) {
			t.Fatalf("after %d acks: QueueLen %d, want %d", i+1, l, len(live))
		}
		if m, _ := s.MessageCount(); m != len(live) {
			t.Fatalf("after %d acks: %d messages, want %d", i+1, m, len(live))
		}
	}
	if from, _ := s.Scan("a", n/2, n); len(from) != 0 {
		t.Fatalf("scan of an empty queue: %+v", from)
	}
}

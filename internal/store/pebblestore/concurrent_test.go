package pebblestore

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/store"
)

// A Scan racing with Acks of the same queue (the last reference, so the
// message goes too) must see a consistent queue: never an entry whose
// message is gone.
func TestScanConsistentWithConcurrentAck(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{Durability: store.None})
	defer s.Close()
	const n = 2000
	var b store.Batch
	for range n {
		b.Enqueue(&store.MessageRecord{Topic: "t", Payload: []byte("x")}, []store.Delivery{{ClientID: "a"}})
	}
	mustCommit(t, s, &b)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for seq := uint64(1); seq <= n; seq++ {
			var b store.Batch
			b.Ack("a", seq)
			if err := s.Commit(context.Background(), &b); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	deadline := time.After(time.Minute)
	scans := 0
	for {
		select {
		case <-done:
			wg.Wait()
			t.Logf("%d scans during %d acks", scans, n)
			return
		case <-deadline:
			t.Fatal("acks did not finish")
		default:
		}
		q, err := s.Scan("a", 0, 20)
		if err != nil {
			t.Fatalf("scan during acks: %v", err)
		}
		for _, e := range q {
			if e.Msg == nil {
				t.Fatal("entry without message")
			}
		}
		scans++
	}
}

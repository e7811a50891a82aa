package pebblestore

import (
	"context"
	"reflect"
	"sync"
	"testing"

	"github.com/mqttd/mqttd/internal/store"
	"github.com/mqttd/mqttd/internal/store/storetest"
)

func TestDataSurvivesReopen(t *testing.T) {
	for _, d := range []store.Durability{store.Sync, store.Interval, store.None} {
		t.Run(d.String(), func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, dir, Options{Durability: d})
			fill(t, s)
			before, err := storetest.Dump(s)
			if err != nil {
				t.Fatal(err)
			}
			q, _ := s.Scan("sub", 0, 100)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpen(t, dir, Options{Durability: d})
			defer s.Close()
			after, err := storetest.Dump(s)
			if err != nil {
				t.Fatal(err)
			}
			q2, _ := s.Scan("sub", 0, 100)
			if len(q) != 10 || !reflect.DeepEqual(q, q2) || !reflect.DeepEqual(before, after) {
				t.Fatalf("before %+v\nafter %+v", before, after)
			}
			// New message ids continue after the old ones.
			var b store.Batch
			ds := []store.Delivery{{ClientID: "sub"}}
			b.Enqueue(&store.MessageRecord{Topic: "x"}, ds)
			mustCommit(t, s, &b)
			if ds[0].Seq != 11 {
				t.Fatalf("seq after reopen = %d, want 11", ds[0].Seq)
			}
			if n, _ := s.MessageCount(); n != 11 {
				t.Fatalf("messages = %d, want 11", n)
			}
		})
	}
}

// A message queued for two sessions is stored once and freed with its
// last reference; deleting a session releases its references.
func TestMessageStoredOnceAndFreed(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{Durability: store.None})
	defer s.Close()
	var b store.Batch
	ds := []store.Delivery{{ClientID: "a"}, {ClientID: "b"}, {ClientID: "c"}}
	b.Enqueue(&store.MessageRecord{Topic: "t", Payload: []byte("x")}, ds)
	mustCommit(t, s, &b)
	count := func() int { n, err := s.MessageCount(); must(t, err); return n }
	if count() != 1 {
		t.Fatalf("stored %d copies", count())
	}
	b.Reset()
	b.Ack("a", ds[0].Seq)
	b.DeleteSession("b")
	mustCommit(t, s, &b)
	if count() != 1 {
		t.Fatal("freed while c still holds it")
	}
	b.Reset()
	b.Ack("c", ds[2].Seq)
	mustCommit(t, s, &b)
	if count() != 0 {
		t.Fatal("not freed after the last reference")
	}
}

// CommitAsync callbacks run in commit order, also when committed from
// many goroutines at once, and a commit's sequence numbers are set before
// its callback.
func TestCommitAsyncOrder(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{Durability: store.Sync})
	defer s.Close()
	const writers, each = 8, 50
	var mu sync.Mutex
	var got []uint64
	var wg sync.WaitGroup
	wg.Add(writers * each)
	for range writers {
		go func() {
			for range each {
				b := &store.Batch{}
				ds := []store.Delivery{{ClientID: "q"}}
				b.Enqueue(&store.MessageRecord{Topic: "t"}, ds)
				s.CommitAsync(b, func(err error) {
					defer wg.Done()
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					got = append(got, ds[0].Seq)
					mu.Unlock()
				})
			}
		}()
	}
	wg.Wait()
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("callback %d carried seq %d: out of commit order", i, seq)
		}
	}
}

func TestClosedStoreRefuses(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	must(t, s.Close())
	var b store.Batch
	b.DeleteRetained("x")
	if err := s.Commit(context.Background(), &b); err != store.ErrClosed {
		t.Fatalf("commit after close: %v", err)
	}
	done := make(chan error, 1)
	s.CommitAsync(&b, func(err error) { done <- err })
	if err := <-done; err != store.ErrClosed {
		t.Fatalf("async commit after close: %v", err)
	}
	if _, err := s.Scan("x", 0, 1); err != store.ErrClosed {
		t.Fatalf("scan after close: %v", err)
	}
	if err := s.Close(); err != store.ErrClosed {
		t.Fatalf("second close: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

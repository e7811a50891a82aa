package hooks_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mqttd/mqttd/internal/hooks"
)

// failAfter bounds waits that should end at once; it is a failure bound,
// never a measurement.
const failAfter = 5 * time.Second

func events(n int) []*hooks.Event {
	es := make([]*hooks.Event, n)
	for i := range es {
		es[i] = &hooks.Event{Seq: uint64(i)}
	}
	return es
}

func seqs(es []*hooks.Event) []uint64 {
	s := make([]uint64, len(es))
	for i, e := range es {
		s[i] = e.Seq
	}
	return s
}

func wantSeqs(t *testing.T, got []*hooks.Event, want ...uint64) {
	t.Helper()
	g := seqs(got)
	if len(g) != len(want) {
		t.Fatalf("took seqs %v, want %v", g, want)
	}
	for i := range g {
		if g[i] != want[i] {
			t.Fatalf("took seqs %v, want %v", g, want)
		}
	}
}

// takeAsync runs Take on its own goroutine so a Take that wrongly blocks
// fails the test instead of hanging it.
func takeAsync(ctx context.Context, q *hooks.Queue, max int) <-chan []*hooks.Event {
	ch := make(chan []*hooks.Event, 1)
	go func() { ch <- q.Take(ctx, nil, max) }()
	return ch
}

func await(t *testing.T, ch <-chan []*hooks.Event) []*hooks.Event {
	t.Helper()
	select {
	case es := <-ch:
		return es
	case <-time.After(failAfter):
		t.Fatal("Take did not return")
		return nil
	}
}

func TestQueueFIFOAndMax(t *testing.T) {
	q := hooks.NewQueue(8)
	for _, e := range events(5) {
		if d := q.Push(e); d != nil {
			t.Fatalf("Push dropped seq %d with room left", d.Seq)
		}
	}
	if q.Len() != 5 {
		t.Fatalf("Len = %d, want 5", q.Len())
	}
	ctx := context.Background()
	wantSeqs(t, q.Take(ctx, nil, 3), 0, 1, 2)
	dst := make([]*hooks.Event, 1, 4) // Take appends, keeping what dst held
	dst[0] = &hooks.Event{Seq: 99}
	wantSeqs(t, q.Take(ctx, dst, 0), 99, 3, 4)
	if q.Len() != 0 || q.Dropped() != 0 {
		t.Fatalf("Len = %d, Dropped = %d; want 0, 0", q.Len(), q.Dropped())
	}
}

func TestQueueWrapsAround(t *testing.T) {
	q := hooks.NewQueue(3)
	es := events(10)
	var want []uint64
	for i, e := range es {
		q.Push(e)
		if i >= 1 { // keep two queued so head and tail go round the ring
			got := q.Take(context.Background(), nil, 1)
			want = append(want, got[0].Seq)
		}
	}
	want = append(want, seqs(q.Take(context.Background(), nil, 0))...)
	if len(want) != len(es) || q.Dropped() != 0 {
		t.Fatalf("took %v, dropped %d; want 0..9, none dropped", want, q.Dropped())
	}
	for i, s := range want {
		if s != uint64(i) {
			t.Fatalf("seqs in take order %v, want 0..9", want)
		}
	}
}

func TestQueueOverflowDropsOldest(t *testing.T) {
	q := hooks.NewQueue(3)
	es := events(5)
	var dropped []*hooks.Event
	for _, e := range es {
		if d := q.Push(e); d != nil {
			dropped = append(dropped, d)
		}
	}
	wantSeqs(t, dropped, 0, 1)
	if q.Dropped() != 2 {
		t.Fatalf("Dropped = %d, want 2", q.Dropped())
	}
	wantSeqs(t, q.Take(context.Background(), nil, 0), 2, 3, 4)
}

func TestQueueCapacityAtLeastOne(t *testing.T) {
	q := hooks.NewQueue(0)
	es := events(2)
	if d := q.Push(es[0]); d != nil {
		t.Fatal("a queue made with capacity 0 must still hold one event")
	}
	if d := q.Push(es[1]); d != es[0] {
		t.Fatal("second Push into a one-slot queue must drop the first event")
	}
}

func TestQueueTakeWakesOnPush(t *testing.T) {
	defer goleak.VerifyNone(t)
	q := hooks.NewQueue(4)
	for round := range 3 {
		ch := takeAsync(context.Background(), q, 10)
		q.Push(&hooks.Event{Seq: uint64(round)})
		wantSeqs(t, await(t, ch), uint64(round))
	}
}

func TestQueueTakeCtx(t *testing.T) {
	defer goleak.VerifyNone(t)
	q := hooks.NewQueue(4)

	ctx, cancel := context.WithCancel(context.Background())
	ch := takeAsync(ctx, q, 10)
	cancel()
	if got := await(t, ch); len(got) != 0 {
		t.Fatalf("Take on a cancelled ctx returned %d events from an empty queue", len(got))
	}

	// A done ctx does not hide what is already queued: draining relies on it.
	q.Push(&hooks.Event{Seq: 7})
	wantSeqs(t, q.Take(ctx, nil, 10), 7)
}

func TestQueueCloseDrains(t *testing.T) {
	defer goleak.VerifyNone(t)
	q := hooks.NewQueue(4)
	for _, e := range events(3) {
		q.Push(e)
	}
	q.Close()
	q.Close() // idempotent
	late := &hooks.Event{Seq: 100}
	if d := q.Push(late); d != late {
		t.Fatal("Push after Close must drop and return the event")
	}
	if q.Dropped() != 1 {
		t.Fatalf("Dropped = %d, want 1 (the push after Close)", q.Dropped())
	}
	wantSeqs(t, await(t, takeAsync(context.Background(), q, 2)), 0, 1)
	wantSeqs(t, await(t, takeAsync(context.Background(), q, 2)), 2)
	if got := await(t, takeAsync(context.Background(), q, 2)); len(got) != 0 {
		t.Fatalf("Take on a closed, empty queue returned %d events", len(got))
	}
}

func TestQueueCloseWakesTake(t *testing.T) {
	defer goleak.VerifyNone(t)
	q := hooks.NewQueue(4)
	ch := takeAsync(context.Background(), q, 1)
	q.Close()
	if got := await(t, ch); len(got) != 0 {
		t.Fatalf("Take woken by Close returned %d events", len(got))
	}
}

// TestQueueConcurrentPushers checks, under -race, that with many pushers
// and one consumer every event is either taken or counted as dropped, and
// that each pusher's events come out in the order it pushed them.
func TestQueueConcurrentPushers(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, capacity := range []int{16, 1 << 16} {
		const pushers, perPusher = 8, 2000
		q := hooks.NewQueue(capacity)
		var returned sync.Map // events Push handed back as dropped
		var wg sync.WaitGroup
		for p := range pushers {
			wg.Go(func() {
				for i := range perPusher {
					if d := q.Push(&hooks.Event{Seq: uint64(p)<<32 | uint64(i)}); d != nil {
						returned.Store(d, true)
					}
				}
			})
		}
		taken := make(chan int)
		go func() {
			last := make([]int64, pushers)
			for i := range last {
				last[i] = -1
			}
			n := 0
			var buf []*hooks.Event
			for {
				buf = q.Take(context.Background(), buf[:0], 64)
				if len(buf) == 0 {
					taken <- n
					return
				}
				for _, e := range buf {
					p, i := int(e.Seq>>32), int64(e.Seq&0xffffffff)
					if i <= last[p] {
						t.Errorf("pusher %d: seq %d taken after %d", p, i, last[p])
					}
					last[p] = i
				}
				n += len(buf)
			}
		}()
		wg.Wait()
		q.Close()
		n := <-taken
		var nReturned uint64
		returned.Range(func(any, any) bool { nReturned++; return true })
		if uint64(n)+q.Dropped() != pushers*perPusher || nReturned != q.Dropped() {
			t.Fatalf("capacity %d: taken %d + dropped %d (returned %d) != pushed %d",
				capacity, n, q.Dropped(), nReturned, pushers*perPusher)
		}
		if capacity >= pushers*perPusher && q.Dropped() != 0 {
			t.Fatalf("capacity %d: dropped %d with room for every event", capacity, q.Dropped())
		}
	}
}

func BenchmarkQueuePush(b *testing.B) {
	q := hooks.NewQueue(1024) // full after 1024 pushes: measures the drop path too
	e := &hooks.Event{}
	b.ReportAllocs()
	for b.Loop() {
		q.Push(e)
	}
}

func BenchmarkQueuePushTake(b *testing.B) {
	q := hooks.NewQueue(1024)
	e := &hooks.Event{}
	ctx := context.Background()
	dst := make([]*hooks.Event, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		q.Push(e)
		dst = q.Take(ctx, dst[:0], 1)
	}
}

// BenchmarkQueueProducerConsumer is the real shape: pushers on other
// goroutines, one consumer taking batches.
func BenchmarkQueueProducerConsumer(b *testing.B) {
	q := hooks.NewQueue(1 << 14)
	e := &hooks.Event{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		dst := make([]*hooks.Event, 0, 128)
		for {
			if dst = q.Take(context.Background(), dst[:0], 128); len(dst) == 0 {
				return
			}
		}
	}()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			q.Push(e)
		}
	})
	q.Close()
	<-done
}

// With a byte bound, large payloads make the oldest events give way long
// before the count does; the newest stays even when it alone is larger.
func TestQueueBoundedInBytes(t *testing.T) {
	q := hooks.NewQueue(100)
	q.LimitBytes(3000)
	msg := func(seq uint64, size int) *hooks.Event {
		return &hooks.Event{Seq: seq, Message: &hooks.Message{Payload: make([]byte, size)}}
	}
	var dropped []*hooks.Event
	for i := range uint64(5) {
		if d := q.Push(msg(i, 1000)); d != nil {
			dropped = append(dropped, d)
		}
	}
	wantSeqs(t, dropped, 0, 1)
	if d := q.Push(msg(5, 5000)); d == nil || d.Seq != 2 || q.Dropped() != 5 || q.Len() != 1 {
		t.Fatalf("a 5000-byte push dropped from %v, %d in all, %d left; want from seq 2, 5 dropped, 1 left", d, q.Dropped(), q.Len())
	}
	wantSeqs(t, q.Take(context.Background(), nil, 0), 5)
	for i := range uint64(3) { // taken events no longer count
		if d := q.Push(msg(6+i, 1000)); d != nil {
			t.Fatalf("push %d dropped seq %d with the queue emptied", i, d.Seq)
		}
	}
}

// The queue rule, case by case: a count or byte bound passed makes the
// oldest drop, but never the newest, and Bytes 0 bounds nothing.
func TestQueueLimitOver(t *testing.T) {
	for _, c := range []struct {
		limit         hooks.QueueLimit
		events, bytes int
		over          bool
	}{
		{hooks.QueueLimit{Events: 3, Bytes: 100}, 3, 100, false},  // full, not past
		{hooks.QueueLimit{Events: 3, Bytes: 100}, 4, 10, true},    // one event too many
		{hooks.QueueLimit{Events: 3, Bytes: 100}, 2, 101, true},   // bytes past, an older event can go
		{hooks.QueueLimit{Events: 3, Bytes: 100}, 1, 5000, false}, // the newest alone stays, however large
		{hooks.QueueLimit{Events: 1}, 1, 1 << 30, false},          // no byte bound
		{hooks.QueueLimit{Events: 1}, 2, 0, true},
	} {
		if got := c.limit.Over(c.events, c.bytes); got != c.over {
			t.Errorf("%+v.Over(%d events, %d bytes) = %v, want %v", c.limit, c.events, c.bytes, got, c.over)
		}
	}
}

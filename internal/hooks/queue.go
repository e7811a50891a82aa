package hooks

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// QueueLimit is the one rule every queue of events on its way to a plugin
// follows, whatever it holds: at most Events events and Bytes bytes (0:
// no byte bound). When a new event would pass either, the oldest events
// make way, one at a time, each counted as dropped by its queue; the
// newest always stays, even alone past Bytes, so a large event is still
// delivered. A plugin that falls behind loses its stalest news rather
// than slowing MQTT traffic down or filling memory.
//
// Two queues follow it: Queue, which holds owned events for a consumer
// that formats them itself (the event-log plugin), and the HTTP plugin's
// batch lanes, which encode each event as it is pushed and hold only the
// bytes. What they hold differs too much to share the storage; they share
// this rule: each pushes, then drops its oldest while Over says so. The
// lanes of one plugin follow it together, as one queue: a lane may hold
// more than its share while the others hold less, and when they are full
// together, the lanes beyond their shares give way.
type QueueLimit struct {
	Events int // at least 1
	Bytes  int // 0: no bound
}

// Over reports whether a queue holding events events of bytes bytes, the
// newest included, must drop its oldest.
func (l QueueLimit) Over(events, bytes int) bool {
	return events > l.Events || (l.Bytes > 0 && bytes > l.Bytes && events > 1)
}

// Queue is a bounded FIFO of events between the goroutine that hands events
// to a sink (the broker's, which must never block) and the one goroutine that
// delivers them, bounded by a QueueLimit.
//
// It is a ring buffer under a mutex with a one-slot wake-up channel, so a
// Push costs no allocation and starts no goroutine.
type Queue struct {
	mu     sync.Mutex
	buf    []*Event
	head   int // index of the oldest event
	n      int // events queued
	bytes  int // their payload bytes (see weight)
	limit  QueueLimit
	closed bool

	dropped atomic.Uint64
	// notify holds at most one pending wake-up: a consumer only needs to
	// learn that something changed, not how many times.
	notify chan struct{}
	done   chan struct{} // closed by Close, so a waiting Take sees it at once
}

// NewQueue returns an empty queue holding at most capacity events (at least
// one).
func NewQueue(capacity int) *Queue {
	if capacity < 1 {
		capacity = 1
	}
	return &Queue{
		buf:    make([]*Event, capacity),
		limit:  QueueLimit{Events: capacity},
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
}

// LimitBytes bounds the payload bytes the queue holds as well (0: no
// bound): ten thousand events of 1 MiB messages would hold 10 GiB. Past
// it the oldest events give way, but the newest always stays. Call it
// before the first Push.
func (q *Queue) LimitBytes(n int) { q.limit.Bytes = max(n, 0) }

// weight is what an event holds beyond its fixed size: the payloads of its
// message and of a PUBLISH packet.
func weight(e *Event) int {
	n := 0
	if e.Message != nil {
		n += len(e.Message.Payload)
	}
	if p, ok := e.Packet.(*packets.Publish); ok {
		n += len(p.Payload)
	}
	return n
}

// Push queues e without blocking. When the queue is full it drops the
// oldest events and returns the first it dropped, so the caller can count
// or log it; it returns nil when nothing was dropped. After Close, e
// itself is dropped and returned.
func (q *Queue) Push(e *Event) (dropped *Event) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.dropped.Add(1)
		return e
	}
	w := weight(e)
	// The ring has no slot to spare, so room is made before e goes in:
	// the limit is asked about the queue as it will be with e.
	for q.limit.Over(q.n+1, q.bytes+w) {
		if d := q.dropOldest(); dropped == nil {
			dropped = d
		}
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
	q.bytes += w
	q.mu.Unlock()
	q.wake()
	return dropped
}

func (q *Queue) dropOldest() *Event {
	q.dropped.Add(1)
	return q.pop()
}

// pop removes the oldest event and returns it; the queue keeps no pointer
// to it, so the GC may have it once its taker is done.
func (q *Queue) pop() *Event {
	e := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = q.next(q.head)
	q.n--
	q.bytes -= weight(e)
	return e
}

// Take waits until at least one event is queued, then appends up to max of
// them (all queued when max < 1), oldest first, to dst and returns it. ctx
// bounds only the wait: events already queued are returned even when ctx is
// done, which lets a draining consumer empty the queue without blocking.
// Take returns dst unchanged when ctx ends while it waits, or when the queue
// is closed and empty.
func (q *Queue) Take(ctx context.Context, dst []*Event, max int) []*Event {
	for {
		q.mu.Lock()
		if q.n > 0 {
			dst = q.takeLocked(dst, max)
			more := q.n > 0
			q.mu.Unlock()
			if more {
				// The wake-up this Take consumed may have stood for
				// events it left behind; pass it on.
				q.wake()
			}
			return dst
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return dst
		}
		select {
		case <-q.notify:
		case <-q.done:
		case <-ctx.Done():
			return dst
		}
	}
}

func (q *Queue) takeLocked(dst []*Event, max int) []*Event {
	k := q.n
	if max > 0 && max < k {
		k = max
	}
	for range k {
		dst = append(dst, q.pop())
	}
	return dst
}

func (q *Queue) next(i int) int {
	if i++; i == len(q.buf) {
		return 0
	}
	return i
}

func (q *Queue) wake() {
	select {
	case q.notify <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Len is the number of events queued.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Dropped counts the events dropped so far: overflow, and pushes after
// Close.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// Close stops the queue from taking events; Take still hands out what is
// left, then returns at once. Close is idempotent.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.done)
	}
}

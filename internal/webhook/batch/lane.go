package batch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/webhook/spool"
)

const (
	head = `{"events":[`
	tail = `]}`
)

// lane is one queue of encoded events and the goroutine that sends it, one
// batch at a time: while a batch is being sent or retried the lane's later
// events wait, which is what keeps a client's events in order.
//
// Events are encoded when they are pushed, straight into the body of the
// batch they will travel in. The broker's goroutine pays for the encoding
// either way, and doing it here means the event need not be copied, kept
// or collected: a pushed event costs no allocation at all, where an owned
// copy queued for later encoding cost two and most of a core's worth of
// garbage collection at a million events a second.
//
// The queue's bounds hold for all lanes together (see Pipeline.limit).
// Each lane is sure of its share of them; beyond it a lane borrows what
// the others leave unused, which is what lets one lane ride out a slow
// batch, or a burst of its clients, while the rest are nearly empty. When
// the lanes together are full, a lane beyond its share gives way: its own
// oldest events when it pushes, and for a lane within its share, the
// borrower's oldest (Pipeline.reclaim).
type lane struct {
	p     *Pipeline
	share hooks.QueueLimit // the lane's part of the queue's bounds; the batch being sent does not count
	wake  chan struct{}    // one pending wake-up for the goroutine
	timer *time.Timer      // the linger of the oldest batch; used by the goroutine only

	// queued and bytes as of the lane's last change, for other lanes to
	// add up the whole queue without taking this lane's lock.
	nEvents, nBytes atomic.Int64

	mu        sync.Mutex
	queue     []*chunk // batches waiting, oldest first; only the last may still be filling
	queued    int      // events in queue
	bytes     int      // their encoded bytes, with the commas between them
	borrowing bool     // beyond its share: counted in Pipeline.borrowers
	closed    bool
	free      []*chunk // spent batches, kept for their buffers (keepFree at most)

	// Durable lanes only (see durable.go).
	spooling    bool               // pushed events go to the spool
	lastSpooled uint64             // sequence number of the last record this lane spooled
	inflight    *chunk             // the batch being sent or spooled
	cancel      context.CancelFunc // ends inflight's send once it is spooled under it
	unsynced    int                // events spooled since the last fsync
	entryBuf    []spool.Entry
}

// chunk is one batch: its body so far and where each event in it starts.
type chunk struct {
	body    []byte // head, then the events separated by commas; no tail yet
	starts  []int  // offset of each event in body
	first   int    // events before it were dropped to make room for newer ones
	full    bool   // nothing more goes in: MaxEvents or MaxBytes reached
	spooled bool   // its events are in the spool (durable lanes)
	opened  time.Time
}

func (c *chunk) events() int { return len(c.starts) - c.first }

// payload is the body of what c still holds. Dropped events are cut off
// by writing head over the bytes just before the first one kept: they
// belong to dropped events (or are the original head), so nothing is
// copied.
func (c *chunk) payload() []byte {
	if c.first == 0 {
		return c.body
	}
	from := c.starts[c.first] - len(head)
	copy(c.body[from:], head)
	return c.body[from:]
}

// live is how many bytes of body its kept events take, commas included.
func (c *chunk) live() int {
	if c.events() == 0 {
		return 0
	}
	return len(c.body) - c.starts[c.first]
}

// size is the length the body will have once sent, tail included.
func (c *chunk) size() int { return len(head) + c.live() + len(tail) }

func newLane(p *Pipeline, share hooks.QueueLimit) *lane {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &lane{p: p, share: share, wake: make(chan struct{}, 1), timer: t}
}

// counted publishes the lane's counts after they changed, and whether it
// now borrows. l.mu is held.
func (l *lane) counted() {
	l.nEvents.Store(int64(l.queued))
	l.nBytes.Store(int64(l.bytes))
	if b := l.share.Over(l.queued, l.bytes); b != l.borrowing {
		l.borrowing = b
		if b {
			l.p.borrowers.Add(1)
		} else {
			l.p.borrowers.Add(-1)
		}
	}
}

// giveWay makes room for other events, the lane being beyond its share
// while the lanes together are full: a durable lane moves its queue to
// the spool, any other (or one the spool refuses) drops its oldest.
// l.mu is held; wake says the goroutine has something to do (an fsync).
func (l *lane) giveWay() (wake bool, err error) {
	if l.p.opts.Spool != nil {
		if err = l.enterSpoolLocked(); err == nil {
			return true, nil
		}
	}
	l.dropOldest()
	return false, err
}

// push encodes e into the lane's open batch. It reports encode failures
// to the caller, which logs them outside the lane's lock.
func (l *lane) push(e *hooks.Event) error {
	p := l.p
	o := &p.opts
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		p.shutdown.Add(1)
		return nil
	}
	c, opened := l.open()
	was := c.live()
	mark := len(c.body)
	if len(c.starts) > 0 {
		c.body = append(c.body, ',')
	}
	start := len(c.body)
	b, err := p.enc(c.body, e)
	if err != nil {
		c.body = b[:mark]
		if c.events() == 0 {
			l.dropChunk(len(l.queue) - 1)
		}
		l.mu.Unlock()
		p.encode.Add(1)
		return err
	}
	c.body = b
	if c.events() > 0 && c.size() > o.MaxBytes {
		// e opens the next batch instead; its bytes move there.
		c.full = true
		next, _ := l.open()
		next.body = append(next.body, b[start:]...)
		c.body = b[:mark]
		c, start, opened, was = next, len(head), true, 0
	}
	c.starts = append(c.starts, start)
	l.queued++
	l.bytes += c.live() - was // the event, and the comma before it if any
	if c.events() >= o.MaxEvents || c.size() >= o.MaxBytes {
		c.full = true
	}
	wake := opened || c.full // the goroutine arms a linger, or sends
	l.counted()
	reclaim := false
	// Only when some lane borrows can the lanes together be full; until
	// then a push reads nothing another lane writes.
	if p.borrowers.Load() > 0 && p.full() {
		// A lane beyond its share pays for its own push; one within it
		// takes its room back from those beyond theirs.
		for l.borrowing && p.full() {
			w, gerr := l.giveWay()
			wake = wake || w
			if err == nil {
				err = gerr
			}
		}
		reclaim = p.full()
	}
	l.mu.Unlock()
	if wake {
		l.signal()
	}
	if reclaim {
		if rerr := p.reclaim(); err == nil {
			err = rerr
		}
	}
	return err
}

// open returns the batch still filling, starting one if there is none.
func (l *lane) open() (c *chunk, opened bool) {
	if n := len(l.queue); n > 0 && !l.queue[n-1].full {
		return l.queue[n-1], false
	}
	if n := len(l.free); n > 0 {
		c = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		c = &chunk{body: make([]byte, 0, min(4096, l.p.opts.MaxBytes))}
	}
	c.body = append(c.body[:0], head...)
	c.starts, c.first, c.full, c.spooled = c.starts[:0], 0, false, false
	c.opened = time.Now()
	l.queue = append(l.queue, c)
	return c, true
}

// dropOldest gives up the oldest queued event to make room.
func (l *lane) dropOldest() {
	c := l.queue[0]
	was := c.live()
	c.first++
	l.bytes -= was - c.live() // the event, and the comma after it if any
	l.queued--
	l.p.overflow.Add(1)
	if c.events() == 0 {
		l.dropChunk(0)
	}
	l.counted()
}

// dropChunk removes the empty batch queue[i] and keeps its buffers.
func (l *lane) dropChunk(i int) {
	l.recycle(l.queue[i])
	l.unqueue(i)
}

// keepFree is how many spent batches a lane keeps for their buffers: one
// being filled while one is sent needs two; more would only hold memory
// that a burst of small batches once needed.
const keepFree = 4

func (l *lane) recycle(c *chunk) {
	if len(l.free) < keepFree {
		l.free = append(l.free, c)
	}
}

// unqueue removes queue[i], leaving no pointer to it behind.
func (l *lane) unqueue(i int) {
	n := len(l.queue) - 1
	copy(l.queue[i:], l.queue[i+1:])
	l.queue[n] = nil
	l.queue = l.queue[:n]
}

func (l *lane) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// close makes the lane take no more events and send what it has without
// lingering.
func (l *lane) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.signal()
}

func (l *lane) run() {
	defer l.p.laneDone()
	for {
		c := l.next()
		if c == nil {
			l.abandon()
			return
		}
		if l.p.opts.Spool != nil {
			l.handleDurable(c)
		} else {
			l.deliver(l.p.stop, append(c.payload(), tail...), c.events())
		}
		l.mu.Lock()
		l.inflight = nil
		l.recycle(c)
		l.mu.Unlock()
	}
}

// next waits for a batch to send: a full one, one whose linger ran out, or
// any at all once the lane is closed. It returns nil when the lane is
// closed and empty, or the pipeline stopped.
func (l *lane) next() *chunk {
	p := l.p
	for {
		if p.stop.Err() != nil {
			return nil
		}
		var wait time.Duration
		l.mu.Lock()
		if len(l.queue) > 0 {
			c := l.queue[0]
			wait = p.opts.Linger - time.Since(c.opened)
			if c.full || l.closed || wait <= 0 {
				c.full = true
				l.unqueue(0)
				l.queued -= c.events()
				l.bytes -= c.live()
				l.counted()
				l.inflight = c
				l.mu.Unlock()
				return c
			}
		} else if l.closed {
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		l.sync() // what push moved to the spool
		var expired <-chan time.Time
		if wait > 0 {
			l.timer.Reset(wait)
			expired = l.timer.C
		}
		select {
		case <-l.wake:
		case <-expired:
		case <-p.stop.Done():
		}
		l.timer.Stop()
	}
}

// deliver sends body, holding n events, until the plugin takes it, refuses
// it, the retries run out, or ctx (the pipeline's stop, or a durable
// lane's send) ends. A durable lane does not retry: it reports that the
// batch should go to the spool instead, after a retryable failure or when
// ctx ended.
func (l *lane) deliver(ctx context.Context, body []byte, n int) (spool bool) {
	p := l.p
	durable := p.opts.Spool != nil
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return l.stopped(n)
		}
		err := p.send(ctx, body, n)
		if err == nil {
			p.batches.Add(1)
			p.sent.Add(uint64(n))
			p.report(nil)
			return false
		}
		if ctx.Err() != nil { // cut short by Close's deadline, not refused
			return l.stopped(n)
		}
		var re *RetryableError
		if errors.As(err, &re) && durable {
			p.report(err)
			return true
		}
		if re == nil || attempt == p.opts.Retries {
			p.failed.Add(uint64(n))
			p.report(err)
			return false
		}
		p.retried.Add(1)
		p.report(err)
		if !p.sleep(p.opts.backoff(attempt, re.After)) {
			return l.stopped(n)
		}
	}
}

// stopped is deliver's answer when its batch was cut short: a durable
// lane spools it, any other counts it dropped at shutdown.
func (l *lane) stopped(n int) (spool bool) {
	if l.p.opts.Spool != nil {
		return true
	}
	l.p.shutdown.Add(uint64(n))
	return false
}

// sleep waits d, or less if the pipeline is stopped; it reports whether
// the wait ran its course.
func (p *Pipeline) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.stop.Done():
		return false
	}
}

// abandon counts what the lane still holds as shutdown drops and takes no
// more.
func (l *lane) abandon() {
	l.mu.Lock()
	l.closed = true
	if l.p.opts.Spool != nil { // durable: nothing is abandoned
		for _, c := range l.queue {
			l.spoolOrFail(c)
		}
		l.queue, l.queued, l.bytes = l.queue[:0], 0, 0
		l.counted()
		l.mu.Unlock()
		l.sync()
		return
	}
	n := l.queued
	l.queue, l.queued, l.bytes = l.queue[:0], 0, 0
	l.counted()
	l.mu.Unlock()
	l.p.shutdown.Add(uint64(n))
}

// len is the number of events waiting in the lane.
func (l *lane) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queued
}

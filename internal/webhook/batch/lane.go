package batch

import (
	"context"
	"errors"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
)

const (
	head = `{"events":[`
	tail = `]}`
)

// noWait is an already-done context: a Take under it returns what is
// queued without waiting, which is what a negative Linger asks for.
var noWait = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// lane is one queue and the goroutine that empties it, one batch at a
// time: while a batch is being sent or retried the lane's later events
// wait, which is what keeps a client's events in order.
type lane struct {
	p       *Pipeline
	q       *hooks.Queue
	pending []*hooks.Event // taken from q; pending[next:] are not in a batch yet
	next    int
	body    []byte // the batch being built or sent, reused across batches
}

func newLane(p *Pipeline, capacity int) *lane {
	return &lane{
		p:       p,
		q:       hooks.NewQueue(capacity),
		pending: make([]*hooks.Event, 0, p.opts.MaxEvents),
		body:    make([]byte, 0, 4096),
	}
}

func (l *lane) run() {
	defer l.p.laneDone()
	for {
		n, more := l.fill()
		if n > 0 {
			l.deliver(n)
		}
		if l.p.stop.Err() != nil {
			l.abandon()
			return
		}
		if !more {
			return
		}
	}
}

// fill builds the next batch in l.body and returns how many events it
// holds. more is false once the queue is closed and empty, or the pipeline
// is stopped, with nothing left to send.
func (l *lane) fill() (n int, more bool) {
	o := &l.p.opts
	l.body = append(l.body[:0], head...)
	var linger context.Context
	var cancel context.CancelFunc
	defer func() {
		if cancel != nil {
			cancel()
		}
	}()
	for n < o.MaxEvents {
		if l.next == len(l.pending) {
			ctx := l.p.stop // nothing in the batch yet: wait as long as it takes
			if n > 0 {
				if linger == nil {
					linger, cancel = l.lingerCtx()
				}
				ctx = linger
			}
			l.refill(ctx, o.MaxEvents-n)
			if l.next == len(l.pending) {
				// n == 0: closed and empty, or stopped. Otherwise the linger
				// ran out (or the queue closed): send what we have.
				break
			}
		}
		e := l.pending[l.next]
		mark := len(l.body)
		if n > 0 {
			l.body = append(l.body, ',')
		}
		b, err := l.p.enc(l.body, e)
		if err != nil {
			l.body = l.body[:mark]
			l.next++
			l.p.encode.Add(1)
			l.p.report(err)
			continue
		}
		if n > 0 && len(b)+len(tail) > o.MaxBytes {
			l.body = b[:mark] // e opens the next batch instead
			break
		}
		l.body = b
		l.next++
		n++
		if len(l.body)+len(tail) >= o.MaxBytes {
			break
		}
	}
	l.body = append(l.body, tail...)
	return n, n > 0 || l.next < len(l.pending)
}

func (l *lane) lingerCtx() (context.Context, context.CancelFunc) {
	if l.p.opts.Linger < 0 {
		return noWait, nil
	}
	return context.WithTimeout(l.p.stop, l.p.opts.Linger)
}

func (l *lane) refill(ctx context.Context, max int) {
	clear(l.pending) // delivered events must not stay reachable from here
	l.pending = l.q.Take(ctx, l.pending[:0], max)
	l.next = 0
}

// deliver sends the batch in l.body until the plugin takes it, refuses it,
// the retries run out, or the pipeline is stopped.
func (l *lane) deliver(n int) {
	p := l.p
	for attempt := 0; ; attempt++ {
		if p.stop.Err() != nil {
			p.shutdown.Add(uint64(n))
			return
		}
		err := p.send(p.stop, l.body, n)
		if err == nil {
			p.batches.Add(1)
			p.sent.Add(uint64(n))
			p.report(nil)
			return
		}
		if p.stop.Err() != nil { // cut short by Close's deadline, not refused
			p.shutdown.Add(uint64(n))
			return
		}
		var re *RetryableError
		if !errors.As(err, &re) || attempt == p.opts.Retries {
			p.failed.Add(uint64(n))
			p.report(err)
			return
		}
		p.retried.Add(1)
		p.report(err)
		if !l.sleep(p.opts.backoff(attempt, re.After)) {
			p.shutdown.Add(uint64(n))
			return
		}
	}
}

// sleep waits d, or less if the pipeline is stopped; it reports whether
// the wait ran its course.
func (l *lane) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.p.stop.Done():
		return false
	}
}

// abandon counts what the lane holds and has queued as shutdown drops.
func (l *lane) abandon() {
	n := len(l.pending) - l.next
	for {
		l.refill(noWait, 0)
		if len(l.pending) == 0 {
			break
		}
		n += len(l.pending)
	}
	l.p.shutdown.Add(uint64(n))
}

package main

import (
	"bytes"
	"context"
	"net/http"
	"sync"
)

// checkQueue is how many sampled batches may wait for the checker at once.
// Past it, the handler that samples one more waits for room: the plugin
// then answers as slowly as it checks, which is what a plugin that cannot
// keep up does, and its memory stays bounded (a batch is at most the
// broker's queue.batch-bytes, 1 MiB by default).
const checkQueue = 16

// checker runs the full contract check of sampled batches after they were
// answered (see postEvents), one at a time and in the order they came, so
// that the problems it notes read in that order.
type checker struct {
	jobs chan checkJob
	once sync.Once
	done chan struct{} // closed when the goroutine has returned

	// open is held (read) while a batch is queued, and (write) to close
	// jobs, so that nothing is sent on it once closed.
	open   sync.RWMutex
	closed bool

	mu      sync.Mutex
	idle    *sync.Cond // signalled when pending drops to 0
	pending int        // batches queued or being checked

	gate chan struct{} // tests: each check first takes a value from it; nil = none
}

type checkJob struct {
	r   *http.Request // a copy that outlives the handler
	buf *bytes.Buffer // the body; back to the pool once checked
}

func (c *checker) init() {
	c.jobs = make(chan checkJob, checkQueue)
	c.done = make(chan struct{})
	c.idle = sync.NewCond(&c.mu)
}

// checkLater queues the full check of r with the body in buf, which it
// takes over. After closeChecks the batch is checked at once instead.
func (s *pluginServer) checkLater(r *http.Request, buf *bytes.Buffer) {
	c := &s.checks
	c.open.RLock()
	defer c.open.RUnlock()
	if c.closed {
		s.checkBatch(r, buf.Bytes(), nil, false)
		s.bufs.Put(buf)
		return
	}
	c.mu.Lock()
	c.pending++
	c.mu.Unlock()
	c.once.Do(func() { go s.runChecks() })
	c.jobs <- checkJob{r: r.Clone(context.Background()), buf: buf}
}

func (s *pluginServer) runChecks() {
	c := &s.checks
	defer close(c.done)
	for j := range c.jobs {
		if c.gate != nil {
			<-c.gate
		}
		s.checkBatch(j.r, j.buf.Bytes(), nil, false)
		s.bufs.Put(j.buf)
		c.mu.Lock()
		if c.pending--; c.pending == 0 {
			c.idle.Broadcast()
		}
		c.mu.Unlock()
	}
}

// checksPending is how many answered batches still wait for their check.
func (s *pluginServer) checksPending() int {
	c := &s.checks
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending
}

// waitChecks returns once every batch answered so far has been checked.
func (s *pluginServer) waitChecks() {
	c := &s.checks
	c.mu.Lock()
	for c.pending > 0 {
		c.idle.Wait()
	}
	c.mu.Unlock()
}

// closeChecks checks what is queued and stops the checker; call it once
// no more requests are served.
func (s *pluginServer) closeChecks() {
	c := &s.checks
	c.open.Lock()
	if c.closed {
		c.open.Unlock()
		return
	}
	c.closed = true
	started := true
	c.once.Do(func() { started = false })
	if started {
		close(c.jobs)
	}
	c.open.Unlock()
	if started {
		<-c.done
	}
}

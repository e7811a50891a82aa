// The writer side of a connection: a goroutine started on demand that
// flushes the write buffer in as few syscalls as possible and exits when the
// connection has been idle for writerLinger. While it lingers it gives the
// writer's role back: readers then write what they append themselves
// (writer_inline.go), and hand the role back to it (a wake-up, no goroutine
// start) only when they cannot.

package mqtt

import "time"

// writerLinger is how long a writer goroutine waits for more work before
// it exits: long enough that a busy connection keeps its writer (waking a
// parked goroutine is cheaper than starting one), short enough that an idle
// connection holds only its reader.
const writerLinger = time.Second

// writerLinger is the writerLinger constant unless a test set another.
func (b *Broker) writerLinger() time.Duration {
	if b.opts.writerLinger > 0 {
		return b.opts.writerLinger
	}
	return writerLinger
}

// wakeWriterLocked makes sure a writer will flush what was just appended: it
// starts one, or wakes the parked one at most once per flush. Caller holds
// sess.mu.
func (c *client) wakeWriterLocked() {
	switch {
	case c.closed || c.wakePending:
	case !c.writing && c.lingering:
		// The lingering writer takes the role back.
		c.writing, c.wakePending, c.handed = true, true, true
		c.signal()
	case !c.writing:
		c.writing, c.wakePending = true, true
		if c.connackPending {
			return // the handshake's goroutine flushes (flushConnack)
		}
		c.writers.Add(1)
		go c.writeLoop()
	default:
		c.wakePending = true
		c.signal()
	}
}

// flushConnack writes the CONNACK, and whatever was queued behind it, from
// the goroutine that ran the handshake, so that a connection which then
// goes idle never starts a writer: a writer started per connection and
// lingering a second would leave the stacks of thousands of dead goroutines
// behind a connection storm. A writer takes over when more arrives meanwhile,
// or when queued deliveries wait for receive checks (those may call plugins,
// and this goroutine goes on to read the connection).
func (c *client) flushConnack() {
	s := c.sess
	s.mu.Lock()
	c.connackPending = false
	if !c.writing {
		s.mu.Unlock()
		return
	}
	c.writers.Add(1)
	waits := c.waitsForCheckLocked()
	s.mu.Unlock()
	if !waits {
		if _, more := c.flush(false, false); !more {
			c.writers.Done()
			return
		}
		s.mu.Lock()
		if !c.wakePending && !c.waitsForCheckLocked() {
			c.writing = false
			s.mu.Unlock()
			c.writers.Done()
			return
		}
		s.mu.Unlock()
	}
	go c.writeLoop()
}

// waitsForCheckLocked reports whether a delivery queued for c waits for the
// receive check that only the writer runs (pumpChecked): a topic checker is
// configured, the head of the queue may go out, and the connection is not
// ending (a check cut short puts its delivery back at the head, so asking
// again would only spin). Without a checker, deliveries are pumped under
// the session lock and the writer only writes. Caller holds sess.mu.
func (c *client) waitsForCheckLocked() bool {
	s := c.sess
	return c.b.hooks.Topics != nil && s.client == c && c.b.pumpable(s) && c.ctx.Err() == nil
}

// signal leaves a wake-up token for the writer. A token may already be
// waiting (the writer drained the buffer before reading it): one is enough.
func (c *client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop flushes the write buffer whenever it holds the writer's role,
// and exits after a writerLinger with nothing to write, or once the
// connection is closing. Having found the buffer empty it lingers without
// the role (c.lingering): a reader appending meanwhile writes inline, as
// with no writer at all, where a writer holding the role would take every
// delivery for the rest of the linger, each one a goroutine wake-up. Whoever
// needs a writer then hands the role back (wakeWriterLocked: c.handed and a
// token). There is at most one writer goroutine: it alone reads c.wake.
func (c *client) writeLoop() {
	defer c.writers.Done()
	idle := time.NewTimer(c.b.writerLinger())
	defer idle.Stop()
	active := true
	for {
		// The flush that finds the buffer empty gives the role back.
		wrote, more := c.flush(true, true)
		if !more {
			return
		}
		active = active || wrote
		if !c.linger(idle, &active) {
			return
		}
	}
}

// linger waits, without the writer's role, until the role is handed back
// (true: the caller flushes again), or until the connection closes or
// writerLinger passes with nothing handed (false: the writer exits; a
// linger in which it wrote does not count).
func (c *client) linger(idle *time.Timer, active *bool) bool {
	s := c.sess
	for {
		passed := false
		select {
		case <-c.wake:
		case <-idle.C:
			if *active {
				*active = false
				idle.Reset(c.b.writerLinger())
			} else {
				passed = true
			}
		}
		s.mu.Lock()
		switch {
		case c.handed:
			c.handed, c.lingering = false, false
			s.mu.Unlock()
			return true
		case c.closed:
			c.lingering = false
			s.mu.Unlock()
			return false
		case !passed:
			// A token left from before the role was given back.
			s.mu.Unlock()
			continue
		}
		c.lingering = false
		if !c.writing {
			// An idle connection keeps no burst-sized buffers. They are
			// kept while the writer runs: dropping them whenever the
			// writer catches up made every burst grow them afresh. A
			// reader writing inline holds the role, and the buffers.
			if len(c.out) == 0 {
				c.out = nil
			}
			c.spare = nil
		}
		s.mu.Unlock()
		return false
	}
}

// flush writes everything queued, one syscall per batch, until it finds the
// buffer empty. With check, it first runs the receive checks of queued
// deliveries (pumpChecked), but only when one waits: a connection whose
// deliveries were all decided on the way in (no checker, or the
// receiver's grants allow them) takes the session lock once per batch, as
// with no checker at all. more is false when the writer must exit: the
// connection is closing or a write failed. With release, finding the
// buffer empty gives the writer's role back in the same locked section
// (the caller lingers: writeLoop).
func (c *client) flush(check, release bool) (wrote, more bool) {
	s := c.sess
	for {
		s.mu.Lock()
		for check && c.waitsForCheckLocked() {
			s.mu.Unlock()
			c.pumpChecked()
			s.mu.Lock()
		}
		if len(c.out) == 0 {
			c.wakePending = false
			if c.closed {
				c.writing = false
				s.mu.Unlock()
				return wrote, false
			}
			if release {
				c.writing, c.lingering = false, true // see writeLoop
			}
			s.mu.Unlock()
			return wrote, true
		}
		buf := c.out
		c.out = c.spare[:0]
		msgs, pkts := c.outMsgs, c.outPkts
		c.outMsgs, c.outPkts = 0, 0
		s.mu.Unlock()
		c.spare = nil
		if len(buf) > 0 {
			wrote = true
			c.conn.SetWriteDeadline(time.Now().Add(c.b.limits.WriteTimeout))
			n, err := c.conn.Write(buf)
			c.b.stats.bytesOut.Add(int64(n))
			c.b.stats.msgsOut.Add(msgs)
			c.b.stats.pktsOut.Add(pkts)
			if err != nil {
				c.conn.Close() // the reader sees it and ends the connection
				s.mu.Lock()
				c.writing, c.closed, c.wakePending = false, true, false
				c.out = nil
				s.mu.Unlock()
				return wrote, false
			}
		}
		if cap(buf) <= 256<<10 {
			c.spare = buf[:0] // keep the buffer; let a huge burst's go
		}
	}
}

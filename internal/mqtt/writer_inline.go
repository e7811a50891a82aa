// Writing from the reader goroutine: what a reader appends while handling a
// read batch, for its own client (PUBACKs, the deliveries its PUBACKs let
// out of the queue) or for the subscribers of what it publishes, is written
// by the reader itself when the batch is done, with one non-blocking write
// per connection, instead of waking a writer goroutine for it: the hand-off
// (and the thread wake-up behind it) costs more than the write. A write
// that does not go through in full hands the rest to a writer as before,
// so a reader never blocks on another connection, nor on its own. Before
// anything that may wait (a plugin's answer, a held acknowledgement, the
// cluster) the reader writes what it owes first.

package mqtt

import (
	"errors"
	"syscall"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// inlineWriter is the state of a connection's non-blocking writes, made at
// the first one. The write function is made once: a closure passed to
// RawConn.Write on every flush would be allocated every time.
type inlineWriter struct {
	raw   syscall.RawConn
	write func(fd uintptr) bool
	buf   []byte
	n     int
	err   error
	// renew is when tryWrite next moves the write deadline: half the
	// write timeout after it last did, so that the deadline it sets is
	// always at least half the timeout away without a runtime timer
	// change on every write.
	renew time.Time
}

// errWouldBlock stands for a write the kernel took nothing of.
var errWouldBlock = errors.New("write would block")

// maxOwed bounds how many connections one reader flushes at the end of a
// read batch; past it, their writers are woken as before, so that a
// publisher reaching thousands of subscribers does not write to all of
// them in turn while their writers could share the work. Up to it, one
// non-blocking write per connection costs less than waking its writer: a
// 1→100 fan-out used 0.28–0.30 µs of broker CPU per delivery written all
// inline against 0.36–0.45 µs at a bound of 8 (interleaved runs, 2 cores).
const maxOwed = 128

// wakeOwnLocked is wakeWriterLocked for output the reader goroutine appended
// for its own connection. Reader goroutine only; caller holds sess.mu.
func (c *client) wakeOwnLocked() { c.wakeByLocked(c) }

// wakeByLocked is wakeWriterLocked for output that by's reader goroutine
// appended for c (by may be c, or nil for none): when no writer runs for c,
// by's reader writes it itself at the end of its read batch (flushOwed)
// rather than start or wake a writer goroutine. Runs on by's reader
// goroutine; caller holds c.sess.mu.
func (c *client) wakeByLocked(by *client) {
	switch {
	case by == nil || c.writing || c.closed || c.connackPending || !c.inlineOK:
	case c.deferred:
		return // a reader flushes c when its batch ends
	case len(by.owes) < maxOwed:
		c.deferred = true
		by.owes = append(by.owes, c)
		return
	}
	c.wakeWriterLocked()
}

// flushOwed writes what this reader owes (wakeByLocked) before it reads
// again or waits for anything. Reader goroutine only.
func (c *client) flushOwed() {
	c.commitRead() // first: its fsync runs while the writes below are made
	for i, t := range c.owes {
		t.flushInline()
		c.owes[i] = nil
	}
	c.owes = c.owes[:0]
}

// flushInline writes c's output from the goroutine of a reader that owed
// it. It takes the writer's role for the write, so that anyone appending
// meanwhile finds a writer "running" and leaves the flush to it; whatever
// is left then, or was not taken by the kernel, goes to a writer goroutine.
func (c *client) flushInline() {
	s := c.sess
	s.mu.Lock()
	c.deferred = false
	if c.writing || c.closed || len(c.out) == 0 {
		s.mu.Unlock()
		return
	}
	buf := c.out
	c.out = c.spare[:0]
	c.spare = nil
	msgs, pkts := c.outMsgs, c.outPkts
	c.outMsgs, c.outPkts = 0, 0
	c.writing = true
	c.writers.Add(1) // finish waits for this write as for a writer's
	s.mu.Unlock()

	n := c.tryWrite(buf)
	c.b.stats.bytesOut.Add(int64(n))
	// The batch's packets are counted here even when the writer below
	// sends the rest of them: it counts only what it takes from c.out.
	c.b.stats.msgsOut.Add(msgs)
	c.b.stats.pktsOut.Add(pkts)

	s.mu.Lock()
	if n < len(buf) {
		// The rest goes first, ahead of what was appended meanwhile.
		rest := buf[:copy(buf, buf[n:])]
		c.out = append(rest, c.out...)
		c.wakePending = true
	} else {
		if cap(buf) <= 256<<10 {
			c.spare = buf[:0]
		}
		// With a topic checker, deliveries queued for their receive
		// check are the writer's to pump (pumpChecked).
		checked := c.b.hooks.Topics != nil && s.client == c && c.b.pumpable(s)
		if len(c.out) == 0 && !c.wakePending && !checked {
			c.writing = false
			s.mu.Unlock()
			c.writers.Done()
			return
		}
		c.wakePending = true
	}
	// A writer goroutine takes over, still "running" for the others: a
	// wake-up token sent meanwhile makes it flush once more, no harm. A
	// lingering one is handed the role (it alone may read c.wake).
	if c.lingering {
		c.handed = true
		c.signal()
		s.mu.Unlock()
		c.writers.Done() // the lingering writer counts for itself
		return
	}
	s.mu.Unlock()
	go c.writeLoop()
}

// tryWrite writes what the socket takes of buf without waiting, and returns
// how much that was. A write error is left for the writer goroutine to meet
// again (it closes the connection).
func (c *client) tryWrite(buf []byte) int {
	w := c.inl
	if w == nil {
		sc, ok := c.conn.(syscall.Conn)
		if !ok {
			return 0
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return 0
		}
		w = &inlineWriter{raw: raw}
		w.write = func(fd uintptr) bool {
			n, err := writeFD(fd, w.buf)
			switch {
			case err == syscall.EAGAIN:
				w.n, w.err = 0, errWouldBlock
			case err != nil:
				w.n, w.err = 0, err
			default:
				w.n, w.err = n, nil
			}
			return true // never wait: the writer goroutine does that
		}
		c.inl = w
	}
	// The deadline is the writer's: here it only has to be in the
	// future, or RawConn.Write refuses at once. Only deadlines later than
	// this one are ever set (the writer's, before a blocking write).
	if now := time.Now(); !now.Before(w.renew) {
		wt := c.b.limits.WriteTimeout
		c.conn.SetWriteDeadline(now.Add(wt))
		w.renew = now.Add(wt / 2)
	}
	w.buf = buf
	w.n, w.err = 0, nil
	if err := w.raw.Write(w.write); err != nil {
		w.n = 0
	}
	w.buf = nil
	return w.n
}

// ackNow appends the acknowledgement of an inbound PUBLISH that waits for
// nothing (no store write, none queued before it) and leaves it to the end
// of the read batch; false when it has to wait (queueAck). Reader goroutine.
func (c *client) ackNow(t packets.Type, pid uint16, code packets.ReasonCode, reason string) bool {
	s := c.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.acks != nil && len(c.acks.q) > 0 {
		return false
	}
	c.appendAck(t, pid, code, reason)
	c.wakeOwnLocked()
	return true
}

package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"github.com/mqttd/mqttd/internal/webhook/spool"
)

// Durable delivery (Options.Spool set). A lane's events leave memory for
// the spool when its queue is full or a batch fails in a way a retry may
// cure (the plugin is down, slow or overloaded); from then on the lane
// moves everything pushed to it into the spool too, until the spool has
// delivered the last record the lane wrote. One goroutine delivers the
// spool oldest first, so a client's events reach the plugin in the order
// they were pushed whichever way each went. Before anything moves, the
// batch being sent (if any) is spooled first: if its send then succeeds
// the plugin sees those events twice, which the event id lets it spot; if
// the send fails, nothing is lost.
//
// After a restart the spool may hold events of any client, so every lane
// starts spooling until the records it found have been delivered (see
// spool.Spool.Clear).

// spoolLocked appends c's events to the spool unless they already are.
// l.mu is held: the lane's appends are in its push order.
func (l *lane) spoolLocked(c *chunk) error {
	if c.spooled {
		return nil
	}
	p := l.p
	entries := c.entries(l.entryBuf[:0])
	last, dropped, err := p.opts.Spool.Append(entries)
	clear(entries) // keep no event bytes alive through the buffer
	l.entryBuf = entries[:0]
	if err != nil {
		return err
	}
	c.spooled = true
	l.lastSpooled = last
	l.unsynced += len(entries)
	p.spoolBound.Add(uint64(dropped))
	return nil
}

// enterSpoolLocked makes the lane spool: the batch being sent first, then
// everything queued. On an append error the lane falls back to memory
// and the caller drops what it must.
func (l *lane) enterSpoolLocked() error {
	defer l.counted()
	l.spooling = true
	if c := l.inflight; c != nil && !c.spooled {
		if err := l.spoolLocked(c); err != nil {
			l.spooling = false
			return err
		}
		if l.cancel != nil {
			l.cancel() // its events are safe; no need to wait for the plugin
		}
	}
	for len(l.queue) > 0 {
		c := l.queue[0]
		if err := l.spoolLocked(c); err != nil {
			l.spooling = false
			return err
		}
		l.queued -= c.events()
		l.bytes -= c.live()
		l.dropChunk(0)
	}
	return nil
}

// spoolingLocked reports whether the lane's events go to the spool, and
// lets the lane go back to memory once everything it spooled, and
// everything a restart or an older plugin left there, is delivered.
func (l *lane) spoolingLocked() bool {
	if l.spooling && l.p.gateOpen() && l.p.opts.Spool.Head() > l.lastSpooled && l.p.opts.Spool.Clear() {
		l.spooling = false
	}
	return l.spooling
}

// handleDurable sends or spools the batch c (l.inflight).
func (l *lane) handleDurable(c *chunk) {
	p := l.p
	l.mu.Lock()
	if l.spoolingLocked() {
		l.spoolOrFail(c)
		l.mu.Unlock()
		l.sync()
		return
	}
	ctx, cancel := context.WithCancel(p.stop)
	l.cancel = cancel
	l.mu.Unlock()
	toSpool := l.deliver(ctx, append(c.payload(), tail...), c.events())
	l.mu.Lock()
	l.cancel = nil
	l.mu.Unlock()
	cancel()
	if !toSpool {
		return
	}
	l.mu.Lock()
	if !c.spooled {
		if err := l.enterSpoolLocked(); err != nil {
			p.failed.Add(uint64(c.events()))
			p.report(err)
		}
	}
	l.mu.Unlock()
	l.sync()
}

// spoolOrFail spools c, counting its events failed if the spool refuses.
func (l *lane) spoolOrFail(c *chunk) {
	if err := l.spoolLocked(c); err != nil {
		l.p.failed.Add(uint64(c.events()))
		l.p.report(err)
	}
}

// sync fsyncs the spool if this lane wrote to it since the last time,
// and only then counts those events spooled: the count is of events that
// survive a crash.
func (l *lane) sync() {
	l.mu.Lock()
	n := l.unsynced
	l.unsynced = 0
	l.mu.Unlock()
	if n == 0 {
		return
	}
	if err := l.p.opts.Spool.Sync(); err != nil {
		l.p.failed.Add(uint64(n))
		l.p.report(err)
		return
	}
	l.p.spooled.Add(uint64(n))
}

// entries splits c's kept events into spool entries; their JSON aliases
// c's body.
func (c *chunk) entries(dst []spool.Entry) []spool.Entry {
	for i := c.first; i < len(c.starts); i++ {
		end := len(c.body)
		if i+1 < len(c.starts) {
			end = c.starts[i+1] - 1 // the comma
		}
		js := c.body[c.starts[i]:end]
		dst = append(dst, spool.Entry{ID: eventID(js), JSON: js})
	}
	return dst
}

// eventID reads the id an event object starts with (the encoder writes it
// first); "" when it has none.
func eventID(js []byte) string {
	const prefix = `{"id":"`
	if !bytes.HasPrefix(js, []byte(prefix)) {
		return ""
	}
	rest := js[len(prefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return ""
	}
	if bytes.IndexByte(rest[:end], '\\') < 0 {
		return string(rest[:end])
	}
	var id string // escaped: let encoding/json find the end
	if err := json.NewDecoder(bytes.NewReader(js[len(prefix)-1:])).Decode(&id); err != nil {
		return ""
	}
	return id
}

// gateOpen reports whether Options.Gate lets the spool be delivered.
func (p *Pipeline) gateOpen() bool {
	select {
	case <-p.opts.Gate:
		return true
	default:
		return p.opts.Gate == nil
	}
}

// SpoolAll makes every lane spool what it holds and everything pushed to
// it from now on, as a failing plugin would: for events that must survive
// a restart before they may be sent (see Options.Gate). Without a spool it
// does nothing.
func (p *Pipeline) SpoolAll() {
	if p.opts.Spool == nil {
		return
	}
	for _, l := range p.lanes {
		l.mu.Lock()
		if !l.spooling {
			if err := l.enterSpoolLocked(); err != nil {
				p.report(err) // the queue stays in memory, delivered as usual
			}
		}
		l.mu.Unlock()
		l.signal() // to fsync
	}
}

// keep returns the records of recs that Options.Keep wants, in order,
// reusing recs.
func (p *Pipeline) keep(recs []spool.Record) []spool.Record {
	if p.opts.Keep == nil {
		return recs
	}
	kept := recs[:0]
	for _, r := range recs {
		if p.opts.Keep(r.JSON) {
			kept = append(kept, r)
		}
	}
	return kept
}

// drain delivers the spool, oldest first, one batch at a time, until the
// pipeline stops; while Options.Gate is shut, it waits. Records Keep does
// not want are released with the batch they were read in, unsent.
func (p *Pipeline) drain() {
	defer close(p.drained)
	sp := p.opts.Spool
	if p.opts.Gate != nil {
		select {
		case <-p.opts.Gate:
		case <-p.stop.Done():
			return
		}
	}
	body := make([]byte, 0, 4096)
	for attempt := 0; p.stop.Err() == nil; {
		changed := sp.Changed()
		recs, err := sp.Peek(p.opts.MaxEvents, p.opts.MaxBytes-len(head)-len(tail))
		if err == nil && len(recs) == 0 {
			select {
			case <-changed:
			case <-p.stop.Done():
			}
			continue
		}
		var last uint64 // the batch's last record, kept or not: released with it
		unwanted := 0
		if err == nil {
			last = recs[len(recs)-1].Seq
			n := len(recs)
			recs = p.keep(recs)
			unwanted = n - len(recs)
			if len(recs) == 0 {
				p.unwanted.Add(uint64(unwanted))
				p.report(sp.Release(last))
				continue
			}
			body = appendBody(body[:0], recs)
			err = p.send(p.stop, body, len(recs))
		}
		if p.stop.Err() != nil {
			return
		}
		var re *RetryableError
		switch {
		case err == nil:
			attempt = 0
			p.batches.Add(1)
			p.sent.Add(uint64(len(recs)))
			p.fromSpool.Add(uint64(len(recs)))
			p.unwanted.Add(uint64(unwanted))
			p.report(sp.Release(last))
		case errors.As(err, &re):
			p.retried.Add(1)
			p.report(err)
			if !p.sleep(p.opts.backoff(attempt, re.After)) {
				return
			}
			attempt++
		case len(recs) > 0: // refused for good: retrying cannot help
			p.failed.Add(uint64(len(recs)))
			p.unwanted.Add(uint64(unwanted))
			p.report(err)
			p.report(sp.Release(last))
		default: // the spool could not be read
			p.report(err)
			if !p.sleep(p.opts.MaxBackoff) {
				return
			}
		}
	}
}

func appendBody(dst []byte, recs []spool.Record) []byte {
	dst = append(dst, head...)
	for i, r := range recs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, r.JSON...)
	}
	return append(dst, tail...)
}

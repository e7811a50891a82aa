package batch

import (
	"log/slog"
	"sync"
	"time"
)

// reportEvery spaces failure log lines: a plugin that is down for an hour
// should cost the operator a screenful, not a disk.
const reportEvery = 10 * time.Second

// reporter logs what went wrong since its last line, at most once per
// reportEvery per pipeline, with counts rather than one line per event.
type reporter struct {
	log     *slog.Logger
	mu      sync.Mutex
	next    time.Time // no line before this
	logged  Stats     // counters as of the last line
	lastErr error
}

// report notes err (nil after a success) and logs if a line is due.
func (p *Pipeline) report(err error) {
	r := &p.rep
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.lastErr = err
	}
	if now := time.Now(); !now.Before(r.next) && r.line(p) {
		r.next = now.Add(reportEvery)
	}
}

// flush logs what is not logged yet, due or not; Close calls it last.
func (r *reporter) flush(p *Pipeline) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.line(p)
}

func (r *reporter) line(p *Pipeline) bool {
	s := p.counters()
	was := r.logged
	if s.Dropped == was.Dropped && s.Retried == was.Retried {
		return false
	}
	args := []any{
		"dropped_overflow", s.Dropped.Overflow - was.Dropped.Overflow,
		"dropped_failed", s.Dropped.Failed - was.Dropped.Failed,
		"dropped_encode", s.Dropped.Encode - was.Dropped.Encode,
		"dropped_shutdown", s.Dropped.Shutdown - was.Dropped.Shutdown,
		"dropped_spool_bound", s.Dropped.Spool - was.Dropped.Spool,
		"retried", s.Retried - was.Retried,
	}
	if r.lastErr != nil {
		args = append(args, "last_error", r.lastErr.Error())
	}
	r.log.Warn(reportAdvice(s.Dropped.Encode > was.Dropped.Encode), args...)
	r.logged, r.lastErr = s, nil
	return true
}

// reportAdvice is the report's message. An event that cannot be encoded is
// the broker's fault, not the plugin's: the broker handed over an event
// the contract does not allow, so that part of the report says so.
func reportAdvice(encodeFailed bool) string {
	msg := "plugin events retried or dropped since the last report: check the plugin service (last_error); if overflow keeps growing, raise its queue size; if dropped_spool_bound does, its queue.durable-max-bytes"
	if encodeFailed {
		msg += "; dropped_encode counts events the broker could not encode, which is a broker bug, not the plugin's: please report it with last_error"
	}
	return msg
}

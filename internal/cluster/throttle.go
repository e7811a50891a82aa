package cluster

import (
	"log/slog"
	"sync"
	"time"
)

// throttle keeps a failure that may happen once per message (NATS out of
// reach, say) from flooding the log: one line per interval, saying how many
// were not logged since. The failures are counted in Stats regardless.
type throttle struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

const throttleInterval = 10 * time.Second

// warn logs msg unless one was logged within the interval.
func (t *throttle) warn(log *slog.Logger, msg string, args ...any) {
	t.mu.Lock()
	now := time.Now()
	if !t.last.IsZero() && now.Sub(t.last) < throttleInterval {
		t.skipped++
		t.mu.Unlock()
		return
	}
	skipped := t.skipped
	t.last, t.skipped = now, 0
	t.mu.Unlock()
	if skipped > 0 {
		args = append(args, "not_logged_since_last", skipped)
	}
	log.Warn(msg, args...)
}

package webhook

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// slots bounds the calls one endpoint has in flight (max-concurrent): a
// flood of logins with passwords nobody has cached must queue here, under
// each call's timeout, rather than pile onto the plugin until every call,
// good logins included, times out and the breaker opens.
type slots struct {
	free  chan struct{}
	waits prometheus.Counter // calls that found no free slot at once
}

func newSlots(n int, waits prometheus.Counter) *slots {
	s := &slots{free: make(chan struct{}, n), waits: waits}
	for range n {
		s.free <- struct{}{}
	}
	return s
}

// take gets a slot, waiting until ctx ends; false means none came free.
func (s *slots) take(ctx context.Context) bool {
	select {
	case <-s.free:
		return true
	default:
	}
	s.waits.Inc()
	select {
	case <-s.free:
		return true
	case <-ctx.Done():
		return false
	}
}

// give hands a slot back.
func (s *slots) give() { s.free <- struct{}{} }

package webhook

import (
	"errors"

	"github.com/sony/gobreaker/v2"
)

// errAbandoned ends a shared call whose every waiter has gone (their
// clients disconnected). It is nobody's answer and says nothing about the
// plugin's health, so the breaker does not count it.
var errAbandoned = errors.New("every caller gave up")

// newBreaker builds the breaker in front of one endpoint. It opens on
// ConsecutiveFailures errors in a row, or, when FailureRatio is set, once
// that fraction of at least MinRequests calls in the Interval failed. Only
// errors are failures: a deny is the plugin working.
func newBreaker(name string, o BreakerOptions, changed func(from, to gobreaker.State)) *gobreaker.CircuitBreaker[verdict] {
	return gobreaker.NewCircuitBreaker[verdict](gobreaker.Settings{
		Name:        name,
		MaxRequests: uint32(o.HalfOpenRequests),
		Interval:    o.Interval,
		Timeout:     o.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if c.ConsecutiveFailures >= uint32(o.ConsecutiveFailures) {
				return true
			}
			return o.FailureRatio > 0 && c.Requests >= uint32(o.MinRequests) &&
				float64(c.TotalFailures) >= o.FailureRatio*float64(c.Requests)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) { changed(from, to) },
		IsExcluded:    excluded,
	})
}

// excluded reports the errors a breaker counts neither way: a call nobody
// waits for, and refusals, which the client provoked and which say nothing
// about the plugin's health (one client must not open the breaker for all).
func excluded(err error) bool {
	var we *Error
	return errors.Is(err, errAbandoned) || (errors.As(err, &we) && we.Kind.refusal())
}

// stateName is how metrics and the admin API spell a breaker state.
func stateName(s gobreaker.State) string {
	switch s {
	case gobreaker.StateHalfOpen:
		return "half_open"
	case gobreaker.StateOpen:
		return "open"
	}
	return "closed"
}

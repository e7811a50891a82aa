package batch

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// RetryableError is a failed send that may succeed later: a 5xx, a 429, a
// timeout or a connection error. After is how long the plugin asked us to
// wait (Retry-After); 0 leaves the wait to the pipeline's backoff.
type RetryableError struct {
	Err   error         // the failure
	After time.Duration // the plugin's Retry-After; 0 when it gave none
}

// Error returns the underlying failure's message, or a generic one when
// Err is nil.
func (e *RetryableError) Error() string {
	if e.Err == nil {
		return "retryable plugin error"
	}
	return e.Err.Error()
}

// Unwrap returns Err, so errors.Is can still see a timeout or a
// context cancellation behind the retry.
func (e *RetryableError) Unwrap() error { return e.Err }

// Classify turns the outcome of an HTTP POST /events into what a Sender
// returns: nil for 2xx; a *RetryableError for a transport error (timeout,
// refused, reset), 429 and 5xx, honouring Retry-After; a permanent error for
// anything else, so the batch is dropped rather than sent again to a plugin
// that will refuse it again. The caller still closes resp.Body.
func Classify(resp *http.Response, err error) error {
	if err != nil {
		return &RetryableError{Err: fmt.Errorf("POST /events: %w", err)}
	}
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusTooManyRequests || c >= 500 && c < 600:
		return &RetryableError{
			Err:   fmt.Errorf("POST /events: plugin answered %s; retrying", resp.Status),
			After: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
		}
	}
	return fmt.Errorf("POST /events: plugin answered %s, batch dropped: the plugin must answer 2xx to a valid batch (check its URL and logs)", resp.Status)
}

// retryAfter reads a Retry-After value, delay-seconds or an HTTP-date
// (RFC 9110 §10.2.3); anything unreadable or in the past is 0.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		// Clamped before multiplying so a huge value cannot overflow;
		// MaxBackoff caps it much lower anyway.
		return time.Duration(min(max(s, 0), 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// backoff is the wait before retry number attempt+1: the plugin's
// Retry-After if it gave one, else a random time up to Backoff·2^attempt
// ("full jitter", so lanes that failed together do not retry together),
// never more than MaxBackoff.
func (o *Options) backoff(attempt int, after time.Duration) time.Duration {
	if after > 0 {
		return min(after, o.MaxBackoff)
	}
	ceil := o.MaxBackoff
	if attempt < 32 {
		ceil = min(o.Backoff<<attempt, o.MaxBackoff)
		if ceil <= 0 { // shifted past int64
			ceil = o.MaxBackoff
		}
	}
	return rand.N(ceil + 1)
}

package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Kind classifies why a decision call failed. Each kind is a metrics
// outcome (error_<kind>) and each reads differently to an operator: a
// timeout wants a bigger timeout or a faster plugin, refused wants the
// service started, status and bad_answer want the plugin fixed.
type Kind uint8

const (
	KindTimeout     Kind = iota + 1 // the call outlived the timeout (or the client went away first)
	KindRefused                     // no connection: refused, DNS, TLS handshake, reset
	KindStatus                      // an HTTP status that is not a decision (5xx, 3xx, 408, 429)
	KindBadAnswer                   // a 2xx whose body is not a decision: not JSON, unknown result, too long
	KindBreakerOpen                 // the breaker is open: no call was made

	// The kinds below are refusals, not failures (see Kind.refusal): the
	// request itself was at fault, so the client is refused, the on-error
	// policy is not applied and the breaker does not count them.
	KindRejected // the plugin answered a 4xx that blames the request (400, 413, 422, ...)
	KindTooLarge // the request body is larger than max-request: no call was made
	KindBusy     // no free authenticate slot (max-concurrent) within the timeout: no call was made
)

// refusal reports whether errors of kind k refuse the client rather than
// fail the plugin. A client can provoke each of them at will (a huge user
// property, a flood of logins), so none may lead to the on-error answer or
// open the breaker for everyone else.
func (k Kind) refusal() bool { return k >= KindRejected }

// String is the kind's name in metrics labels and logs ("timeout",
// "breaker_open", ...).
func (k Kind) String() string {
	switch k {
	case KindTimeout:
		return "timeout"
	case KindRefused:
		return "refused"
	case KindStatus:
		return "status"
	case KindBadAnswer:
		return "bad_answer"
	case KindBreakerOpen:
		return "breaker_open"
	case KindRejected:
		return "rejected"
	case KindTooLarge:
		return "too_large"
	case KindBusy:
		return "busy"
	}
	return "unknown"
}

// outcome is the decisions_total label of an error of this kind.
func (k Kind) outcome() string {
	if k == KindBreakerOpen || k.refusal() {
		return k.String()
	}
	return "error_" + k.String()
}

// Error is a failed decision call. The hooks chain applies the plugin's
// on-error policy to it; errors.As lets callers and tests read the kind.
type Error struct {
	Plugin   string // the plugin's alias
	Endpoint string // the endpoint: "authenticate", "topic_filtering" or "manifest"
	Kind     Kind   // what went wrong, which decides what the chain makes of it
	Status   int    // KindStatus: the HTTP status
	Err      error  // the cause, if any
}

// Error names the plugin and endpoint and says what to check, then the
// cause.
func (e *Error) Error() string {
	msg := fmt.Sprintf("plugin %s: %s: %s", e.Plugin, e.Endpoint, e.advice())
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause, for errors.Is (a context deadline, a network
// error).
func (e *Error) Unwrap() error { return e.Err }

// advice says what happened and what to do about it.
func (e *Error) advice() string {
	switch e.Kind {
	case KindTimeout:
		return "no answer in time (raise the alias's timeout or make the plugin faster)"
	case KindRefused:
		return "cannot reach the plugin service (is it running, and is the alias's url right?)"
	case KindStatus:
		return fmt.Sprintf("answered HTTP %d, which is not a decision (want 2xx, 204, 401 or 403; check the url path and the plugin's logs)", e.Status)
	case KindBadAnswer:
		return `answered something that is not a decision (want {"result":"allow"|"deny"|"ignore"}; see api/openapi.yaml)`
	case KindRejected:
		return fmt.Sprintf("answered HTTP %d: the plugin rejects the request itself, so the client is refused", e.Status)
	case KindTooLarge:
		return "the request is larger than max-request; refused without a call"
	case KindBusy:
		return "every authenticate slot (max-concurrent) stayed busy for the timeout; refused without a call"
	case KindBreakerOpen:
		return "circuit breaker open after repeated errors; on-error answers until a probe succeeds"
	}
	return "failed"
}

// classify turns a transport error from http.Client.Do into a kind. The
// context's error is checked first: a deadline can surface as any of
// several net errors depending on where the call was when it fired.
func classify(ctx context.Context, err error) Kind {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return KindTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return KindTimeout
	}
	return KindRefused
}

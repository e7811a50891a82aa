package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/webhook/wire"
)

// verdict is a decision as the plugin answered it, with what it said
// about reuse.
type verdict struct {
	d     hooks.Decision
	ttl   time.Duration // the plugin's lifetime, when given
	given bool
}

// maxAnswerSeconds bounds the reuse an answer may ask for, by cache_ttl or
// max-age: about 34 years, past any useful lifetime, and small enough that
// the conversion to a time.Duration cannot overflow (an unclamped
// cache_ttl of 1e10 would wrap to a negative or a short lifetime).
const maxAnswerSeconds = 1 << 30

// readDecision applies the answer rules of api/openapi.yaml: 2xx with a
// body is its result, 204 allows, 401 and 403 deny, a 4xx that blames the
// request rejects it (KindRejected, a refusal), and anything else is an
// error. A 404 in particular is never "ignore": a wrong URL must not let
// anyone in; it is an error so on-error answers and the breaker sees it.
func readDecision(r *response) (verdict, Kind, error) {
	switch {
	case r.status == http.StatusNoContent:
		v := verdict{d: hooks.Decision{Result: hooks.Allow}}
		v.ttl, v.given = cacheControl(r.header)
		return v, 0, nil
	case r.status == http.StatusUnauthorized || r.status == http.StatusForbidden:
		v := verdict{d: hooks.Decision{Result: hooks.Deny}}
		v.ttl, v.given = cacheControl(r.header)
		// A body is optional here; its reason is used when it parses.
		if d, err := parseDecision(r); err == nil && d.d.Result == hooks.Deny {
			v = d
		}
		return v, 0, nil
	case r.status >= 200 && r.status < 300:
		v, err := parseDecision(r)
		if err != nil {
			return verdict{}, KindBadAnswer, err
		}
		return v, 0, nil
	case blamesRequest(r.status):
		return verdict{}, KindRejected, nil
	}
	return verdict{}, KindStatus, nil
}

// blamesRequest reports whether a status says the request was at fault
// rather than the plugin: a 4xx other than 401 and 403 (decisions), 408 (the
// plugin timed out reading), 429 (the plugin is overloaded) and 404, 405
// and 410 (the URL or method is wrong: the plugin's setup, which answers so
// to every request alike). A client can provoke the others at will, with a
// huge or odd CONNECT, so they refuse it and are never a plugin failure.
func blamesRequest(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusGone:
		return false
	}
	return status >= 400 && status < 500
}

// parseDecision reads a Decision body. Unknown fields are allowed (a
// plugin may answer more than this broker version knows); an unknown
// result, an out-of-range reason code or TTL, or a cut-off body is not.
func parseDecision(r *response) (verdict, error) {
	if r.tooLong {
		return verdict{}, fmt.Errorf("answer longer than max-body (%d bytes)", len(r.body))
	}
	if len(r.body) == 0 {
		return verdict{}, errors.New("empty body (answer 204 to allow without one)")
	}
	var d wire.Decision
	if err := json.Unmarshal(r.body, &d); err != nil {
		return verdict{}, fmt.Errorf("not a JSON decision: %w", err)
	}
	var v verdict
	switch d.Result {
	case wire.DecisionResultAllow:
		v.d.Result = hooks.Allow
	case wire.DecisionResultDeny:
		v.d.Result = hooks.Deny
	case wire.DecisionResultIgnore:
		v.d.Result = hooks.Ignore
	case wire.DecisionResultContinue:
		v.d.Result = hooks.Continue
	default:
		return verdict{}, fmt.Errorf("result %q is not allow, deny, ignore or continue", d.Result)
	}
	v.d.AuthData = string(d.AuthData)
	if d.Reason != nil {
		v.d.Reason = *d.Reason
	}
	if d.ReasonCode != nil {
		if *d.ReasonCode < 0 || *d.ReasonCode > 255 {
			return verdict{}, fmt.Errorf("reason_code %d is not 0 to 255", *d.ReasonCode)
		}
		v.d.ReasonCode = byte(*d.ReasonCode)
	}
	// cache_ttl in the body wins over Cache-Control (api/openapi.yaml).
	if d.CacheTTL != nil {
		if *d.CacheTTL < 0 {
			return verdict{}, fmt.Errorf("cache_ttl %d is negative (0 means do not reuse)", *d.CacheTTL)
		}
		v.ttl, v.given = time.Duration(min(*d.CacheTTL, maxAnswerSeconds))*time.Second, true
	} else {
		v.ttl, v.given = cacheControl(r.header)
	}
	return v, nil
}

// cacheControl reads what Cache-Control says about reusing an answer:
// no-store and no-cache forbid it (given, 0), max-age=N allows N seconds.
// Other directives and malformed values say nothing.
func cacheControl(h http.Header) (time.Duration, bool) {
	var ttl time.Duration
	given := false
	for _, line := range h.Values("Cache-Control") {
		for dir := range strings.SplitSeq(line, ",") {
			dir = strings.ToLower(strings.TrimSpace(dir))
			if dir == "no-store" || dir == "no-cache" {
				return 0, true
			}
			if v, ok := strings.CutPrefix(dir, "max-age="); ok {
				n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 64)
				if err == nil && n >= 0 {
					ttl, given = time.Duration(min(n, maxAnswerSeconds))*time.Second, true
				}
			}
		}
	}
	return ttl, given
}

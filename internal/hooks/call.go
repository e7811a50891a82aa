package hooks

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// answer is one plugin's contribution to a chain.
type answer struct {
	Decision
	// failed: the decision is the plugin's on-error policy, not its own
	// answer. A deny then means an outage, which clients are told apart.
	failed bool
}

// outage reports whether a deny says the plugin could not decide: its
// on-error policy answered, or it was too busy to take the call (0x89).
func (a answer) outage() bool {
	return a.failed || (a.Result == Deny && packets.ReasonCode(a.ReasonCode) == packets.ServerBusy)
}

// clientGone is the answer to a question whose asker left before the
// plugin answered.
var clientGone = answer{Decision: Decision{Result: Deny, Reason: "the client went away before the decision"}}

// panicError is what a plugin's panic becomes.
type panicError struct{ v any }

func (e *panicError) Error() string { return fmt.Sprintf("plugin panicked: %v", e.v) }

// ask puts one question to p: with p's timeout, a panic turned into an
// error, and an error, timeout or panic turned into p's on-error policy.
// act indexes the decision counters. It starts no goroutine, and allocates
// nothing when the plugin has no timeout and answers without error.
func (p *plugin) ask(ctx context.Context, act int, q func(context.Context) (Decision, error)) answer {
	return p.askUpTo(ctx, act, Deny, q)
}

// askUpTo is ask where the highest result the plugin may give is last:
// Deny, or Continue for a step of enhanced authentication.
func (p *plugin) askUpTo(ctx context.Context, act int, last Result, q func(context.Context) (Decision, error)) answer {
	cctx, cancel := ctx, context.CancelFunc(nil)
	if p.timeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, p.timeout)
	}
	d, err := guard(cctx, last, q)
	out := classify(ctx, cctx, d, err)
	if cancel != nil {
		cancel()
	}
	p.counters.decisions[act][out].Inc()
	switch out {
	case outAllow, outDeny, outIgnore, outContinue:
		return answer{Decision: d}
	case outCanceled:
		// The caller's ctx ended (the client went away, or the broker is
		// closing): a refusal, never the on-error answer, or a client
		// could choose that answer by hanging up mid-call.
		return clientGone
	default:
		p.warn("plugin failed; its on-error policy decides", "action", actNames[act], "result", outcomeNames[out],
			"on_error", p.onError.String(), "err", err)
	}
	return p.onErrorAnswer(err)
}

// guard calls q, turning a panic into an error so that a broken plugin
// never takes a client's goroutine (or the broker) down with it.
func guard(ctx context.Context, last Result, q func(context.Context) (Decision, error)) (d Decision, err error) {
	defer func() {
		if v := recover(); v != nil {
			d, err = Decision{}, &panicError{v}
		}
	}()
	d, err = q(ctx)
	if err == nil && d.Result > last {
		err = fmt.Errorf("plugin answered result %s (%d), which is none of allow, deny, ignore here", d.Result, d.Result)
	}
	return d, err
}

// outcomeOf is the outcome of each answer a plugin may give.
var outcomeOf = [...]outcome{Ignore: outIgnore, Allow: outAllow, Deny: outDeny, Continue: outContinue}

// classify names how a call ended. ctx is the caller's, cctx the one the
// plugin got (ctx plus the plugin's timeout). The caller's ctx is looked at
// before the timeout: when both ended, the client left, and a call nobody
// waits for is not the plugin's failure.
func classify(ctx, cctx context.Context, d Decision, err error) outcome {
	switch _, panicked := err.(*panicError); { // guard returns it unwrapped
	case err == nil:
		return outcomeOf[d.Result]
	case panicked:
		return outPanic
	case ctx.Err() != nil:
		return outCanceled
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		return outTimeout
	}
	return outError
}

// onErrorAnswer is p's decision when it could not decide (docs/design.md §3.2).
func (p *plugin) onErrorAnswer(err error) answer {
	a := answer{failed: true}
	switch {
	case errors.Is(err, ErrStale):
		a.Result = Deny
	case p.onError == OnErrorAllow:
		a.Result = Allow
	case p.onError == OnErrorIgnore:
		a.Result = Ignore
	default:
		// OnErrorStale: the plugin serves stale decisions itself, so an
		// error that reaches the chain means it had none to serve.
		a.Result = Deny
	}
	return a
}

// warn logs about p at most once per logEvery, saying how many lines it
// held back meanwhile: a plugin failing on every message must not flood
// the log.
func (p *plugin) warn(msg string, args ...any) {
	ok, held := p.logs.allow()
	if !ok {
		return
	}
	args = append(args, "plugin", p.alias, "type", p.kind)
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	p.logger.Warn(msg, args...)
}

const logEvery = 10 * time.Second

// throttle lets one log line through per logEvery and counts the rest.
type throttle struct {
	next atomic.Int64 // unix nanoseconds before which lines are held back
	held atomic.Int64
}

func (t *throttle) allow() (ok bool, held int64) {
	now := time.Now().UnixNano()
	next := t.next.Load()
	if now < next || !t.next.CompareAndSwap(next, now+int64(logEvery)) {
		t.held.Add(1)
		return false, 0
	}
	return true, t.held.Swap(0)
}

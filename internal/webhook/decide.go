package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/webhook/cache"
)

// Authenticate asks POST /authenticate, or answers from the cache.
func (p *Plugin) Authenticate(ctx context.Context, req *hooks.AuthRequest) (hooks.Decision, error) {
	if req.ExchangeID != "" {
		return p.exchangeStep(ctx, req)
	}
	key := authKey(p.keys, req)
	if d, ok := p.lookup(key); ok {
		return d, nil
	}
	// The body is built before joining a shared call: the request may not
	// be kept once this returns, and the shared call may outlive it.
	body, err := authBody(req)
	if err != nil {
		return hooks.Decision{}, err
	}
	if d, ok := p.tooLarge(p.auth, body); ok {
		return d, nil
	}
	return p.decide(ctx, p.auth, key, req.Client, body)
}

// FilterTopicNow implements hooks.TopicFilterNow from the memo of fresh
// decisions alone: no hashing, no lock, no call. A hit counts as a cache
// hit: it serves a cached decision. A miss sends the broker to FilterTopic,
// which fills the memo. hooks may call it during and after
// Close (see hooks.TopicFilterNow): it then only reads the memo, which
// Close empties and shuts, so it misses.
func (p *Plugin) FilterTopicNow(c *mqtt.ClientInfo, r mqtt.TopicRequest) (hooks.Decision, bool) {
	d, _, ok := p.FilterTopicNowStamped(c, r)
	return d, ok
}

// FilterTopicNowStamped is FilterTopicNow with a stamp for the chain to
// keep the decision with the connection (hooks.TopicFilterReuse): it holds
// while the memo's copy is fresh and no purge or Close came since.
func (p *Plugin) FilterTopicNowStamped(c *mqtt.ClientInfo, r mqtt.TopicRequest) (hooks.Decision, hooks.Stamp, bool) {
	if p.memo == nil {
		return hooks.Decision{}, hooks.Stamp{}, false
	}
	mk := keyOf(c, r)
	it := p.memo.item(&mk, p.memo.readClock())
	if it == nil {
		return hooks.Decision{}, hooks.Stamp{}, false
	}
	p.hits.Inc()
	return it.d, stampOf(it), true
}

// Reusable implements hooks.TopicFilterReuse.
func (p *Plugin) Reusable(s hooks.Stamp) bool { return p.memo != nil && p.memo.holds(s) }

// Reused implements hooks.TopicFilterReuse: a kept decision served is a
// cache hit, as the lookup it saves would have been.
func (p *Plugin) Reused() { p.hits.Inc() }

// FilterTopic asks POST /topic_filtering, or answers from the cache, and
// fills the memo. It starts where FilterTopicNow stopped: the chain calls it
// only after FilterTopicNow missed for the same check (see
// hooks.TopicFilterNow), so it does not look in the memo again.
func (p *Plugin) FilterTopic(ctx context.Context, c *mqtt.ClientInfo, r mqtt.TopicRequest) (hooks.Decision, error) {
	var mk memoKey
	var gen uint64
	if p.memo != nil {
		mk = keyOf(c, r)
		gen = p.memo.generation() // before the cache is read, see topicMemo.gen
	}
	key := topicKey(p.keys, c, r)
	if e := p.fresh(key); e != nil {
		p.memo.put(mk, gen, e)
		return e.Value, nil
	}
	body, err := topicBody(c, r)
	if err != nil {
		return hooks.Decision{}, err
	}
	if d, ok := p.tooLarge(p.topic, body); ok {
		return d, nil
	}
	d, err := p.decide(ctx, p.topic, key, c, body)
	// Memoize what the call left in the cache, not d: only the cache knows
	// whether the answer may be reused and until when, and d may be a stale
	// decision served on error, whose entry is no longer fresh.
	if err == nil && p.memo != nil {
		if e, ok := p.cache.Get(key); ok && e.Fresh(p.clock()) {
			p.memo.put(mk, gen, e)
		}
	}
	return d, err
}

// tooLarge refuses a request body over MaxRequest, without a call: the
// plugin would have to read it, and a 413 from it is a refusal anyway.
func (p *Plugin) tooLarge(ep *endpoint, body []byte) (hooks.Decision, bool) {
	if int64(len(body)) <= p.opts.MaxRequest {
		return hooks.Decision{}, false
	}
	ep.m.outcome[KindTooLarge.outcome()].Inc()
	return refused(&Error{Plugin: p.opts.Alias, Endpoint: ep.name, Kind: KindTooLarge}), true
}

// lookup is the hot path: a fresh cached decision, without allocating.
func (p *Plugin) lookup(key cache.Key) (hooks.Decision, bool) {
	if e := p.fresh(key); e != nil {
		return e.Value, true
	}
	return hooks.Decision{}, false
}

// fresh returns the fresh cache entry under key, or nil, and counts the
// hit or miss.
func (p *Plugin) fresh(key cache.Key) *cache.Entry[hooks.Decision] {
	if e := p.freshUncounted(key); e != nil {
		p.hits.Inc()
		return e
	}
	if p.cache != nil {
		p.misses.Inc()
	}
	return nil
}

// freshUncounted is fresh without counting: for a second look by a caller
// whose miss is already counted.
func (p *Plugin) freshUncounted(key cache.Key) *cache.Entry[hooks.Decision] {
	if p.cache == nil {
		return nil
	}
	if e, ok := p.cache.Get(key); ok && e.Fresh(p.clock()) {
		return e
	}
	return nil
}

// decide makes the call for a miss, shared with identical concurrent
// misses, caches what the plugin allows to be cached, and turns a failure
// into a stale decision when the policy says so.
func (p *Plugin) decide(ctx context.Context, ep *endpoint, key cache.Key, c *mqtt.ClientInfo, body []byte) (hooks.Decision, error) {
	client, user := c.ClientID, c.Username
	if p.testMissed != nil {
		p.testMissed()
	}
	d, err := p.flights.do(ctx, key, func(ctx context.Context) (hooks.Decision, error) {
		// A caller that missed just before an identical call stored its
		// answer starts a flight of its own once that call is over: the
		// cache has the answer by then.
		if e := p.freshUncounted(key); e != nil {
			return e.Value, nil
		}
		v, err := p.call(ctx, ep, body, false)
		if err == nil {
			p.store(key, client, user, v)
		}
		return v.d, err
	})
	if err == nil {
		return d, nil
	}
	if ctx.Err() != nil {
		// The caller gave up (its client went away): not the plugin's
		// failure, and no stale decision is served for it, or a client
		// could pick an old allow by hanging up mid-call. The chain
		// refuses it.
		return hooks.Decision{}, &Error{Plugin: p.opts.Alias, Endpoint: ep.name, Kind: KindTimeout, Err: ctx.Err()}
	}
	var we *Error
	if errors.As(err, &we) && we.Kind.refusal() {
		return refused(we), nil
	}
	if !errors.As(err, &we) { // the plugin closed
		kind := KindTimeout
		if errors.Is(err, errClosed) {
			kind = KindRefused
		}
		err = &Error{Plugin: p.opts.Alias, Endpoint: ep.name, Kind: kind, Err: err}
	}
	return p.fail(ep, key, err)
}

// refused is the deny for a refusal: the request, not the plugin, was at
// fault. The chain hears a deny, not an error, so neither on-error nor a
// stale decision can answer it.
func refused(we *Error) hooks.Decision {
	d := hooks.Decision{Result: hooks.Deny, Reason: we.advice()}
	if we.Kind == KindBusy {
		d.ReasonCode = 0x89 // server busy, where the packet may carry it
	}
	return d
}

// fail applies the part of the on-error policy that only the plugin can:
// with "stale" it serves the last decision it has for key, however old.
// Every other policy is the chain's to apply.
func (p *Plugin) fail(ep *endpoint, key cache.Key, err error) (hooks.Decision, error) {
	if p.opts.OnError != hooks.OnErrorStale {
		return hooks.Decision{}, err
	}
	if p.cache != nil {
		if e, ok := p.cache.Get(key); ok {
			p.stale.Inc()
			ep.m.outcome["stale"].Inc()
			return e.Value, nil
		}
	}
	return hooks.Decision{}, fmt.Errorf("%w: %w", hooks.ErrStale, err)
}

// call runs one request through the endpoint's breaker and counts its
// outcome. exchange says whether continue is a valid answer.
func (p *Plugin) call(ctx context.Context, ep *endpoint, body []byte, exchange bool) (verdict, error) {
	v, err := ep.breaker.Execute(func() (verdict, error) { return p.post(ctx, ep, body, exchange) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		err = &Error{Plugin: p.opts.Alias, Endpoint: ep.name, Kind: KindBreakerOpen}
	}
	var we *Error
	switch {
	case err == nil:
		ep.m.outcome[v.d.Result.String()].Inc()
	case errors.Is(err, errAbandoned): // nobody is told, nothing is counted
	case errors.As(err, &we):
		ep.m.outcome[we.Kind.outcome()].Inc()
	}
	return v, err
}

// TimesOwnCalls implements hooks.SelfTimed: every request runs under the
// plugin's Timeout (post), and a decision from the memo or the cache, which
// makes none, needs no timer.
func (p *Plugin) TimesOwnCalls() bool { return true }

// post sends one decision request under the per-call timeout and reads
// the answer. Errors are *Error.
func (p *Plugin) post(ctx context.Context, ep *endpoint, body []byte, exchange bool) (verdict, error) {
	fail := func(kind Kind, status int, err error) (verdict, error) {
		return verdict{}, &Error{Plugin: p.opts.Alias, Endpoint: ep.name, Kind: kind, Status: status, Err: err}
	}
	if ctx.Err() != nil {
		return fail(KindTimeout, 0, errAbandoned)
	}
	callCtx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	if ep.slots != nil {
		if !ep.slots.take(callCtx) {
			if ctx.Err() != nil {
				return fail(KindTimeout, 0, errAbandoned)
			}
			return fail(KindBusy, 0, nil)
		}
		defer ep.slots.give()
	}
	start := time.Now()
	r, err := p.client.do(callCtx, http.MethodPost, ep.path, body)
	ep.m.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() != nil { // every waiter left, or the plugin closed: not the plugin's fault
			return fail(KindTimeout, 0, errAbandoned)
		}
		return fail(classify(callCtx, err), 0, err)
	}
	var login *LoginOptions
	if ep == p.auth {
		login = &p.opts.Login
	}
	v, kind, err := readDecision(r, login)
	if le := (*loginError)(nil); errors.As(err, &le) {
		p.metrics.loginRefused.WithLabelValues(p.opts.Alias, le.bound).Inc()
	}
	if kind == 0 && v.d.Result == hooks.Continue && !exchange {
		kind, err = KindBadAnswer, errors.New(`result "continue" answers only an enhanced-authentication step`)
	}
	if kind != 0 {
		return fail(kind, r.status, err)
	}
	p.ready.Store(true)
	return v, nil
}

// store caches v for as long as the plugin and the policy allow. An answer
// that may not be reused also removes the older decision under key, which
// stale serving would otherwise still hand out.
func (p *Plugin) store(key cache.Key, client, user string, v verdict) {
	if p.cache == nil {
		return
	}
	life := p.policy.Lifetime(v.ttl, v.given, v.d.Result == hooks.Deny)
	if life <= 0 {
		p.cache.Remove(key)
		return
	}
	e := &cache.Entry[hooks.Decision]{
		Value:   v.d,
		Expires: p.clock().Add(life).UnixNano(),
		Client:  p.keys.Tag(domainClientID, client),
		User:    p.keys.Tag(domainUsername, user),
	}
	if p.cache.Add(key, e) {
		p.evicts.Inc()
	}
}

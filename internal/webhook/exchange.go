package webhook

import (
	"context"
	"errors"

	"github.com/mqttd/mqttd/internal/hooks"
)

// exchangeStep posts one step of MQTT 5 enhanced authentication. Unlike a
// plain authenticate it never reads or fills the cache and never shares a
// call: each step carries fresh data (nonces, proofs) that only this
// exchange may see, so an answer is never reused, whatever cache_ttl
// says. A failure is the plugin's error; the chain ends the exchange, and
// no stale decision is served for it.
func (p *Plugin) exchangeStep(ctx context.Context, req *hooks.AuthRequest) (hooks.Decision, error) {
	body, err := authBody(req)
	if err != nil {
		return hooks.Decision{}, err
	}
	if d, ok := p.tooLarge(p.auth, body); ok {
		return d, nil
	}
	v, err := p.call(ctx, p.auth, body, true)
	if err == nil {
		return v.d, nil
	}
	var we *Error
	switch {
	case ctx.Err() != nil:
		return hooks.Decision{}, &Error{Plugin: p.opts.Alias, Endpoint: epAuthenticate, Kind: KindTimeout, Err: ctx.Err()}
	case errors.As(err, &we) && we.Kind.refusal():
		return refused(we), nil
	case we == nil:
		kind := KindTimeout
		if errors.Is(err, errClosed) {
			kind = KindRefused
		}
		err = &Error{Plugin: p.opts.Alias, Endpoint: epAuthenticate, Kind: kind, Err: err}
	}
	return hooks.Decision{}, err
}

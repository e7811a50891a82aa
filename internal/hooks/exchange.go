package hooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// exchange is the chain's record of one MQTT 5 enhanced-authentication
// exchange, which the broker keeps with the connection between steps
// (mqtt.AuthStepRequest.State). The client never sees it: a step cannot
// name another connection's exchange, only continue its own.
type exchange struct {
	id    string // exchange_id: sent to the plugin with every step
	alias string // the plugin that answered continue; "" until one did
}

// newExchangeID is 128 random bits in hex: unique, and unguessable by
// anyone who might try to post a step of somebody else's exchange to a
// plugin.
func newExchangeID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// AuthStep implements mqtt.AuthExchanger: one step of enhanced
// authentication (at CONNECT or re-authentication). The first step goes
// to the auth plugins in order, whatever auth.mode says: the first that
// does not ignore the method decides or, answering continue, owns the
// exchange, whose later steps go to it alone. The auth rate limit applies
// to every step, and a decided deny spends a token like a failed login.
func (a *authChain) AuthStep(ctx context.Context, c *mqtt.ClientInfo, req *mqtt.AuthStepRequest) mqtt.AuthExchange {
	src, limited := sourceOf(c.RemoteAddr)
	if !limited {
		x, _ := a.step(ctx, c, req)
		return x
	}
	if why := a.m.limits.begin(src); why != limitNone {
		a.m.chains.count(actAuthenticate, false)
		return mqtt.AuthExchange{Result: a.m.rateLimited(c, why), State: req.State}
	}
	failed := false
	defer func() { a.m.limits.end(src, failed) }()
	x, outage := a.step(ctx, c, req)
	failed = !x.Continue && !x.Result.Allow && !outage
	return x
}

// step asks the plugin(s) for one step and counts a final answer.
func (a *authChain) step(ctx context.Context, c *mqtt.ClientInfo, req *mqtt.AuthStepRequest) (mqtt.AuthExchange, bool) {
	st := a.m.acquire()
	defer st.release()
	x, _ := req.State.(*exchange)
	if x == nil {
		x = &exchange{id: newExchangeID()}
	}
	ar := &AuthRequest{Client: c, Method: req.Method, Data: req.Data, ExchangeID: x.id, Step: req.Step, Reauth: req.Reauth}
	var out mqtt.AuthExchange
	var outage bool
	if x.alias == "" {
		out, outage = st.firstStep(ctx, ar, x)
	} else {
		out, outage = st.nextStep(ctx, ar, x)
	}
	out.State = x
	if !out.Continue {
		a.m.chains.count(actAuthenticate, out.Result.Allow)
	}
	return out, outage
}

// firstStep puts the first step to the auth plugins in order. When every
// one ignores it, nobody knows the method: 0x8C ([MQTT5-4.12.0-1]),
// whatever auth.allow-anonymous says, since the client asked to be
// authenticated.
func (st *state) firstStep(ctx context.Context, req *AuthRequest, x *exchange) (mqtt.AuthExchange, bool) {
	for _, p := range st.auth {
		ans := p.askStep(ctx, req)
		if ans.Result == Ignore {
			continue
		}
		if ans.Result == Continue {
			x.alias = p.alias
		}
		return stepResult(p.alias, ans)
	}
	return mqtt.AuthExchange{Result: mqtt.AuthResult{ReasonCode: byte(packets.BadAuthMethod),
		Reason: "no plugin supports authentication method " + req.Method}}, false
}

// nextStep puts a later step to the plugin that owns the exchange. If a
// Reload removed it, or it no longer authenticates, the exchange fails.
func (st *state) nextStep(ctx context.Context, req *AuthRequest, x *exchange) (mqtt.AuthExchange, bool) {
	for _, p := range st.auth {
		if p.alias != x.alias {
			continue
		}
		ans := p.askStep(ctx, req)
		if ans.Result == Ignore {
			ans.Result, ans.Reason = Deny, "the plugin gave up the authentication exchange"
		}
		return stepResult(p.alias, ans)
	}
	return mqtt.AuthExchange{Result: mqtt.AuthResult{ReasonCode: byte(packets.NotAuthorized),
		Reason: "the plugin of this authentication exchange is gone", Plugin: x.alias}}, false
}

// stepResult turns a plugin's answer to a step into the broker's. A step
// the plugin could not decide is a refusal whatever its on-error policy:
// an exchange is only ever completed by the plugin's own allow.
func stepResult(alias string, ans answer) (mqtt.AuthExchange, bool) {
	if ans.failed {
		ans.Result = Deny
	}
	switch ans.Result {
	case Continue:
		return mqtt.AuthExchange{Continue: true, Data: authData(ans.AuthData)}, false
	case Allow:
		return mqtt.AuthExchange{Data: authData(ans.AuthData), Result: mqtt.AuthResult{Allow: true, Plugin: alias}}, false
	}
	return mqtt.AuthExchange{Result: authDenied(alias, ans)}, ans.outage()
}

// askStep asks p about one step; continue is a valid answer here.
func (p *plugin) askStep(ctx context.Context, req *AuthRequest) answer {
	return p.askUpTo(ctx, actAuthenticate, Continue, func(ctx context.Context) (Decision, error) {
		return p.auth.Authenticate(ctx, req)
	})
}

// authData is the bytes of d, nil for none (so an allow without data puts
// no Authentication Data in CONNACK).
func authData(d string) []byte {
	if d == "" {
		return nil
	}
	return []byte(d)
}

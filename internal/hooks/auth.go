package hooks

import (
	"bytes"
	"context"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// authChain is the broker's mqtt.Authenticator: the auth rules (see
// AuthOptions) over the auth plugins of the current state.
type authChain struct{ m *Manager }

// Authenticate decides one CONNECT. The broker calls it on the connecting
// client's goroutine before any session state changes, with a ctx that
// ends when the client goes away or the broker closes.
//
// A source address that used up its failed logins (auth.rate-limit) is
// refused before any plugin is asked.
func (a *authChain) Authenticate(ctx context.Context, c *mqtt.ClientInfo, password []byte) mqtt.AuthResult {
	src, limited := sourceOf(c.RemoteAddr)
	if limited {
		if why := a.m.limits.begin(src); why != limitNone {
			a.m.chains.count(actAuthenticate, false)
			return a.m.rateLimited(c, why)
		}
		// Deferred so that a panic below cannot leave the login pending
		// for good. Only a decided deny spends a token: a refusal because
		// a plugin could not decide (it failed, or was busy), or a panic,
		// is no sign of guessing.
		failed := false
		defer func() { a.m.limits.end(src, failed) }()
		res, outage := a.decide(ctx, c, password)
		failed = !res.Allow && !outage
		return res
	}
	res, _ := a.decide(ctx, c, password)
	return res
}

// decide asks the auth plugins about one CONNECT, counts the result and
// says whether a refusal is because a plugin could not decide.
func (a *authChain) decide(ctx context.Context, c *mqtt.ClientInfo, password []byte) (mqtt.AuthResult, bool) {
	st := a.m.acquire()
	defer st.release()
	shadows := st.askShadowAuth(c, password)
	var res mqtt.AuthResult
	var outage bool
	defer func() { shadows.finish(res.Allow) }()
	if len(st.auth) > 1 && !st.authFirst {
		res, outage = st.authConcurrently(ctx, c, password)
	} else {
		// Mode first, or one plugin (where the modes agree): in order, the
		// first answer that is not ignore decides, on this goroutine.
		res, outage = st.authInOrder(ctx, &AuthRequest{Client: c, Password: password})
	}
	a.m.chains.count(actAuthenticate, res.Allow)
	return res, outage
}

// rateLimited is the answer to a source the limiter refused (why):
// 0x97 quota exceeded (which the broker sends a 3.1.1 client as 0x05 not
// authorized). It is counted and logged, at most once per
// logEvery with the number held back.
func (m *Manager) rateLimited(c *mqtt.ClientInfo, why int) mqtt.AuthResult {
	reason, label := "too many failed logins from this address; try again later", "failures"
	switch why {
	case limitPending:
		reason, label = "too many logins in progress from this address; try again later", "pending"
	case limitSources:
		reason, label = "too many addresses logging in at once; try again later", "sources"
	}
	m.metrics.rateLimited.WithLabelValues(label).Inc()
	if ok, held := m.limitedLog.allow(); ok {
		m.log.Info("login refused by auth.rate-limit", "reason", reason,
			"remote", c.RemoteAddr, "client_id", c.ClientID, "username", c.Username, "listener", c.Listener,
			"suppressed", held)
	}
	return mqtt.AuthResult{ReasonCode: byte(packets.QuotaExceeded), Reason: reason}
}

// authInOrder and authConcurrently return the result and whether it is a
// refusal because a plugin could not decide.
func (st *state) authInOrder(ctx context.Context, req *AuthRequest) (mqtt.AuthResult, bool) {
	for _, p := range st.auth {
		switch ans := p.askAuth(ctx, req); ans.Result {
		case Allow:
			return mqtt.AuthResult{Allow: true, Plugin: p.alias}, false
		case Deny:
			return authDenied(p.alias, ans), ans.outage()
		}
	}
	return st.anonymousResult(), false
}

// authConcurrently is mode all (aMQTT's): every plugin is asked at once;
// the first deny refuses the client without waiting for the others, whose
// contexts are then cancelled; else any allow accepts.
func (st *state) authConcurrently(ctx context.Context, c *mqtt.ClientInfo, password []byte) (mqtt.AuthResult, bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A plugin may still be at work when this returns, after the broker
	// has reused the CONNECT buffer the password lives in: copy it.
	req := &AuthRequest{Client: c, Password: bytes.Clone(password)}
	type said struct {
		alias string
		answer
	}
	answers := make(chan said, len(st.auth))
	for _, p := range st.auth {
		st.hold() // held until the plugin answers, so a Reload does not close it under the call
		go func() {
			defer st.release()
			answers <- said{p.alias, p.askAuth(ctx, req)}
		}()
	}
	allowedBy := "" // the first plugin that allowed
	for range st.auth {
		switch ans := <-answers; ans.Result {
		case Deny:
			return authDenied(ans.alias, ans.answer), ans.outage()
		case Allow:
			if allowedBy == "" {
				allowedBy = ans.alias
			}
		}
	}
	if allowedBy != "" {
		return mqtt.AuthResult{Allow: true, Plugin: allowedBy}, false
	}
	return st.anonymousResult(), false
}

func (p *plugin) askAuth(ctx context.Context, req *AuthRequest) answer {
	return p.ask(ctx, actAuthenticate, func(ctx context.Context) (Decision, error) {
		return p.auth.Authenticate(ctx, req)
	})
}

// anonymousResult decides a client no plugin had an opinion about.
func (st *state) anonymousResult() mqtt.AuthResult {
	if st.anonymous {
		return mqtt.AuthResult{Allow: true}
	}
	return mqtt.AuthResult{ReasonCode: byte(packets.NotAuthorized), Reason: "not authorized"}
}

// authDenied is the CONNACK for a deny by the plugin alias: the plugin's
// code when CONNACK may carry it, else 0x87; 0x88 server unavailable when
// the deny is an outage (the plugin failed and its on-error policy denied).
// The code is an MQTT 5 one whatever the client speaks: the broker maps it
// for a 3.1.1 client (packets.DenyConnackV3: 0x04 for bad credentials,
// 0x05 for everything else).
func authDenied(alias string, ans answer) mqtt.AuthResult {
	code, reason := packets.NotAuthorized, ans.Reason
	switch {
	case ans.failed:
		code, reason = packets.ServerUnavailable, "authentication is unavailable; try again later"
	case packets.ValidDeny(packets.CONNACK, ans.ReasonCode):
		code = packets.ReasonCode(ans.ReasonCode)
	}
	return mqtt.AuthResult{ReasonCode: byte(code), Reason: reason, Plugin: alias}
}

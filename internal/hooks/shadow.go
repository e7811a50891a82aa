package hooks

import (
	"bytes"
	"context"
	"strings"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/prometheus/client_golang/prometheus"
)

// Shadow plugins (PluginSpec.Shadow) are how an operator trials a policy
// service on real traffic: listed in auth.plugins or topic-check.plugins
// like any other, they are asked about the same checks as the enforcing
// chain, at the same time, and their answers are only compared with the
// chain's and counted (mqttd_plugin_shadow_total). They never decide, and
// never delay a client: the question runs on a goroutine of its own under
// the plugin's timeout, and the chain's answer is handed to it when ready,
// never awaited. A plugin that can answer at once (TopicFilterNow) is
// asked in line, which costs no goroutine.

// shadowOutcome is how one shadow answer compared with the chain's.
type shadowOutcome uint8

const (
	shadowAgree    shadowOutcome = iota // same allow or deny as the chain
	shadowDisagree                      // the opposite: sampled in the log
	shadowIgnore                        // no opinion
	shadowError                         // failed, timed out, or panicked
	shadowSkipped                       // not asked: shadow-max-inflight questions were already out
	numShadowOutcomes
)

var shadowOutcomeNames = [numShadowOutcomes]string{"agree", "disagree", "ignore", "error", "skipped"}

// defaultShadowInflight bounds a shadow plugin's questions in flight when
// PluginSpec.ShadowMaxInflight is 0.
const defaultShadowInflight = 64

// shadowState is what a shadow plugin holds beyond an enforcing one.
type shadowState struct {
	slots    chan struct{} // one per question in flight
	counters [numActs][numShadowOutcomes]prometheus.Counter
	logs     throttle // disagreement samples
}

func newShadowState(m *metrics, alias string, inflight int) *shadowState {
	if inflight <= 0 {
		inflight = defaultShadowInflight
	}
	s := &shadowState{slots: make(chan struct{}, inflight)}
	for a := range numActs {
		for o := range numShadowOutcomes {
			s.counters[a][o] = m.shadow.WithLabelValues(alias, actNames[a], shadowOutcomeNames[o])
		}
	}
	return s
}

// shadowRound is one check's shadow questions: finish hands each the
// chain's answer.
type shadowRound struct {
	waiting []chan bool // one per question out, buffered
	inline  []inlineShadow
}

// inlineShadow is a shadow answer given at once, compared at finish.
type inlineShadow struct {
	p    *plugin
	d    Decision
	what shadowRequest
}

// shadowRequest describes a check for the disagreement log.
type shadowRequest struct {
	act    int
	client *mqtt.ClientInfo
	topic  *mqtt.TopicRequest // nil for authenticate
}

// finish hands the chain's answer to every shadow question of the round.
// It never blocks.
func (r *shadowRound) finish(allow bool) {
	if r == nil {
		return
	}
	for _, ch := range r.waiting {
		ch <- allow
	}
	for _, in := range r.inline {
		in.p.shadowCompare(in.what, in.d, false, allow)
	}
}

// askShadowAuth puts a plain CONNECT to the shadow auth plugins; nil when
// there are none.
func (st *state) askShadowAuth(c *mqtt.ClientInfo, password []byte) *shadowRound {
	if len(st.shadowAuth) == 0 {
		return nil
	}
	// The question outlives the call; the broker reuses the buffer the
	// password lives in.
	req := &AuthRequest{Client: c, Password: bytes.Clone(password)}
	r := &shadowRound{}
	for _, p := range st.shadowAuth {
		st.goShadow(r, p, shadowRequest{act: actAuthenticate, client: c}, func(ctx context.Context) (Decision, error) {
			return p.auth.Authenticate(ctx, req)
		})
	}
	return r
}

// askShadowTopic puts a topic check to the shadow topic plugins; nil when
// there are none. It never waits, so it may run where the chain may not
// (the in-line receive check).
func (st *state) askShadowTopic(act int, c *mqtt.ClientInfo, req mqtt.TopicRequest) *shadowRound {
	if len(st.shadowTopics) == 0 {
		return nil
	}
	return st.askShadowTopicNow(act, c, req)
}

// askShadowTopicNow is askShadowTopic with shadows to ask. It is apart so
// that req, which the questions keep, is copied to the heap only then: a
// check without shadows costs no allocation.
//
//go:noinline
func (st *state) askShadowTopicNow(act int, c *mqtt.ClientInfo, req mqtt.TopicRequest) *shadowRound {
	// The questions outlive the check, and a PUBLISH's topic may point into
	// the connection's read buffer, which the next packet overwrites.
	req.Topic = strings.Clone(req.Topic)
	r := &shadowRound{}
	what := shadowRequest{act: act, client: c, topic: &req}
	for _, p := range st.shadowTopics {
		if p.inline != nil {
			if d, ok := p.inline.FilterTopicNow(c, req); ok && d.Result <= Deny {
				r.inline = append(r.inline, inlineShadow{p: p, d: d, what: what})
				continue
			}
		}
		st.goShadow(r, p, what, func(ctx context.Context) (Decision, error) {
			return p.filter.FilterTopic(ctx, c, req)
		})
	}
	return r
}

// goShadow asks p on a goroutine of its own, if p has a slot free, and
// compares its answer with the chain's once both are in. The state is held
// until then, so a Reload does not close p under the question.
func (st *state) goShadow(r *shadowRound, p *plugin, what shadowRequest, q func(context.Context) (Decision, error)) {
	sh := p.shadow
	select {
	case sh.slots <- struct{}{}:
	default:
		sh.counters[what.act][shadowSkipped].Inc()
		return
	}
	// Held like acquire does, but on this state, which the chain loaded:
	// one a Reload already retired may have closed its plugins.
	st.hold()
	if st.retired.Load() {
		st.release()
		<-sh.slots
		sh.counters[what.act][shadowSkipped].Inc()
		return
	}
	enforced := make(chan bool, 1)
	r.waiting = append(r.waiting, enforced)
	go func() {
		defer func() { <-sh.slots }()
		defer st.release()
		ans := p.askShadow(what.act, q)
		p.shadowCompare(what, ans.Decision, ans.failed, <-enforced)
	}()
}

// askShadow is ask on a context of its own: the client's may end before
// the shadow answers, which is no failure of the plugin. It is bounded by
// the plugin's timeout (or, for a SelfTimed plugin, by its own).
func (p *plugin) askShadow(act int, q func(context.Context) (Decision, error)) answer {
	return p.ask(context.Background(), act, q)
}

// shadowCompare counts one shadow answer against the chain's, and logs a
// sample of disagreements with the request.
func (p *plugin) shadowCompare(what shadowRequest, d Decision, failed, allow bool) {
	out := shadowAgree
	switch {
	case failed:
		out = shadowError
	case d.Result == Ignore:
		out = shadowIgnore
	case (d.Result == Allow) != allow:
		out = shadowDisagree
	}
	p.shadow.counters[what.act][out].Inc()
	if out != shadowDisagree {
		return
	}
	ok, held := p.shadow.logs.allow()
	if !ok {
		return
	}
	enforced := "deny"
	if allow {
		enforced = "allow"
	}
	args := []any{"plugin", p.alias, "action", actNames[what.act], "shadow", d.Result.String(), "enforced", enforced,
		"shadow_reason", d.Reason, "client_id", what.client.ClientID, "username", what.client.Username,
		"remote", what.client.RemoteAddr, "suppressed", held}
	if t := what.topic; t != nil {
		args = append(args, "topic", t.Topic, "qos", t.QoS, "retain", t.Retain)
	}
	p.logger.Info("shadow plugin disagrees with the enforced decision", args...)
}

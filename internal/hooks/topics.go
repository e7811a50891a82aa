package hooks

import (
	"context"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// topicChain is the broker's mqtt.TopicChecker: the topic_filtering rules of
// docs/design.md §3.2 over the topic plugins of the current state.
type topicChain struct{ m *Manager }

// CheckTopic decides one subscribe, publish or receive. The client's
// grants come first (checkGrants); when none matches, any plugin's deny
// denies, else any allow allows, else topic-check.default decides
// (topicRound).
//
// Plugins are asked one after another, on the caller's goroutine, and the
// first deny ends the round: its answer cannot be overruled, and a check
// runs per message, where a goroutine per plugin would cost more than most
// answers (in-process, or from a webhook's decision cache) take. A slow
// plugin still delays only the client the check is about.
//
// Most checks, publish checks included, are answered at once, so each
// plugin is first asked in line (TopicFilterNow), once; only a plugin
// without the answer at hand is then asked through FilterTopic, with its
// timeout and on-error policy. When the broker already tried this check in
// line (req.InlineMissed), nobody is asked in line again: the answers it
// had are not final until every plugin has answered, and the one it missed
// is missing still.
func (t *topicChain) CheckTopic(ctx context.Context, c *mqtt.ClientInfo, req mqtt.TopicRequest) mqtt.TopicResult {
	act := int(req.Action)
	if act < int(mqtt.ActionSubscribe) || act > int(mqtt.ActionReceive) {
		return mqtt.TopicResult{ReasonCode: byte(packets.ImplementationSpecific), Reason: "unknown topic action"}
	}
	st := t.m.cur.Load()
	granted, byGrant := t.m.checkGrants(c, &req)
	shadows := st.askShadowTopic(act, c, req)
	var res mqtt.TopicResult
	defer func() { shadows.finish(res.Allow) }() // whatever happens: the shadows wait for it
	if byGrant {
		res = granted // counted by checkGrants
		return res
	}
	res = st.checkTopic(ctx, t.m, act, c, req, true)
	t.m.chains.count(act, res.Allow)
	return res
}

// checkTopic is CheckTopic on st: the in-line answers first, without a
// hold on st (see inlineRound), then, if they did not decide, the rest of
// the plugins under a hold. A Reload between the two starts the check over
// on the plugins it installed. When kept is set, a result the connection's
// memo keeps (memoized) answers before the in-line round; the start over
// after a Reload does not look there.
func (st *state) checkTopic(ctx context.Context, m *Manager, act int, c *mqtt.ClientInfo, req mqtt.TopicRequest, kept bool) mqtt.TopicResult {
	if !st.topicsOn {
		// A Reload switched topic-check off; the broker still asks.
		return mqtt.TopicResult{Allow: true}
	}
	round := st.newRound()
	inline := !req.InlineMissed
	if inline {
		var l *mqtt.Login
		cm := st.memoFor(c)
		if cm != nil {
			// The Login before the answers: a re-authentication during
			// the round then leaves a result that no later check matches.
			l = c.Login()
			if kept {
				if res, ok := st.memoized(cm, act, l, &req); ok {
					return res
				}
			}
		}
		var buf [8]Result
		var stamps []Stamp
		var sbuf [8]Stamp
		if cm != nil {
			stamps = sbuf[:0]
		}
		answered, stamps := st.inlineRound(&round, c, req, buf[:0], stamps)
		st.countInline(act, answered) // final: these plugins are not asked again
		if round.decided(len(st.topics)) {
			res := round.result(req.Action)
			if cm != nil {
				st.remember(cm, l, &req, res, answered, stamps)
			}
			return res
		}
	}
	held := m.acquire()
	defer held.release()
	if held != st {
		return held.checkTopic(ctx, m, act, c, req, false)
	}
	for i, p := range st.topics[round.answered:] {
		// The plugin that stopped the in-line round is not asked in line
		// again; those after it have not been asked yet.
		round.add(st.askTopic(ctx, act, p, c, req, inline && i > 0))
		if round.denied {
			break
		}
	}
	return round.result(req.Action)
}

// askTopic is one plugin's answer to a check: in line when inline is set
// and the plugin has the answer at hand, else through FilterTopic with its
// timeout and on-error policy. FilterTopic comes only after an in-line
// miss for the same check (or with none tried), so a plugin need not
// repeat the in-line lookup there (see TopicFilterNow).
func (st *state) askTopic(ctx context.Context, act int, p *plugin, c *mqtt.ClientInfo, req mqtt.TopicRequest, inline bool) answer {
	if inline && p.inline != nil {
		if d, ok := p.inline.FilterTopicNow(c, req); ok && d.Result <= Deny {
			p.counters.decisions[act][outcomeOf[d.Result]].Inc()
			return answer{Decision: d}
		}
	}
	return p.ask(ctx, act, func(ctx context.Context) (Decision, error) {
		return p.filter.FilterTopic(ctx, c, req)
	})
}

// CheckTopicNow decides at once when every topic plugin can (each
// implements TopicFilterNow and has the answer at hand); the rules are
// CheckTopic's. ok false sends the broker the slow way: it queues the
// message and later calls CheckTopic with req.InlineMissed set.
func (t *topicChain) CheckTopicNow(c *mqtt.ClientInfo, req mqtt.TopicRequest) (mqtt.TopicResult, bool) {
	act := int(req.Action)
	if act < int(mqtt.ActionSubscribe) || act > int(mqtt.ActionReceive) {
		return mqtt.TopicResult{}, false // CheckTopic refuses it
	}
	if res, ok := t.m.checkGrants(c, &req); ok {
		return res, true
	}
	st := t.m.cur.Load()
	if !st.topicsOn {
		t.m.chains.count(act, true)
		return mqtt.TopicResult{Allow: true}, true
	}
	if !st.topicsNow {
		return mqtt.TopicResult{}, false // a plugin cannot answer at once: none is asked
	}
	var l *mqtt.Login
	cm := st.memoFor(c)
	if cm != nil {
		l = c.Login()
		if res, ok := st.memoized(cm, act, l, &req); ok {
			st.askShadowTopic(act, c, req).finish(res.Allow)
			t.m.chains.count(act, res.Allow)
			return res, true
		}
	}
	return t.checkNowRound(st, act, c, req, cm, l)
}

// checkNowRound is CheckTopicNow's in-line round, for a check the
// connection's memo (cm, nil when none) did not answer; l is the client's
// Login read before. It is apart so that a kept answer does not pay for
// this frame's buffers.
//
//go:noinline
func (t *topicChain) checkNowRound(st *state, act int, c *mqtt.ClientInfo, req mqtt.TopicRequest, cm *connMemo, l *mqtt.Login) (mqtt.TopicResult, bool) {
	var stamps []Stamp
	var sbuf [8]Stamp
	if cm != nil {
		stamps = sbuf[:0]
	}
	round := st.newRound()
	var buf [8]Result
	answered, stamps := st.inlineRound(&round, c, req, buf[:0], stamps)
	if !round.decided(len(st.topics)) {
		// Nothing is counted: CheckTopic asks these plugins again.
		return mqtt.TopicResult{}, false
	}
	st.countInline(act, answered)
	res := round.result(req.Action)
	if cm != nil {
		st.remember(cm, l, &req, res, answered, stamps)
	}
	// Shadows are asked only about a check decided here: one that is not
	// comes back through CheckTopic, which asks them.
	st.askShadowTopic(act, c, req).finish(res.Allow)
	t.m.chains.count(act, res.Allow)
	return res, true
}

// inlineRound asks st's topic plugins in line, in order, into round, until
// one denies or one cannot answer at once; round.answered is then that
// one's index. It returns the answers, appended to results,
// for the caller to count once they are final.
//
// It takes no hold on st (acquire), unlike the calls that may wait: it
// runs for every delivered message on every core, and the hold's counter
// is one cache line that all of them would write twice per check. Nothing
// needs the hold: TopicFilterNow answers from what the plugin holds even
// after a Reload closed it, so a check that raced the Reload is answered
// as if it had started just before it, which it could have.
//
// With stamps not nil (st.topicsReuse), each plugin is asked for a stamp
// too, appended to stamps alongside its answer, for the connection's memo.
func (st *state) inlineRound(round *topicRound, c *mqtt.ClientInfo, req mqtt.TopicRequest, results []Result, stamps []Stamp) ([]Result, []Stamp) {
	for _, p := range st.topics {
		if p.inline == nil {
			break
		}
		var d Decision
		var s Stamp
		var ok bool
		if stamps != nil {
			d, s, ok = p.reuse.FilterTopicNowStamped(c, req)
		} else {
			d, ok = p.inline.FilterTopicNow(c, req)
		}
		if !ok || d.Result > Deny {
			break
		}
		results = append(results, d.Result)
		if stamps != nil {
			stamps = append(stamps, s)
		}
		round.answered++
		if round.add(answer{Decision: d}); round.denied {
			break
		}
	}
	return results, stamps
}

// memoFor is c's connMemo when st's answers may be kept per connection,
// else nil.
func (st *state) memoFor(c *mqtt.ClientInfo) *connMemo {
	if !st.topicsReuse {
		return nil
	}
	return memoOf(c)
}

// countInline counts the in-line answers of the first len(results) topic
// plugins.
func (st *state) countInline(act int, results []Result) {
	for i, r := range results {
		st.topics[i].counters.decisions[act][outcomeOf[r]].Inc()
	}
}

// topicRound combines the answers of one check's topic plugins, in the
// chain's order, however each was asked: the first deny decides, else any
// allow allows, else topic-check.default decides. It is the one home of
// that rule.
type topicRound struct {
	allowed  bool   // an allow was heard, or the default allows
	denied   bool   // a plugin denied: the round is over
	deny     answer // that plugin's answer
	answered int    // how many plugins answered in line
}

// newRound starts a check with st's topic-check.default.
func (st *state) newRound() topicRound {
	return topicRound{allowed: st.fallback == Allow}
}

// add folds one plugin's answer in.
func (r *topicRound) add(a answer) {
	switch a.Result {
	case Deny:
		r.denied, r.deny = true, a
	case Allow:
		r.allowed = true
	}
}

// decided reports whether the round has its answer: a deny, or every one
// of the n plugins answered.
func (r *topicRound) decided(n int) bool {
	return r.denied || r.answered == n
}

// result is the broker's answer for the round.
func (r *topicRound) result(a mqtt.Action) mqtt.TopicResult {
	if r.denied {
		return topicDenied(a, r.deny)
	}
	return mqtt.TopicResult{Allow: r.allowed}
}

// topicDenied is the answer for a deny: the plugin's reason code when the
// acknowledgement may carry it (SUBACK for subscribe, PUBACK/PUBREC for
// publish), else 0x87; 0x80 unspecified error when the deny is an outage.
// Receive denials are silent, so their code is never seen.
func topicDenied(a mqtt.Action, ans answer) mqtt.TopicResult {
	if ans.failed {
		return mqtt.TopicResult{ReasonCode: byte(packets.UnspecifiedError), Reason: "the topic check is unavailable; try again later"}
	}
	code := packets.NotAuthorized
	ack := packets.PUBACK // same table as PUBREC
	if a == mqtt.ActionSubscribe {
		ack = packets.SUBACK
	}
	if a != mqtt.ActionReceive && packets.ValidDeny(ack, ans.ReasonCode) {
		code = packets.ReasonCode(ans.ReasonCode)
	}
	return mqtt.TopicResult{ReasonCode: byte(code), Reason: ans.Reason}
}

package hooks

import (
	"context"
	"slices"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// topicChain is the broker's mqtt.TopicChecker: the topic_filtering rules of
// docs/design.md §3.2 over the topic plugins of the current state.
type topicChain struct{ m *Manager }

// CheckTopic decides one subscribe, publish or receive. Any deny denies,
// else any allow allows, else topic-check.default decides.
//
// Plugins are asked one after another, on the caller's goroutine, and the
// first deny ends the round: its answer cannot be overruled, and a check
// runs per message, where a goroutine per plugin would cost more than most
// answers (in-process, or from a webhook's decision cache) take. A slow
// plugin still delays only the client the check is about.
//
// Most checks, publish checks included, are answered at once, so that way
// is tried first; only a plugin without the answer at hand is asked
// through FilterTopic, with its timeout and on-error policy.
func (t *topicChain) CheckTopic(ctx context.Context, c *mqtt.ClientInfo, req mqtt.TopicRequest) mqtt.TopicResult {
	act := int(req.Action)
	if act < int(mqtt.ActionSubscribe) || act > int(mqtt.ActionReceive) {
		return mqtt.TopicResult{ReasonCode: byte(packets.ImplementationSpecific), Reason: "unknown topic action"}
	}
	res, ok := t.m.cur.Load().checkTopicNow(act, c, req)
	if !ok {
		st := t.m.acquire()
		defer st.release()
		res = st.checkTopic(ctx, act, c, req)
	}
	t.m.chains.count(act, res.Allow)
	return res
}

func (st *state) checkTopic(ctx context.Context, act int, c *mqtt.ClientInfo, req mqtt.TopicRequest) mqtt.TopicResult {
	if !st.topicsOn {
		// A Reload switched topic-check off; the broker still asks.
		return mqtt.TopicResult{Allow: true}
	}
	allowed := st.fallback == Allow
	for _, p := range st.topics {
		ans := p.ask(ctx, act, func(ctx context.Context) (Decision, error) {
			return p.filter.FilterTopic(ctx, c, req)
		})
		switch ans.Result {
		case Deny:
			return topicDenied(req.Action, ans)
		case Allow:
			allowed = true
		}
	}
	return mqtt.TopicResult{Allow: allowed}
}

// CheckTopicNow decides at once when every topic plugin can (each
// implements TopicFilterNow and has the answer at hand); the rules are
// CheckTopic's. ok false sends the broker the slow way.
func (t *topicChain) CheckTopicNow(c *mqtt.ClientInfo, req mqtt.TopicRequest) (mqtt.TopicResult, bool) {
	act := int(req.Action)
	if act < int(mqtt.ActionSubscribe) || act > int(mqtt.ActionReceive) {
		return mqtt.TopicResult{}, false // CheckTopic refuses it
	}
	res, ok := t.m.cur.Load().checkTopicNow(act, c, req)
	if ok {
		t.m.chains.count(act, res.Allow)
	}
	return res, ok
}

// checkTopicNow is one round of CheckTopic answered in line, or ok false.
//
// It takes no hold on st (acquire), unlike the calls that may wait: it
// runs for every delivered message on every core, and the hold's counter
// is one cache line that all of them would write twice per check. Nothing
// needs the hold: TopicFilterNow answers from what the plugin holds even
// after a Reload closed it, so a check that raced the Reload is answered
// as if it had started just before it, which it could have.
//
// The plugins' answers are counted only once the round is decided: a round
// that falls back to FilterTopic asks them all again, and counts there.
func (st *state) checkTopicNow(act int, c *mqtt.ClientInfo, req mqtt.TopicRequest) (mqtt.TopicResult, bool) {
	if !st.topicsOn {
		return mqtt.TopicResult{Allow: true}, true
	}
	if !st.topicsNow {
		return mqtt.TopicResult{}, false // a plugin cannot answer at once: none is asked
	}
	var buf [8]Result
	results := buf[:0]
	for _, p := range st.topics {
		d, ok := p.inline.FilterTopicNow(c, req)
		if !ok || d.Result > Deny {
			return mqtt.TopicResult{}, false
		}
		if results = append(results, d.Result); d.Result == Deny {
			st.countNow(act, results)
			return topicDenied(req.Action, answer{Decision: d}), true
		}
	}
	st.countNow(act, results)
	allowed := st.fallback == Allow || slices.Contains(results, Allow)
	return mqtt.TopicResult{Allow: allowed}, true
}

// countNow counts the answers of the first len(results) topic plugins.
func (st *state) countNow(act int, results []Result) {
	for i, r := range results {
		st.topics[i].counters.decisions[act][outcomeOf[r]].Inc()
	}
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

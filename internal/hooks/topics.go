package hooks

import (
	"context"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// topicChain is the broker's mqtt.TopicChecker: the topic_filtering rules of
// DESIGN §3.2 over the topic plugins of the current state.
type topicChain struct{ m *Manager }

// CheckTopic decides one subscribe, publish or receive. Any deny denies,
// else any allow allows, else topic-check.default decides.
//
// Plugins are asked one after another, on the caller's goroutine, and the
// first deny ends the round: its answer cannot be overruled, and a check
// runs per message, where a goroutine per plugin would cost more than most
// answers (in-process, or from a webhook's decision cache) take. A slow
// plugin still delays only the client the check is about.
func (t *topicChain) CheckTopic(ctx context.Context, c *mqtt.ClientInfo, req mqtt.TopicRequest) mqtt.TopicResult {
	act := int(req.Action)
	if act < int(mqtt.ActionSubscribe) || act > int(mqtt.ActionReceive) {
		return mqtt.TopicResult{ReasonCode: byte(packets.ImplementationSpecific), Reason: "unknown topic action"}
	}
	st := t.m.acquire()
	defer st.release()
	res := st.checkTopic(ctx, act, c, req)
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
	st := t.m.acquire()
	defer st.release()
	if !st.topicsOn {
		return mqtt.TopicResult{Allow: true}, true
	}
	act := int(req.Action)
	if act < int(mqtt.ActionSubscribe) || act > int(mqtt.ActionReceive) {
		return mqtt.TopicResult{}, false
	}
	allowed := st.fallback == Allow
	for _, p := range st.topics {
		now, ok := p.filter.(TopicFilterNow)
		if !ok {
			return mqtt.TopicResult{}, false
		}
		d, ok := now.FilterTopicNow(c, req)
		if !ok || d.Result > Deny {
			return mqtt.TopicResult{}, false
		}
		p.counters.decisions[act][outcomeOf[d.Result]].Inc()
		switch d.Result {
		case Deny:
			t.m.chains.count(act, false)
			return topicDenied(req.Action, answer{Decision: d}), true
		case Allow:
			allowed = true
		}
	}
	t.m.chains.count(act, allowed)
	return mqtt.TopicResult{Allow: allowed}, true
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
	if a != mqtt.ActionReceive && validDeny(ack, ans.ReasonCode) {
		code = packets.ReasonCode(ans.ReasonCode)
	}
	return mqtt.TopicResult{ReasonCode: byte(code), Reason: ans.Reason}
}

package hooks

import (
	"strings"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
	"github.com/mqttd/mqttd/internal/mqtt/topics"
)

// Grants with the login: an auth plugin's allow may carry a Login whose
// grants the topic chain evaluates for that client before asking any topic
// plugin (Decision.Login). The rule for one grant, the same as acl-file's:
// a publish or receive matches when the grant's filter matches the topic;
// a subscribe matches a deny that covers the whole filter, and an allow
// whose filter the subscription can share a topic with, so that a deny on
// a narrower topic is enforced on each delivery instead of refusing the
// subscription. The first grant that matches decides; a check none matches
// goes to the topic plugins.

// bindLogin makes the Login a client keeps from the one its auth plugin
// answered: %u and %c replaced by the client's user name and client id.
// A grant whose substituted value is empty is dropped; one whose value
// could widen the filter (it holds '/', '+' or '#', or starts with '$')
// is dropped when it allows and, when it denies, denies everything, as
// acl-file does: a deny fails closed.
func bindLogin(l *mqtt.Login, c *mqtt.ClientInfo) *mqtt.Login {
	if l == nil {
		return nil
	}
	out := &mqtt.Login{Attributes: l.Attributes}
	for _, g := range l.Grants {
		f, ok := substitute(g.Filter, c.Username, c.ClientID)
		switch {
		case ok:
		case f == "" || g.Allow:
			continue
		default:
			f = "#"
		}
		out.Grants = append(out.Grants, mqtt.NewGrant(f, g.Actions, g.Allow))
	}
	return out
}

// substitute replaces %u and %c in filter. ok false means a value was
// empty (f "") or unsafe (f the filter as given).
func substitute(filter, user, client string) (f string, ok bool) {
	if !strings.Contains(filter, "%") {
		return filter, true
	}
	for _, v := range [...]struct{ pat, val string }{{"%u", user}, {"%c", client}} {
		if !strings.Contains(filter, v.pat) {
			continue
		}
		if v.val == "" {
			return "", false
		}
		if strings.ContainsAny(v.val, "/+#") || strings.HasPrefix(v.val, "$") {
			return filter, false
		}
	}
	return strings.NewReplacer("%u", user, "%c", client).Replace(filter), true
}

// grantFor is the first of l's grants that matches req, or nil.
func grantFor(l *mqtt.Login, req *mqtt.TopicRequest) *mqtt.Grant {
	if req.Action != mqtt.ActionSubscribe {
		return l.Decides(req.Action, req.Topic)
	}
	topic := sharedInner(req.Topic)
	for i := range l.Grants {
		g := &l.Grants[i]
		if !g.Actions.Has(req.Action) {
			continue
		}
		var hit bool
		if g.Allow {
			hit = topics.Overlaps(g.Filter, topic)
		} else {
			hit = g.Covers(topic)
		}
		if hit {
			return g
		}
	}
	return nil
}

// checkGrants decides req from c's grants; ok false when none matches.
func (m *Manager) checkGrants(c *mqtt.ClientInfo, req *mqtt.TopicRequest) (mqtt.TopicResult, bool) {
	l := c.Login()
	if l == nil || len(l.Grants) == 0 {
		return mqtt.TopicResult{}, false
	}
	g := grantFor(l, req)
	if g == nil {
		return mqtt.TopicResult{}, false
	}
	act := int(req.Action)
	m.grants.count(act, g.Allow)
	m.chains.count(act, g.Allow)
	if g.Allow {
		return mqtt.TopicResult{Allow: true}, true
	}
	return mqtt.TopicResult{ReasonCode: byte(packets.NotAuthorized), Reason: "denied by the client's grants (" + g.Filter + ")"}, true
}

// sharedInner strips $share/GROUP/ from a subscription: access is about
// the topics a subscription receives, whoever shares it.
func sharedInner(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, inner, ok := strings.Cut(rest, "/"); ok {
			return inner
		}
	}
	return filter
}

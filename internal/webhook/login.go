package webhook

import (
	"fmt"
	"maps"
	"slices"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/topics"
	"github.com/mqttd/mqttd/internal/webhook/wire"
)

// LoginOptions bound what an authenticate answer may hand the broker to
// keep with a client (its acl and attributes). An answer over a bound is
// an error, not truncated: a cut list of first-match rules could lose a
// deny and so allow what the plugin meant to refuse. Each bound hit is
// counted in mqttd_webhook_login_refused_total{bound}.
type LoginOptions struct {
	MaxACLRules       int // rules in acl [64]
	MaxACLTopicBytes  int // bytes of one rule's topic [1024]
	MaxAttributes     int // entries in attributes [32]
	MaxAttributeBytes int // bytes of one attribute's key, and of its value [256]
}

// DefaultLogin is the bounds of a plugin whose config says nothing.
var DefaultLogin = LoginOptions{MaxACLRules: 64, MaxACLTopicBytes: 1024, MaxAttributes: 32, MaxAttributeBytes: 256}

// Bound names, as in the metric's label and the config keys.
const (
	boundACLRules       = "max-acl-rules"
	boundACLTopicBytes  = "max-acl-topic-bytes"
	boundAttributes     = "max-attributes"
	boundAttributeBytes = "max-attribute-bytes"
)

// loginError is an answer over one of the login bounds.
type loginError struct {
	bound string
	msg   string
}

func (e *loginError) Error() string { return e.msg + " (login." + e.bound + ")" }

// readLogin turns an authenticate answer's acl and attributes into the
// Login the chain binds to the client; nil when the answer has neither.
func (o *LoginOptions) readLogin(d *wire.Decision) (*mqtt.Login, error) {
	if d.ACL == nil && d.Attributes == nil {
		return nil, nil
	}
	l := &mqtt.Login{}
	if len(d.ACL) > o.MaxACLRules {
		return nil, &loginError{boundACLRules, fmt.Sprintf("acl has %d rules, more than %d", len(d.ACL), o.MaxACLRules)}
	}
	for i, r := range d.ACL {
		g, err := o.readRule(&r)
		if err != nil {
			if le, ok := err.(*loginError); ok {
				le.msg = fmt.Sprintf("acl[%d]: %s", i, le.msg)
				return nil, le
			}
			return nil, fmt.Errorf("acl[%d]: %w", i, err)
		}
		l.Grants = append(l.Grants, g)
	}
	if d.Attributes != nil && len(*d.Attributes) > 0 {
		a := *d.Attributes
		if len(a) > o.MaxAttributes {
			return nil, &loginError{boundAttributes, fmt.Sprintf("attributes has %d entries, more than %d", len(a), o.MaxAttributes)}
		}
		for _, k := range slices.Sorted(maps.Keys(a)) {
			if len(k) > o.MaxAttributeBytes || len(a[k]) > o.MaxAttributeBytes {
				return nil, &loginError{boundAttributeBytes, fmt.Sprintf("attribute %.32q is longer than %d bytes", k, o.MaxAttributeBytes)}
			}
		}
		l.Attributes = maps.Clone(map[string]string(a))
	}
	return l, nil
}

// readRule checks one acl rule and makes it a Grant.
func (o *LoginOptions) readRule(r *wire.ACLRule) (mqtt.Grant, error) {
	g := mqtt.Grant{Filter: r.Topic}
	if len(r.Topic) > o.MaxACLTopicBytes {
		return g, &loginError{boundACLTopicBytes, fmt.Sprintf("topic is longer than %d bytes", o.MaxACLTopicBytes)}
	}
	if !topics.ValidFilter(r.Topic) {
		return g, fmt.Errorf("topic %q is not a valid topic filter", r.Topic)
	}
	switch r.Result {
	case wire.ACLRuleResultAllow:
		g.Allow = true
	case wire.ACLRuleResultDeny:
	default:
		return g, fmt.Errorf("result %q is not allow or deny", r.Result)
	}
	if len(r.Actions) == 0 {
		return g, fmt.Errorf("actions is empty")
	}
	for _, a := range r.Actions {
		switch a {
		case wire.ACLRuleActionsPublish:
			g.Actions = g.Actions.With(mqtt.ActionPublish)
		case wire.ACLRuleActionsSubscribe:
			g.Actions = g.Actions.With(mqtt.ActionSubscribe)
		case wire.ACLRuleActionsReceive:
			g.Actions = g.Actions.With(mqtt.ActionReceive)
		default:
			return g, fmt.Errorf("action %q is not publish, subscribe or receive", a)
		}
	}
	return g, nil
}

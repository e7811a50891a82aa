package aclfile

import (
	"fmt"
	"strings"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// access is a set of actions, one bit per action.
type access uint8

const (
	accSubscribe access = 1 << iota
	accPublish
	accReceive

	accRead      = accSubscribe | accReceive // Mosquitto's read
	accWrite     = accPublish                // Mosquitto's write
	accReadWrite = accRead | accWrite
)

// actionIndex maps an action to its slot in a bucket; -1 for none.
func actionIndex(a mqtt.Action) int {
	switch a {
	case mqtt.ActionSubscribe:
		return 0
	case mqtt.ActionPublish:
		return 1
	case mqtt.ActionReceive:
		return 2
	}
	return -1
}

// scope is who a rule is about.
type scope uint8

const (
	scopeAll       scope = iota // every client (Mosquitto's pattern lines)
	scopeAnonymous              // clients without a user name
	scopeUser                   // one user name
	scopeClient                 // one client id
)

type rule struct {
	deny   bool
	access access
	pat    pattern
	reason string // a deny's Decision.Reason, made once at load
}

// bucket holds the rules of one scope by action, denies apart from grants:
// every deny that may apply must be tried, but the first grant that
// matches settles the rest.
type bucket [3]struct{ deny, grant []*rule }

// ruleSet is a loaded file, indexed so that a check reads only the rules
// of its own user and client plus the ones for everybody.
type ruleSet struct {
	all, anonymous bucket
	users, clients map[string]*bucket
	n              int
}

func newRuleSet() *ruleSet {
	return &ruleSet{users: map[string]*bucket{}, clients: map[string]*bucket{}}
}

// add files r under its scope (name is the user or client) and actions.
// line is where it was written, for the reason a deny gives.
func (rs *ruleSet) add(sc scope, name string, r *rule, line int) {
	if r.deny {
		r.reason = fmt.Sprintf("denied by acl-file line %d", line)
	}
	var b *bucket
	switch sc {
	case scopeAll:
		b = &rs.all
	case scopeAnonymous:
		b = &rs.anonymous
	case scopeUser, scopeClient:
		m := rs.users
		if sc == scopeClient {
			m = rs.clients
		}
		if b = m[name]; b == nil {
			b = new(bucket)
			m[name] = b
		}
	}
	for i := range b {
		if r.access&(1<<i) == 0 {
			continue
		}
		if r.deny {
			b[i].deny = append(b[i].deny, r)
		} else {
			b[i].grant = append(b[i].grant, r)
		}
	}
	rs.n++
}

// subValue says whether a user name or client id can stand in for %u or
// %c.
type subValue uint8

const (
	valueOK    subValue = iota
	valueEmpty          // no user name: rules using it do not apply (as in Mosquitto)
	valueUnsafe
)

// classify rejects values that would turn a substituted level into
// something wider than one literal level: a wildcard, a level separator,
// or a leading '$' (a client naming itself $SYS must not reach $SYS/#
// through "%c/#"). NUL cannot occur in an MQTT string but is refused too.
func classify(v string) subValue {
	switch {
	case v == "":
		return valueEmpty
	case v[0] == '$' || strings.ContainsAny(v, "+#/\x00"):
		return valueUnsafe
	}
	return valueOK
}

// request is one check with its substitution values classified once.
type request struct {
	topic     string
	subscribe bool
	u, c      string
	uv, cv    subValue
}

// matches reports whether r applies to q. For a topic name (publish,
// receive) both mean "the rule's filter matches it". For a subscription
// filter a deny applies only when it covers the whole filter, and a grant
// as soon as the filter can match one topic it allows: what the
// subscription then delivers is decided message by message by the receive
// rules, so a narrower deny is enforced there rather than refusing the
// subscription. A rule whose %u or %c has no usable value never grants; a
// deny with an unsafe value matches anything (it fails closed) and one
// with an empty value does not apply.
func (r *rule) matches(q *request) bool {
	uBad, cBad := r.pat.usesU && q.uv != valueOK, r.pat.usesC && q.cv != valueOK
	if uBad || cBad {
		return r.deny && ((uBad && q.uv == valueUnsafe) || (cBad && q.cv == valueUnsafe))
	}
	if q.subscribe && !r.deny {
		return r.pat.overlaps(q.topic, q.u, q.c)
	}
	return r.pat.covers(q.topic, q.u, q.c)
}

// check decides one request: a matching deny wins, else a matching grant
// allows, else the file has no opinion.
func (rs *ruleSet) check(c *mqtt.ClientInfo, req mqtt.TopicRequest) hooks.Decision {
	a := actionIndex(req.Action)
	if a < 0 {
		return hooks.Decision{}
	}
	q := request{topic: req.Topic, u: c.Username, c: c.ClientID}
	q.uv, q.cv = classify(q.u), classify(q.c)
	if req.Action == mqtt.ActionSubscribe {
		q.subscribe = true
		q.topic = sharedInner(q.topic)
	}
	buckets := [3]*bucket{&rs.all, rs.users[q.u], rs.clients[q.c]}
	if q.u == "" {
		buckets[1] = &rs.anonymous // no user has the empty name
	}
	for _, b := range buckets {
		if b == nil {
			continue
		}
		for _, r := range b[a].deny {
			if r.matches(&q) {
				return hooks.Decision{Result: hooks.Deny, Reason: r.reason}
			}
		}
	}
	for _, b := range buckets {
		if b == nil {
			continue
		}
		for _, r := range b[a].grant {
			if r.matches(&q) {
				return hooks.Decision{Result: hooks.Allow}
			}
		}
	}
	return hooks.Decision{}
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

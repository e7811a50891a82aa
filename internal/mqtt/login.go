// What a client's authentication said about it beyond allow: its grants
// and attributes, kept with the connection and replaced at every
// (re-)authentication.

package mqtt

import (
	"strings"
	"sync/atomic"

	"github.com/mqttd/mqttd/internal/mqtt/topics"
)

// Login is what the authentication that admitted a client handed the
// broker about it: topic grants evaluated locally before any topic plugin
// is asked, and attributes passed to the plugins with every request and
// event about the client. It is immutable once set; a re-authentication
// replaces it whole.
type Login struct {
	// Grants are tried in order; the first whose filter and actions match
	// a check decides it. A check no grant matches goes to the topic
	// checker. %u and %c are already substituted.
	Grants []Grant
	// Attributes are free-form facts about the client (tenant, role),
	// nil when none.
	Attributes map[string]string
}

// Grant is one rule of a Login. Make it with NewGrant, which prepares the
// common filter shapes for a fast match; a literal Grant works too, the
// slow way.
type Grant struct {
	Filter  string    // a topic filter
	Actions ActionSet // the checks it applies to
	Allow   bool      // allow, or deny

	shape  grantShape
	prefix string // shapeSubtree: Filter without its final "#"
}

type grantShape uint8

const (
	shapeAny     grantShape = iota // anything: topics.Covers decides
	shapeExact                     // no wildcard: equal or nothing
	shapeSubtree                   // "a/b/#" with no other wildcard, not starting with '#'
)

// NewGrant returns the grant of filter for actions, prepared for Covers.
func NewGrant(filter string, actions ActionSet, allow bool) Grant {
	g := Grant{Filter: filter, Actions: actions, Allow: allow}
	switch wild := strings.IndexAny(filter, "+#"); {
	case wild < 0:
		g.shape = shapeExact
	case wild == len(filter)-1 && wild >= 2 && filter[wild] == '#' && filter[wild-1] == '/':
		g.shape, g.prefix = shapeSubtree, filter[:wild]
	}
	return g
}

// Covers reports whether the grant's filter matches every topic the topic
// name or filter t can match (topics.Covers).
func (g *Grant) Covers(t string) bool {
	switch g.shape {
	case shapeExact:
		return t == g.Filter
	case shapeSubtree:
		// "a/b/#" covers "a/b" (its parent level) and everything below.
		// Its first level is literal, so $ topics need no special case.
		return strings.HasPrefix(t, g.prefix) || t == g.prefix[:len(g.prefix)-1]
	}
	return topics.Covers(g.Filter, t)
}

// ActionSet is a set of Actions, one bit each.
type ActionSet uint8

// Has reports whether a is in the set.
func (s ActionSet) Has(a Action) bool { return s&(1<<a) != 0 }

// With returns the set plus a.
func (s ActionSet) With(a Action) ActionSet { return s | 1<<a }

// loginCell holds a client's current Login. ClientInfo points to it rather
// than holding the Login, so that a re-authentication can replace the Login
// of a connected client while other goroutines check topics for it, and
// so that copies of the ClientInfo (events, the will) see the same one.
type loginCell struct{ p atomic.Pointer[Login] }

// Login returns what the client's authentication said about it, or nil.
func (c *ClientInfo) Login() *Login {
	if c == nil || c.login == nil {
		return nil
	}
	return c.login.p.Load()
}

// Attributes returns the client's attributes from its Login, or nil.
func (c *ClientInfo) Attributes() map[string]string {
	if l := c.Login(); l != nil {
		return l.Attributes
	}
	return nil
}

// SetLogin replaces the client's Login (nil clears it). The first call
// must come before the ClientInfo is shared with other goroutines (the
// broker makes it when the CONNECT is authenticated); later calls may race
// readers.
func (c *ClientInfo) SetLogin(l *Login) {
	if c.login == nil {
		if l == nil {
			return
		}
		c.login = new(loginCell)
	}
	c.login.p.Store(l)
}

// Decides returns the first grant that decides a publish or receive of
// topic (a topic name), or nil when none does: the first grant for act
// whose filter matches topic. Subscribe checks have their own rule (the
// hooks' grant evaluation).
func (l *Login) Decides(act Action, topic string) *Grant {
	if l == nil {
		return nil
	}
	for i := range l.Grants {
		g := &l.Grants[i]
		if !g.Actions.Has(act) {
			continue
		}
		// Covers, spelled out for the common shapes: this runs for every
		// publish and every delivery of a client with grants.
		switch g.shape {
		case shapeExact:
			if topic == g.Filter {
				return g
			}
		case shapeSubtree:
			if strings.HasPrefix(topic, g.prefix) || topic == g.prefix[:len(g.prefix)-1] {
				return g
			}
		default:
			if topics.Covers(g.Filter, topic) {
				return g
			}
		}
	}
	return nil
}

// receiveCover returns l when its grants allow the receive of every topic
// filter can match, so that a delivery through a subscription to filter
// need not match the grants again while l is the client's Login; else nil.
// It holds when the first receive grant that could match any topic of
// filter covers the whole filter and allows: no earlier grant matches any
// of those topics (they do not overlap), so Decides picks that grant for
// each. A grant that overlaps filter only in part, or a deny, leaves the
// decision to each delivery. Overlaps and Covers keep $ topics apart from
// leading wildcards [MQTT-4.7.2-1].
func (l *Login) receiveCover(filter string) *Login {
	if l == nil {
		return nil
	}
	for i := range l.Grants {
		g := &l.Grants[i]
		if !g.Actions.Has(ActionReceive) {
			continue
		}
		if g.Covers(filter) {
			if g.Allow {
				return l
			}
			return nil
		}
		if topics.Overlaps(g.Filter, filter) {
			return nil
		}
	}
	return nil
}

// grantAllows reports whether c's grants allow act (publish or receive)
// on topic. The broker decides such a check itself instead of putting it
// to the topic checker: a grant that matches decides before any plugin is
// asked, so the answer is the same, and a message pays no check through
// the hook seam and no counters there. A deny, or no grant that matches,
// goes to the checker as before, which decides, counts and logs it.
func grantAllows(c *ClientInfo, act Action, topic string) bool {
	g := c.Login().Decides(act, topic)
	return g != nil && g.Allow
}

// receiveGranted reports whether a delivery through a subscription marked
// with cover (receiveCover) is allowed by c's grants without matching them:
// only while the Login the mark was computed for is still c's.
func receiveGranted(c *ClientInfo, cover *Login) bool {
	return cover != nil && cover == c.Login()
}

// publishGranted is grantAllows for a publish of topic by c, remembering
// the last topic and its answer: a publisher repeating its topic pays a
// string compare. The answer holds while the Login it was computed from is
// the client's (a re-authentication replaces the Login, so the next
// publish decides afresh). The topic is copied: it aliases the read
// buffer. Runs on the connection's reader only.
func (c *client) publishGranted(topic string) bool {
	l := c.info.Login()
	if l == nil {
		return false
	}
	if l == c.pubGrant.login && string(c.pubGrant.topic) == topic {
		return c.pubGrant.allow
	}
	g := l.Decides(ActionPublish, topic)
	c.pubGrant.login, c.pubGrant.allow = l, g != nil && g.Allow
	c.pubGrant.topic = append(c.pubGrant.topic[:0], topic...)
	return c.pubGrant.allow
}

// pubGrantCache is the last publish decision publishGranted made.
type pubGrantCache struct {
	login *Login // the Login it was decided with
	topic []byte // the topic, owned
	allow bool
}

// markGrantsLocked recomputes the receive marks (receiveCover) of s's
// subscriptions for l, the Login of the connection now attached: at
// connect (a resumed or restored session keeps marks made for an earlier
// Login, which no longer match) and at a re-authentication. A stale mark
// is safe (it no longer matches the client's Login, so each delivery
// matches the grants), only slower. Shared subscriptions keep no mark.
// Caller holds s.mu.
func (b *Broker) markGrantsLocked(s *Session, l *Login) {
	for f, sub := range s.subs {
		if strings.HasPrefix(f, sharePrefix) {
			continue
		}
		cover := l.receiveCover(f)
		if cover == sub.cover {
			continue
		}
		sub.cover = cover
		s.subs[f] = sub
		b.subs.Subscribe(f, s, sub)
	}
}

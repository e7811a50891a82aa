package mqtt

import (
	"testing"

	"github.com/mqttd/mqttd/internal/mqtt/topics"
)

// A prepared grant covers exactly what topics.Covers says.
func TestGrantCoversAsTopicsCovers(t *testing.T) {
	filters := []string{"a/b/#", "a/b", "a/+/c", "#", "+/#", "a/#", "$SYS/#", "a/b/", "/#"}
	names := []string{"a", "a/b", "a/b/c", "a/bc", "a/b/", "a/x/c", "$SYS/x", "/", "/x", "a/b/#", "a/b/+", "a/+", "#", "+/b"}
	for _, f := range filters {
		g := NewGrant(f, 0, true)
		for _, n := range names {
			if got, want := g.Covers(n), topics.Covers(f, n); got != want {
				t.Errorf("NewGrant(%q).Covers(%q) = %v, topics.Covers says %v", f, n, got, want)
			}
		}
	}
}

// Decides is the first grant for the action whose filter matches: a deny
// before an allow decides, a grant for another action is passed over, and
// no match (or no Login) leaves the check to the topic checker.
func TestLoginDecidesFirstMatch(t *testing.T) {
	pub := ActionSet(0).With(ActionPublish)
	all := pub.With(ActionReceive).With(ActionSubscribe)
	l := &Login{Grants: []Grant{
		NewGrant("a/secret/#", ActionSet(0).With(ActionReceive), false),
		NewGrant("a/#", all, true),
		NewGrant("b/+", pub, true),
	}}
	cases := []struct {
		act   Action
		topic string
		want  string // the deciding grant's filter and result, "" for none
	}{
		{ActionReceive, "a/secret/x", "a/secret/# deny"},
		{ActionPublish, "a/secret/x", "a/# allow"},
		{ActionReceive, "a/open", "a/# allow"},
		{ActionPublish, "b/x", "b/+ allow"},
		{ActionReceive, "b/x", ""},
		{ActionPublish, "c", ""},
	}
	for _, c := range cases {
		got := ""
		if g := l.Decides(c.act, c.topic); g != nil {
			got = g.Filter + map[bool]string{true: " allow", false: " deny"}[g.Allow]
		}
		if got != c.want {
			t.Errorf("Decides(%v, %q) = %q, want %q", c.act, c.topic, got, c.want)
		}
	}
	if g := (*Login)(nil).Decides(ActionPublish, "a"); g != nil {
		t.Errorf("nil Login decided %+v", g)
	}
	var ci ClientInfo
	if grantAllows(&ci, ActionPublish, "a") {
		t.Error("a client without a Login is allowed by grants")
	}
	ci.SetLogin(l)
	if !grantAllows(&ci, ActionReceive, "a/open") || grantAllows(&ci, ActionReceive, "a/secret/x") {
		t.Error("grantAllows disagrees with Decides")
	}
}

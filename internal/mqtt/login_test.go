package mqtt

import (
	"testing"
	"unsafe"

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

// receiveCover marks a subscription only when the grants decide every
// topic its filter can match as an allowed receive: the first receive
// grant overlapping the filter covers it whole and allows. Each case is
// also checked against Decides on sample topics of the filter, so a mark
// never skips a check that could deny.
func TestLoginReceiveCover(t *testing.T) {
	recv := ActionSet(0).With(ActionReceive)
	pub := ActionSet(0).With(ActionPublish)
	g := func(f string, acts ActionSet, allow bool) Grant { return NewGrant(f, acts, allow) }
	lit := func(f string, acts ActionSet, allow bool) Grant { return Grant{Filter: f, Actions: acts, Allow: allow} }
	cases := []struct {
		name   string
		grants []Grant
		filter string
		want   bool
	}{
		{"exact allow", []Grant{g("a/b", recv, true)}, "a/b", true},
		{"exact other topic", []Grant{g("a/b", recv, true)}, "a/c", false},
		{"subtree covers filter", []Grant{g("bench/u1/#", recv, true)}, "bench/u1/#", true},
		{"subtree covers parent", []Grant{g("bench/u1/#", recv, true)}, "bench/u1", true},
		{"subtree covers plus", []Grant{g("bench/u1/#", recv, true)}, "bench/u1/+/x", true},
		{"subtree narrower than filter", []Grant{g("bench/u1/#", recv, true)}, "bench/#", false},
		{"plus in filter wider than grant", []Grant{g("bench/u1/#", recv, true)}, "bench/+/x", false},
		{"deny covers", []Grant{g("a/#", recv, false)}, "a/b", false},
		{"narrower deny before broad allow", []Grant{g("a/secret/#", recv, false), g("a/#", recv, true)}, "a/#", false},
		{"narrower deny before, filter apart", []Grant{g("a/secret/#", recv, false), g("a/#", recv, true)}, "a/open/#", true},
		{"plus deny overlaps", []Grant{g("a/+/secret", recv, false), g("a/#", recv, true)}, "a/x/#", false},
		{"plus deny apart", []Grant{g("a/+/secret", recv, false), g("a/#", recv, true)}, "a/x/open", true},
		{"deny for publish only is passed over", []Grant{g("a/secret/#", pub, false), g("a/#", recv, true)}, "a/#", true},
		{"allow for publish only", []Grant{g("a/#", pub, true)}, "a/b", false},
		{"hash grant covers hash", []Grant{g("#", recv, true)}, "#", true},
		{"hash grant leaves $ topics", []Grant{g("#", recv, true)}, "$SYS/x", false},
		{"plus-hash grant leaves $ topics", []Grant{g("+/#", recv, true)}, "$app/#", false},
		{"$ grant covers $ filter", []Grant{g("$app/#", recv, true)}, "$app/x", true},
		{"$ deny does not overlap hash filter", []Grant{g("$app/#", recv, false), g("#", recv, true)}, "#", true},
		{"hash deny does not overlap $ filter", []Grant{g("#", recv, false), g("$app/#", recv, true)}, "$app/+", true},
		{"%u substituted: another user's tree", []Grant{g("t/alice/#", recv, true)}, "t/bob/#", false},
		{"literal grant, slow path", []Grant{lit("a/+/c", recv, true)}, "a/b/c", true},
		{"literal grant, wider filter", []Grant{lit("a/+/c", recv, true)}, "a/+/+", false},
		{"no grants", nil, "a", false},
		{"empty level", []Grant{g("a/+", recv, true)}, "a/", true},
	}
	samples := []string{"a", "a/b", "a/c", "a/", "a/secret/x", "a/open/x", "a/x/secret", "a/x/open", "a/x/#",
		"bench", "bench/u1", "bench/u1/y/x", "bench/u2/x", "$SYS/x", "$app/x", "$app", "t/bob/x", "t/alice/x",
		"a/b/c", "a/z/y", "x"}
	for _, tc := range cases {
		l := &Login{Grants: tc.grants}
		if got := l.receiveCover(tc.filter) == l; got != tc.want {
			t.Errorf("%s: receiveCover(%q) marked %v, want %v", tc.name, tc.filter, got, tc.want)
		}
		if !tc.want {
			continue
		}
		for _, topic := range samples {
			if !topics.MatchFilter(tc.filter, topic) {
				continue
			}
			if d := l.Decides(ActionReceive, topic); d == nil || !d.Allow {
				t.Errorf("%s: marked %q, but Decides does not allow %q", tc.name, tc.filter, topic)
			}
		}
	}
	if (*Login)(nil).receiveCover("#") != nil {
		t.Error("a nil Login marked a subscription")
	}
}

// publishGranted answers as Decides does, whatever topics follow each
// other, decides afresh once the Login is replaced, keeps its own copy of
// the topic (the read buffer it came from is reused), and allocates
// nothing for a repeated topic.
func TestPublishGrantedRemembersLastTopic(t *testing.T) {
	pub := ActionSet(0).With(ActionPublish)
	first := &Login{Grants: []Grant{NewGrant("a/deny", pub, false), NewGrant("a/#", pub, true)}}
	second := &Login{Grants: []Grant{NewGrant("a/x", pub, false), NewGrant("a/#", pub, true)}}
	c := &client{}
	c.info.SetLogin(first)
	buf := []byte("a/okay")
	topic := unsafe.String(&buf[0], len(buf)) // aliases buf, as a topic aliases the read buffer
	check := func(topic string, want bool) {
		t.Helper()
		if got := c.publishGranted(topic); got != want {
			t.Fatalf("publishGranted(%q) = %v, want %v", topic, got, want)
		}
	}
	check(topic, true)
	// The buffer is reused for the next packet: had the remembered topic
	// been buf itself, it would now read a/deny, answered allow.
	copy(buf, "a/deny")
	check("a/deny", false)
	check("a/x", true)
	check("a/deny", false)
	check("a/deny", false)
	check("b", false)
	check("a/x", true)
	c.info.SetLogin(second)
	check("a/x", false)
	c.info.SetLogin(nil)
	check("a/x", false)
	c.info.SetLogin(first)
	if n := testing.AllocsPerRun(100, func() { c.publishGranted("a/x") }); n != 0 {
		t.Fatalf("a repeated topic allocated %v times", n)
	}
}

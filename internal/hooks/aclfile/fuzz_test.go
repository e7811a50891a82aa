package aclfile

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
)

// FuzzMosquitto feeds arbitrary bytes to the Mosquitto-format parser and
// checks what parses with checkRuleSet. Seeds live in
// testdata/fuzz/FuzzMosquitto.
func FuzzMosquitto(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := parseMosquitto("F", data)
		checkParsed(t, data, rs, err)
	})
}

// FuzzYAML feeds arbitrary bytes to the YAML parser and checks what parses
// with checkRuleSet. Seeds live in testdata/fuzz/FuzzYAML.
func FuzzYAML(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := parseYAML("F", data)
		checkParsed(t, data, rs, err)
	})
}

func checkParsed(t *testing.T, data []byte, rs *ruleSet, err error) {
	t.Helper()
	if err != nil {
		if rs != nil {
			t.Fatalf("parse returned rules and an error: %v", err)
		}
		if !strings.HasPrefix(err.Error(), "F:") {
			t.Fatalf("error does not name the file: %v", err)
		}
		return
	}
	checkRuleSet(t, data, rs)
}

// The clients and requests every parsed file is asked about: ordinary
// names, no user name, and values that are unusable for %u and %c; topics
// and filters with wildcards, $SYS, a shared subscription, a literal %u
// (a character in topic lines, a substitution in patterns), and an action
// the file cannot know.
var (
	fuzzClients = []mqtt.ClientInfo{
		{Username: "alice", ClientID: "c1"},
		{Username: "", ClientID: "anon"},
		{Username: "users", ClientID: "$SYS"},
		{Username: "a/b", ClientID: "+"},
		{Username: "%u", ClientID: "%c"},
	}
	fuzzRequests = []mqtt.TopicRequest{
		{Action: mqtt.ActionSubscribe, Topic: "a/b"},
		{Action: mqtt.ActionSubscribe, Topic: "#"},
		{Action: mqtt.ActionSubscribe, Topic: "+/b"},
		{Action: mqtt.ActionSubscribe, Topic: "$SYS/#"},
		{Action: mqtt.ActionSubscribe, Topic: "users/%u"},
		{Action: mqtt.ActionSubscribe, Topic: "users/alice/#"},
		{Action: mqtt.ActionSubscribe, Topic: "$share/g/a/#"},
		{Action: mqtt.ActionPublish, Topic: "a/b"},
		{Action: mqtt.ActionPublish, Topic: "$SYS/x"},
		{Action: mqtt.ActionPublish, Topic: "users/%u"},
		{Action: mqtt.ActionPublish, Topic: "users/alice"},
		{Action: mqtt.ActionReceive, Topic: "a/b"},
		{Action: mqtt.ActionReceive, Topic: "$SYS/x"},
		{Action: mqtt.ActionReceive, Topic: "users/c1"},
		{Action: mqtt.ActionReceive, Topic: "/"},
		{Action: 0, Topic: "a/b"},
	}
)

// checkRuleSet asks rs, through FilterTopic, about fixed requests. Every
// answer must be allow, deny or ignore; only a file with a grant allows
// and only one with a deny denies; a deny names a line of the file; and
// each answer is what deny-wins says it is: deny if the file's denies
// alone deny, else whatever its grants alone answer. That last one is the
// plugin's documented precedence, checked without trusting the order the
// parser filed the rules in.
func checkRuleSet(t *testing.T, data []byte, rs *ruleSet) {
	t.Helper()
	denies, grants := splitRuleSet(rs)
	nd, ng := countRules(t, denies), countRules(t, grants)
	if nd+ng != rs.n {
		t.Fatalf("the rule set says %d rules, its buckets hold %d", rs.n, nd+ng)
	}
	// An upper bound on the line numbers either parser can give: YAML
	// also breaks lines at a lone \r, NEL, LS and PS.
	lines := 1
	for _, brk := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
		lines += strings.Count(string(data), brk)
	}
	p, pd, pg := &Plugin{}, &Plugin{}, &Plugin{}
	p.rules.Store(rs)
	pd.rules.Store(denies)
	pg.rules.Store(grants)
	ask := func(p *Plugin, c *mqtt.ClientInfo, req mqtt.TopicRequest) hooks.Decision {
		d, err := p.FilterTopic(context.Background(), c, req)
		if err != nil {
			t.Fatalf("FilterTopic failed: %v", err)
		}
		return d
	}
	for i := range fuzzClients {
		c := &fuzzClients[i]
		for _, req := range fuzzRequests {
			d := ask(p, c, req)
			where := func() string { return c.Username + "/" + c.ClientID + " " + req.Action.String() + " " + req.Topic }
			switch d.Result {
			case hooks.Allow, hooks.Ignore:
				if d.Reason != "" || d.ReasonCode != 0 {
					t.Fatalf("%s: %v with reason %q code %d", where(), d.Result, d.Reason, d.ReasonCode)
				}
			case hooks.Deny:
				n, ok := strings.CutPrefix(d.Reason, "denied by acl-file line ")
				if l, err := strconv.Atoi(n); !ok || err != nil || l < 1 || l > lines {
					t.Fatalf("%s: denied with reason %q, which names no line of a %d-line file", where(), d.Reason, lines)
				}
			default:
				t.Fatalf("%s: result %v", where(), d.Result)
			}
			if (d.Result == hooks.Allow && ng == 0) || (d.Result == hooks.Deny && nd == 0) {
				t.Fatalf("%s: %v from a file with %d denies and %d grants", where(), d.Result, nd, ng)
			}
			if req.Action == 0 && d.Result != hooks.Ignore {
				t.Fatalf("%s: an unknown action got %v", where(), d.Result)
			}
			want := ask(pd, c, req)
			if want.Result != hooks.Deny {
				if want.Result != hooks.Ignore {
					t.Fatalf("%s: the denies alone answer %v", where(), want.Result)
				}
				want = ask(pg, c, req)
				if want.Result == hooks.Deny {
					t.Fatalf("%s: the grants alone deny", where())
				}
			}
			if d.Result != want.Result {
				t.Fatalf("%s: %v, but deny-wins over the file's rules says %v", where(), d.Result, want.Result)
			}
		}
	}
}

// splitRuleSet returns a rule set with only rs's denies and one with only
// its grants.
func splitRuleSet(rs *ruleSet) (denies, grants *ruleSet) {
	denies, grants = newRuleSet(), newRuleSet()
	split := func(b *bucket) (d, g *bucket) {
		d, g = new(bucket), new(bucket)
		for i := range b {
			d[i].deny, g[i].grant = b[i].deny, b[i].grant
		}
		return d, g
	}
	d, g := split(&rs.all)
	denies.all, grants.all = *d, *g
	d, g = split(&rs.anonymous)
	denies.anonymous, grants.anonymous = *d, *g
	for name, b := range rs.users {
		denies.users[name], grants.users[name] = split(b)
	}
	for name, b := range rs.clients {
		denies.clients[name], grants.clients[name] = split(b)
	}
	return denies, grants
}

// countRules counts the distinct rules in rs (a rule is filed once per
// action it covers), checking that each sits under an action it covers and
// in the half its deny flag says.
func countRules(t *testing.T, rs *ruleSet) int {
	t.Helper()
	seen := map[*rule]bool{}
	add := func(b *bucket) {
		for i := range b {
			for _, r := range append(b[i].deny[:len(b[i].deny):len(b[i].deny)], b[i].grant...) {
				if r.deny != slices.Contains(b[i].deny, r) || r.access&(1<<i) == 0 {
					t.Fatalf("rule %+v misfiled under action %d", r, i)
				}
				seen[r] = true
			}
		}
	}
	add(&rs.all)
	add(&rs.anonymous)
	for _, b := range rs.users {
		add(b)
	}
	for _, b := range rs.clients {
		add(b)
	}
	return len(seen)
}

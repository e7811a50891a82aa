package aclfile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
	"github.com/mqttd/mqttd/internal/mqtt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func load(t testing.TB, name, data string) *Plugin {
	t.Helper()
	p, err := New(Options{File: hookstest.WriteFile(t, name, data)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// check is one request and the answer expected: A allow, D deny, I ignore.
type check struct {
	user, client string
	action       mqtt.Action
	topic        string
	want         byte
}

const (
	sub = mqtt.ActionSubscribe
	pub = mqtt.ActionPublish
	rcv = mqtt.ActionReceive
)

func runChecks(t *testing.T, p *Plugin, checks []check) {
	t.Helper()
	for _, c := range checks {
		d, err := p.FilterTopic(context.Background(), &mqtt.ClientInfo{Username: c.user, ClientID: c.client},
			mqtt.TopicRequest{Action: c.action, Topic: c.topic})
		got := "IAD"[d.Result]
		if err != nil || got != c.want {
			t.Errorf("user %q client %q %v %q: %c (%s), %v; want %c", c.user, c.client, c.action, c.topic, got, d.Reason, err, c.want)
		}
	}
}

// The same policy in both formats gives the same answers: anonymous
// topic lines, per-user rules, patterns with %u and %c, each access word.
const mosquittoACL = `# anonymous clients
topic read public/#
topic deny public/secret

user alice
topic readwrite home/alice/#
topic write cmd/alice
topic deny home/alice/vault/#
topic home/shared

user bob with spaces
topic read home/#

# everyone
pattern write devices/%c/state
pattern read inbox/%u/#
pattern deny $SYS/#
`

const yamlACL = `rules:
  - {anonymous: true, topic: public/#, actions: read}
  - {anonymous: true, topic: public/secret, result: deny}
  - {user: alice, topic: home/alice/#, actions: readwrite}
  - {user: alice, topic: cmd/alice, actions: [write]}
  - {user: alice, topic: home/alice/vault/#, result: deny}
  - {user: alice, topic: home/shared}
  - user: bob with spaces
    topic: home/#
    actions: [subscribe, receive]
  - {topic: devices/%c/state, actions: [publish]}
  - {topic: "inbox/%u/#", actions: read}
  - {topic: "$SYS/#", result: deny}
`

var policyChecks = []check{
	// anonymous topic lines
	{"", "anon1", sub, "public/news", 'A'},
	{"", "anon1", sub, "public/#", 'A'}, // the deny on public/secret is enforced per message
	{"", "anon1", sub, "public/+", 'A'},
	{"", "anon1", sub, "public/secret", 'D'}, // the deny covers the whole filter
	{"", "anon1", sub, "+/secret", 'A'},      // the deny covers one topic of it; the grant public/# overlaps
	{"", "anon1", sub, "private/#", 'I'},     // nothing it can match is allowed
	{"", "anon1", sub, "public/+/x", 'A'},
	{"", "anon1", rcv, "public/news", 'A'},
	{"", "anon1", rcv, "public/secret", 'D'},
	{"", "anon1", pub, "public/news", 'I'}, // read only
	{"", "anon1", sub, "home/alice/x", 'I'},
	// alice: readwrite, write, deny, default readwrite
	{"alice", "a1", sub, "home/alice/#", 'A'}, // vault is enforced per message
	{"alice", "a1", sub, "home/alice/+", 'A'},
	{"alice", "a1", sub, "home/alice/vault/+", 'D'},
	{"alice", "a1", sub, "home/alice/vault", 'D'}, // '#' includes the parent level
	{"alice", "a1", sub, "home/alice/lamp/+", 'A'},
	{"alice", "a1", pub, "home/alice/lamp", 'A'},
	{"alice", "a1", rcv, "home/alice/lamp", 'A'},
	{"alice", "a1", pub, "home/alice/vault/key", 'D'},
	{"alice", "a1", rcv, "home/alice/vault", 'D'},
	{"alice", "a1", pub, "cmd/alice", 'A'},
	{"alice", "a1", sub, "cmd/alice", 'I'},
	{"alice", "a1", rcv, "cmd/alice", 'I'},
	{"alice", "a1", sub, "home/shared", 'A'},
	{"alice", "a1", pub, "home/shared", 'A'},
	{"alice", "a1", sub, "public/news", 'I'}, // anonymous rules are not alice's
	{"Alice", "a1", pub, "home/alice/lamp", 'I'},
	// bob's name has spaces; read is subscribe + receive
	{"bob with spaces", "b", sub, "home/#", 'A'},
	{"bob with spaces", "b", rcv, "home/alice/vault/key", 'A'}, // alice's deny is hers
	{"bob with spaces", "b", pub, "home/x", 'I'},
	// patterns, for everyone
	{"alice", "dev-7", pub, "devices/dev-7/state", 'A'},
	{"", "dev-7", pub, "devices/dev-7/state", 'A'},
	{"alice", "dev-7", pub, "devices/dev-8/state", 'I'},
	{"alice", "dev-7", sub, "devices/dev-7/state", 'I'},
	{"alice", "a1", sub, "inbox/alice/#", 'A'},
	{"alice", "a1", rcv, "inbox/alice/m1", 'A'},
	{"alice", "a1", sub, "inbox/+/#", 'A'}, // may match inbox/alice/...; other inboxes fail the receive check
	{"alice", "a1", sub, "inbox/bob/#", 'I'},
	{"", "anon1", sub, "inbox//#", 'I'}, // %u rules skip clients without a user name
	{"alice", "a1", sub, "$SYS/broker/uptime", 'D'},
	{"bob with spaces", "b", sub, "#", 'A'}, // overlaps home/#; the deny on $SYS/# does not cover '#'
	{"bob with spaces", "b", sub, "$SYS/#", 'D'},
	{"", "anon1", rcv, "$SYS/x", 'D'},
	// shared subscriptions are checked by their filter
	{"alice", "a1", sub, "$share/g/home/alice/lamp/+", 'A'},
	{"alice", "a1", sub, "$share/g/home/alice/vault/x", 'D'},
	{"alice", "a1", sub, "$share/g/other", 'I'},
}

func TestPolicyMosquitto(t *testing.T) { runChecks(t, load(t, "acl.conf", mosquittoACL), policyChecks) }
func TestPolicyYAML(t *testing.T)      { runChecks(t, load(t, "acl.yaml", yamlACL), policyChecks) }

// Client-scoped rules, explicit action lists, and deny beating allow
// whatever the order and scope.
func TestClientScopeAndPrecedence(t *testing.T) {
	p := load(t, "acl.yml", `rules:
  - {client: gw-1, topic: "plant/#", actions: [subscribe, publish, receive]}
  - {client: gw-1, topic: plant/boiler/#, actions: [publish], result: deny}
  - {user: ops, topic: "plant/#", actions: [receive]}
  - {topic: plant/alarms, actions: [receive], result: deny}
  - {user: ops, topic: "#", actions: [subscribe]}
`)
	runChecks(t, p, []check{
		{"anyone", "gw-1", pub, "plant/line1", 'A'},
		{"anyone", "gw-1", pub, "plant/boiler/temp", 'D'},
		{"anyone", "gw-1", sub, "plant/boiler/temp", 'A'}, // the deny is for publish only
		{"anyone", "gw-2", pub, "plant/line1", 'I'},
		{"ops", "gw-1", rcv, "plant/alarms", 'D'}, // everyone's deny beats client and user grants
		{"ops", "x", rcv, "plant/line1", 'A'},
		{"ops", "x", sub, "plant/#", 'A'},
		{"ops", "x", sub, "$SYS/#", 'I'},
		{"ops", "x", pub, "plant/line1", 'I'},
	})
	if p.Rules() != 5 {
		t.Errorf("Rules() = %d, want 5", p.Rules())
	}
}

// A substitution whose value is not one plain level never grants, and a
// deny with such a value matches everything (fail closed); a rule with %u
// does not apply to a client without a user name.
func TestUnusableSubstitutions(t *testing.T) {
	grants := load(t, "acl.yaml", `rules:
  - {topic: "u/%u/#"}
  - {topic: "c/%c/#"}
  - {topic: "open/#"}
`)
	runChecks(t, grants, []check{
		{"alice", "c1", pub, "u/alice/x", 'A'},
		{"a+b", "c1", sub, "u/a+b/#", 'I'},
		{"a+b", "c1", sub, "u/+/#", 'I'},
		{"a#", "c1", pub, "u/a#/x", 'I'},
		{"a/b", "c1", pub, "u/a/b/x", 'I'},
		{"$SYS", "c1", rcv, "u/$SYS/x", 'I'},
		{"alice", "+", sub, "c/+/#", 'I'},
		{"alice", "#", sub, "c/#", 'I'},
		{"alice", "$SYS", sub, "c/$SYS/#", 'I'},
		{"alice", "x/y", pub, "c/x/y/z", 'I'},
		{"", "c1", pub, "u//x", 'I'},
		{"", "c1", pub, "open/x", 'A'},
	})
	denies := load(t, "acl.yaml", `rules:
  - {topic: "open/#"}
  - {topic: "priv/%u", result: deny}
  - {topic: "cfg/%c/lock", actions: [publish], result: deny}
`)
	runChecks(t, denies, []check{
		{"alice", "c1", pub, "open/x", 'A'},
		{"alice", "c1", pub, "priv/alice", 'D'},
		// Fail closed: the deny on priv/%u matches any topic for a/b ...
		{"a/b", "c1", pub, "open/x", 'D'},
		{"a+", "c1", sub, "open/x", 'D'},
		// ... and cfg/%c/lock (publish only) any publish for client "+".
		{"alice", "+", pub, "open/x", 'D'},
		{"alice", "+", sub, "open/x", 'A'},
		// No user name: %u rules neither grant nor deny.
		{"", "c1", pub, "open/x", 'A'},
		{"", "c1", pub, "priv/", 'I'},
	})
}

// Every error names the file and line, says what is wrong and how to fix it.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, file, data, want string }{
		{"text: unknown directive", "acl", "user a\ntopics read x\n",
			`F:2: unknown directive "topics" (lines are user NAME, topic [read|write|readwrite|deny] TOPIC, pattern [read|write|readwrite|deny] TOPIC, or # comments)`},
		{"text: user without a name", "acl", "# c\nuser   \n", `F:2: user needs a name (user NAME)`},
		{"text: topic without topic", "acl", "topic read\n", `F:1: topic needs a topic (topic [read|write|readwrite|deny] TOPIC)`},
		{"text: pattern alone", "acl", "\n\npattern\n", `F:3: pattern needs a topic (pattern [read|write|readwrite|deny] TOPIC)`},
		{"text: bad wildcard", "acl", "topic read a/b#\n",
			`F:1: topic "a/b#": the level "b#" mixes a wildcard with other characters (+ and # must fill a whole level)`},
		{"text: hash not last", "acl", "pattern write a/#/%u\n",
			`F:1: pattern "a/#/%u": '#' is not the last level (it matches everything below, so nothing can follow it)`},
		{"text: share", "acl", "topic $share/g/a\n",
			`F:1: topic "$share/g/a": the topic starts with $share/; ACL topics name the filter inside a shared subscription (write sensors/# to cover $share/GROUP/sensors/#)`},
		{"yaml: syntax", "acl.yaml", "rules:\n  - topic: a\n   user: b\n",
			`F:3: did not find expected '-' indicator (the file is not valid YAML)`},
		{"yaml: tab", "acl.yaml", "rules:\n  - topic: a\n\tuser: b\n",
			`F:3: found a tab character that violates indentation (the file is not valid YAML)`},
		{"yaml: not a mapping", "acl.yaml", "- a\n", `F:1: the file must be a mapping with a rules: list`},
		{"yaml: unknown top key", "acl.yaml", "rules: []\nacl: []\n", `F:2: unknown key "acl" (the file holds one key, rules:)`},
		{"yaml: rules not a list", "acl.yaml", "rules: {topic: a}\n", `F:1: rules must be a list (each item starting with -)`},
		{"yaml: rule not a mapping", "acl.yaml", "rules:\n  - a/b\n", `F:2: rule 1: a rule is a mapping of user, client, anonymous, topic, actions, result`},
		{"yaml: unknown key", "acl.yaml", "rules:\n  - topic: a\n  - topic: b\n    acton: read\n",
			`F:4: rule 2: unknown key "acton" (use user, client, anonymous, topic, actions, result)`},
		{"yaml: twice", "acl.yaml", "rules:\n  - {topic: a, topic: b}\n", `F:2: rule 1: topic is given twice`},
		{"yaml: two scopes", "acl.yaml", "rules:\n  - topic: a\n    user: u\n    client: c\n",
			`F:4: rule 1: user and client both given; a rule has one scope (user, client, anonymous, or none for every client)`},
		{"yaml: anonymous false", "acl.yaml", "rules:\n  - {topic: a, anonymous: false}\n",
			`F:2: rule 1: anonymous must be true (leave it out for a rule about every client)`},
		{"yaml: empty user", "acl.yaml", "rules:\n  - topic: a\n    user:\n",
			`F:3: rule 1: user is empty (give a name, or leave it out for a rule about every client)`},
		{"yaml: list user", "acl.yaml", "rules:\n  - {topic: a, user: [a, b]}\n", `F:2: rule 1: user must be a single value`},
		{"yaml: missing topic", "acl.yaml", "rules:\n  - user: a\n", `F:2: rule 1: topic is missing`},
		{"yaml: comment eats topic", "acl.yaml", "rules:\n  - topic: #\n",
			`F:2: rule 1: topic is empty (quote a topic that starts with #: topic: "#")`},
		{"yaml: bad topic", "acl.yaml", "rules:\n  - topic: a/#/b\n",
			`F:2: rule 1: topic "a/#/b": '#' is not the last level (it matches everything below, so nothing can follow it)`},
		{"yaml: bad action", "acl.yaml", "rules:\n  - topic: a\n    actions: [read, delete]\n",
			`F:3: rule 1: "delete" is not an action (use subscribe, publish, receive, read, write or readwrite)`},
		{"yaml: empty actions", "acl.yaml", "rules:\n  - {topic: a, actions: []}\n",
			`F:2: rule 1: actions is empty (leave it out for all: subscribe, publish, receive)`},
		{"yaml: bad result", "acl.yaml", "rules:\n  - {topic: a, result: block}\n", `F:2: rule 1: result "block" is not allow or deny`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parse := parseMosquitto
			if strings.HasSuffix(tc.file, ".yaml") {
				parse = parseYAML
			}
			_, err := parse("F", []byte(tc.data))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error\n got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// Files that are valid but say little: nothing at all, only comments, an
// empty rule list, and Mosquitto lines with tabs and spare blanks.
func TestParseEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		name, file, data string
		rules            int
	}{
		{"empty yaml", "a.yaml", "", 0},
		{"yaml comment", "a.yml", "# nothing yet\n", 0},
		{"yaml null rules", "a.yaml", "rules:\n", 0},
		{"yaml anchors", "a.yaml", "rules:\n  - &r {user: a, topic: x}\n  - *r\n", 2},
		{"empty text", "acl", "", 0},
		{"text blanks and tabs", "acl.conf", "  # c\n\t\nuser\talice\ntopic\tread   a b/c \r\n  pattern  write\tx\n", 2},
	} {
		p := load(t, tc.file, tc.data)
		if p.Rules() != tc.rules {
			t.Errorf("%s: %d rules, want %d", tc.name, p.Rules(), tc.rules)
		}
	}
	// "topic read   a b/c" is the topic "a b/c" (spaces are part of it);
	// tabs separate words too.
	p := load(t, "acl", "user alice\ntopic read   a b/c \ntopic\twrite\tw\n")
	runChecks(t, p, []check{{"alice", "x", sub, "a b/c", 'A'}, {"alice", "x", sub, "a", 'I'},
		{"alice", "x", pub, "w", 'A'}, {"alice", "x", sub, "w", 'I'}})
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{}); err == nil || err.Error() != "acl-file: no file given (set file: PATH, a .yaml file or one in Mosquitto's acl_file format)" {
		t.Errorf("New without a file: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "acl.yaml")
	if _, err := New(Options{File: missing}); err == nil || err.Error() != "acl-file: open "+missing+": no such file or directory" {
		t.Errorf("New with a missing file: %v", err)
	}
	path := hookstest.WriteFile(t, "acl.YAML", "rules:\n  - {topic: a, result: nope}\n")
	if _, err := New(Options{File: path}); err == nil || err.Error() != "acl-file: "+path+`:2: rule 1: result "nope" is not allow or deny` {
		t.Errorf("New with a bad file (extension in capitals is still YAML): %v", err)
	}
}

// Reload swaps the rules at once; a broken file leaves the old ones.
func TestReload(t *testing.T) {
	path := hookstest.WriteFile(t, "acl.yaml", "rules:\n  - {user: a, topic: x}\n")
	p, err := New(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	runChecks(t, p, []check{{"a", "c", pub, "x", 'A'}})
	os.WriteFile(path, []byte("rules:\n  - {user: a, topic: x, result: deny}\n"), 0o600)
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	runChecks(t, p, []check{{"a", "c", pub, "x", 'D'}})
	os.WriteFile(path, []byte("rules:\n  - {user: a, topic: y}\n  - {user: a, topic: x, actions: [peek]}\n"), 0o600)
	if err := p.Reload(); err == nil || err.Error() != "acl-file: "+path+`:3: rule 2: "peek" is not an action (use subscribe, publish, receive, read, write or readwrite)` {
		t.Fatalf("Reload of a broken file: %v", err)
	}
	runChecks(t, p, []check{{"a", "c", pub, "x", 'D'}, {"a", "c", pub, "y", 'I'}})
}

// Prepare reads the file but changes nothing until its commit runs, so a
// reload of several plugins can give up without having applied any.
func TestPrepareAppliesOnCommit(t *testing.T) {
	path := hookstest.WriteFile(t, "acl.yaml", "rules:\n  - {user: a, topic: x}\n")
	p, err := New(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte("rules:\n  - {user: a, topic: x, result: deny}\n"), 0o600)
	commit, err := p.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	runChecks(t, p, []check{{"a", "c", pub, "x", 'A'}})
	commit()
	runChecks(t, p, []check{{"a", "c", pub, "x", 'D'}})
	os.WriteFile(path, []byte("rules:\n  - {user: a, topic: x, actions: [peek]}\n"), 0o600)
	if commit, err := p.Prepare(); err == nil || commit != nil {
		t.Errorf("Prepare of a broken file: %v, commit %v", err, commit != nil)
	}
	runChecks(t, p, []check{{"a", "c", pub, "x", 'D'}})
}

// A deny says which line denied, so an operator can find it.
func TestDenyReason(t *testing.T) {
	p := load(t, "acl", "# c\nuser u\ntopic deny a\n")
	d, _ := p.FilterTopic(context.Background(), &mqtt.ClientInfo{Username: "u"}, mqtt.TopicRequest{Action: pub, Topic: "a"})
	if d != (hooks.Decision{Result: hooks.Deny, Reason: "denied by acl-file line 3"}) {
		t.Errorf("decision %+v", d)
	}
}

// A check allocates nothing, whatever its answer.
func TestCheckAllocs(t *testing.T) {
	p := load(t, "acl", mosquittoACL)
	for _, c := range policyChecks {
		ci := &mqtt.ClientInfo{Username: c.user, ClientID: c.client}
		req := mqtt.TopicRequest{Action: c.action, Topic: c.topic}
		if n := testing.AllocsPerRun(100, func() { p.FilterTopic(context.Background(), ci, req) }); n != 0 {
			t.Errorf("%v %q for %q: %v allocations", c.action, c.topic, c.user, n)
		}
	}
}

package aclfile

import (
	"strings"
	"testing"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/topics"
)

func mustCompile(t testing.TB, s string, subst bool) pattern {
	t.Helper()
	p, err := compile(s, subst)
	if err != nil {
		t.Fatalf("compile(%q): %v", s, err)
	}
	return p
}

// covers and overlaps on plain filters (no substitution): the ACL filter
// first, then the subscription's. Names are filters too: for them both
// mean "matches".
var coverTable = []struct {
	acl, sub        string
	covers, overlap bool
}{
	{"sensors/#", "sensors/+/temp", true, true},
	{"sensors/+/temp", "sensors/#", false, true},
	{"sensors/+/temp", "sensors/+/temp", true, true},
	{"sensors/+/temp", "sensors/a/temp", true, true},
	{"sensors/a/temp", "sensors/+/temp", false, true},
	{"sensors/#", "sensors", true, true}, // '#' includes the parent level
	{"sensors/#", "sensors/#", true, true},
	{"sensors", "sensors/#", false, true}, // sensors/# matches "sensors"
	{"sensors/+", "sensors", false, false},
	{"sensors/+", "sensors/#", false, true},
	{"sensors/+/#", "sensors", false, false},
	{"sensors/+/#", "sensors/#", false, true},
	{"a/b", "a/c", false, false},
	{"a/b", "a/b/c", false, false},
	{"a/b/c", "a/b", false, false},
	{"#", "a/b/c", true, true},
	{"#", "#", true, true},
	{"+", "+", true, true},
	{"+", "a/b", false, false},
	{"+/+", "+/b", true, true},
	{"+/b", "+/+", false, true},
	{"a/+/c", "+/b/+", false, true},
	{"a/+/c", "+/b/d", false, false},
	// Empty levels are levels.
	{"a//c", "a/+/c", false, true},
	{"a/+/c", "a//c", true, true},
	{"/#", "/a", true, true},
	{"+/a", "/a", true, true},
	{"/a", "a", false, false},
	// [MQTT-4.7.2-1] wildcards at the first level do not reach $ topics.
	{"#", "$SYS/#", false, false},
	{"#", "$SYS/broker/uptime", false, false},
	{"+/#", "$SYS/x", false, false},
	{"$SYS/#", "#", false, false},
	{"$SYS/#", "+/broker", false, false},
	{"$SYS/#", "$SYS/broker/+", true, true},
	{"$SYS/+/uptime", "$SYS/#", false, true},
	{"#", "+/x", true, true},
	{"+/#", "#", true, true}, // one level or more, both: "#" has no parent to add at the top
	{"+/#", "+", true, true},
	{"a/+/#", "a/#", false, true}, // a/# matches a, a/+/# does not
	{"+/+/#", "#", false, true},
	{"a/#", "$SYS/#", false, false},
	// '$' below the first level is an ordinary character.
	{"a/#", "a/$x", true, true},
	{"a/+", "a/$x", true, true},
}

func TestCoversOverlaps(t *testing.T) {
	for _, tc := range coverTable {
		p := mustCompile(t, tc.acl, false)
		if got := p.covers(tc.sub, "", ""); got != tc.covers {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.acl, tc.sub, got, tc.covers)
		}
		if got := p.overlaps(tc.sub, "", ""); got != tc.overlap {
			t.Errorf("overlaps(%q, %q) = %v, want %v", tc.acl, tc.sub, got, tc.overlap)
		}
		// covers on a topic name is MatchFilter.
		if !strings.ContainsAny(tc.sub, "+#") {
			if want := topics.MatchFilter(tc.acl, tc.sub); tc.covers != want {
				t.Errorf("table row %q %q: covers %v but MatchFilter %v", tc.acl, tc.sub, tc.covers, want)
			}
		}
	}
}

// Substitutions compare in place, as one literal level, anywhere in it.
func TestTemplates(t *testing.T) {
	for _, tc := range []struct {
		acl, topic, u, c string
		want             bool
	}{
		{"home/%u/#", "home/alice/light", "alice", "", true},
		{"home/%u/#", "home/alicex/light", "alice", "", false},
		{"home/%u/#", "home/alic/light", "alice", "", false},
		{"home/%u/#", "home/bob/light", "alice", "", false},
		{"dev/%c", "dev/sensor-1", "", "sensor-1", true},
		{"dev/id-%c-%u/x", "dev/id-c7-bob/x", "bob", "c7", true},
		{"dev/id-%c-%u/x", "dev/id-c7-bob-/x", "bob", "c7", false},
		{"dev/id-%c-%u/x", "dev/id-c7bob/x", "bob", "c7", false},
		{"%u%u", "abab", "ab", "", true},
		{"%u%u", "aba", "ab", "", false},
		{"x/50%/%c", "x/50%/c1", "", "c1", true}, // a lone % is a character
		{"x/%x", "x/%x", "", "", true},
		{"%u/+", "bob/a", "bob", "", true},
	} {
		p := mustCompile(t, tc.acl, true)
		if got := p.covers(tc.topic, tc.u, tc.c); got != tc.want {
			t.Errorf("covers(%q, %q) with u=%q c=%q = %v, want %v", tc.acl, tc.topic, tc.u, tc.c, got, tc.want)
		}
		if got := p.overlaps(tc.topic, tc.u, tc.c); got != tc.want {
			t.Errorf("overlaps(%q, %q) with u=%q c=%q = %v, want %v", tc.acl, tc.topic, tc.u, tc.c, got, tc.want)
		}
	}
	// Without substitution (Mosquitto's topic lines) %u is text.
	if p := mustCompile(t, "home/%u", false); !p.covers("home/%u", "alice", "") || p.covers("home/alice", "alice", "") {
		t.Error("a topic line substituted %u")
	}
	if p := mustCompile(t, "a/%u-%c/b", true); !p.usesU || !p.usesC {
		t.Error("usesU/usesC not set")
	}
	if p := mustCompile(t, "a/%c/b", true); p.usesU || !p.usesC {
		t.Error("usesU set for a pattern with only a client id substitution")
	}
}

func TestValidFilter(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a/b", ""},
		{"#", ""},
		{"+/+/#", ""},
		{"/", ""},
		{"$SYS/#", ""},
		{"", "the topic is empty"},
		{"a/b#", `the level "b#" mixes a wildcard with other characters (+ and # must fill a whole level)`},
		{"a+/b", `the level "a+" mixes a wildcard with other characters (+ and # must fill a whole level)`},
		{"a/#/b", "'#' is not the last level (it matches everything below, so nothing can follow it)"},
		{"a\x00b", "the topic contains a NUL character"},
		{"$share/g/a", "the topic starts with $share/; ACL topics name the filter inside a shared subscription (write sensors/# to cover $share/GROUP/sensors/#)"},
		{strings.Repeat("a", 65536), "the topic is longer than MQTT's 65535 bytes"},
	} {
		err := validFilter(tc.in)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("validFilter(%.20q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// bruteCovers decides covers and overlaps by trying every topic that can
// tell them apart: topics of up to one level more than either filter has,
// each level one of the filters' own literal levels, a fresh one, or
// (first level only) a fresh '$' one. Any other level behaves like the
// fresh one, and a longer topic like one of that length. The fresh levels
// hold a NUL, which no valid filter does, so they are new to both.
func bruteCovers(acl, sub string) (covers, overlaps bool) {
	seen := map[string]bool{"+": true, "#": true}
	alphabet := []string{"\x00fresh"}
	for _, f := range []string{acl, sub} {
		for l := range strings.SplitSeq(f, "/") {
			if !seen[l] {
				seen[l] = true
				alphabet = append(alphabet, l)
			}
		}
	}
	first := append(append([]string(nil), alphabet...), "$\x00fresh")
	maxLevels := max(strings.Count(acl, "/"), strings.Count(sub, "/")) + 2
	covers = true
	var walk func(levels []string)
	walk = func(levels []string) {
		if len(levels) > 0 {
			t := strings.Join(levels, "/")
			inSub, inACL := topics.MatchFilter(sub, t), topics.MatchFilter(acl, t)
			covers = covers && (!inSub || inACL)
			overlaps = overlaps || (inSub && inACL)
		}
		if len(levels) == maxLevels {
			return
		}
		next := alphabet
		if len(levels) == 0 {
			next = first
		}
		for _, l := range next {
			walk(append(levels, l))
		}
	}
	walk(nil)
	return covers, overlaps
}

// The table agrees with brute force, so the brute force can be trusted in
// the fuzz target.
func TestBruteForceAgreesWithTable(t *testing.T) {
	for _, tc := range coverTable {
		if c, o := bruteCovers(tc.acl, tc.sub); c != tc.covers || o != tc.overlap {
			t.Errorf("brute force on %q %q: covers %v overlaps %v; table says %v %v", tc.acl, tc.sub, c, o, tc.covers, tc.overlap)
		}
	}
}

// FuzzCoversOverlaps checks covers and overlaps against brute force over
// every topic that can tell them apart. The seed corpus is in
// testdata/fuzz/FuzzCoversOverlaps.
func FuzzCoversOverlaps(f *testing.F) {
	for _, tc := range coverTable {
		f.Add(tc.acl, tc.sub)
	}
	f.Fuzz(func(t *testing.T, acl, sub string) {
		if validFilter(acl) != nil || validFilter(sub) != nil {
			return
		}
		// Keep the brute force small: it tries alphabet^levels topics.
		if strings.Count(acl, "/") > 3 || strings.Count(sub, "/") > 3 || len(acl)+len(sub) > 64 {
			return
		}
		p := mustCompile(t, acl, false)
		wantC, wantO := bruteCovers(acl, sub)
		if got := p.covers(sub, "", ""); got != wantC {
			t.Errorf("covers(%q, %q) = %v, brute force says %v", acl, sub, got, wantC)
		}
		if got := p.overlaps(sub, "", ""); got != wantO {
			t.Errorf("overlaps(%q, %q) = %v, brute force says %v", acl, sub, got, wantO)
		}
	})
}

// FuzzTemplate checks that substituting %u and %c in place is the same as
// writing their values into the topic, whenever the values are usable.
// The seed corpus is in testdata/fuzz/FuzzTemplate.
func FuzzTemplate(f *testing.F) {
	f.Fuzz(func(t *testing.T, acl, sub, u, c string) {
		if validFilter(acl) != nil || validFilter(sub) != nil || classify(u) != valueOK || classify(c) != valueOK {
			return
		}
		tmpl := mustCompile(t, acl, true)
		plain := mustCompile(t, strings.NewReplacer("%u", u, "%c", c).Replace(acl), false)
		if got, want := tmpl.covers(sub, u, c), plain.covers(sub, "", ""); got != want {
			t.Errorf("covers(%q, %q) with u=%q c=%q = %v; with the values written in: %v", acl, sub, u, c, got, want)
		}
		if got, want := tmpl.overlaps(sub, u, c), plain.overlaps(sub, "", ""); got != want {
			t.Errorf("overlaps(%q, %q) with u=%q c=%q = %v; with the values written in: %v", acl, sub, u, c, got, want)
		}
	})
}

// FuzzSubscribeRule checks the subscribe rule on one grant and one deny
// against brute force over the topics that can tell the answers apart: a
// subscription is denied when the deny covers every topic the filter can
// match, else allowed when the grant allows one of them, else ignored.
// The deny is for reading (subscribe and receive) or for subscribe alone;
// either way it refuses only what it covers. Seeds are in
// testdata/fuzz/FuzzSubscribeRule.
func FuzzSubscribeRule(f *testing.F) {
	for _, tc := range coverTable {
		f.Add(tc.acl, tc.acl, tc.sub, true)
	}
	f.Fuzz(func(t *testing.T, grant, deny, sub string, read bool) {
		for _, s := range []string{grant, deny, sub} {
			if validFilter(s) != nil || strings.Count(s, "/") > 3 || len(s) > 32 {
				return
			}
		}
		denyAccess := accRead
		if !read {
			denyAccess = accSubscribe
		}
		rs := newRuleSet()
		rs.add(scopeAll, "", &rule{access: accRead, pat: mustCompile(t, grant, false)}, 1)
		rs.add(scopeAll, "", &rule{deny: true, access: denyAccess, pat: mustCompile(t, deny, false)}, 2)
		got := rs.check(&mqtt.ClientInfo{Username: "u", ClientID: "c"}, mqtt.TopicRequest{Action: mqtt.ActionSubscribe, Topic: sub}).Result
		denyCovers, _ := bruteCovers(deny, sub)
		_, grantOverlaps := bruteCovers(grant, sub)
		want := hooks.Ignore
		switch {
		case denyCovers:
			want = hooks.Deny
		case grantOverlaps:
			want = hooks.Allow
		}
		if got != want {
			t.Errorf("grant %q, deny %q (read %v), subscribe %q: %v, want %v", grant, deny, read, sub, got, want)
		}
	})
}

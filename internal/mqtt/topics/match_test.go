package topics

import (
	"strings"
	"testing"
)

// matchCases is the one table of matching rules. TestMatchTable holds
// MatchFilter, Tree.Match and Retained.Match to every row, so the three
// cannot drift apart.
var matchCases = []struct {
	filter, topic string
	want          bool
	why           string
}{
	// Literal levels.
	{"a", "a", true, "same single level"},
	{"a/b/c", "a/b/c", true, "same levels"},
	{"a/b", "a/b/c", false, "filter shorter than topic"},
	{"a/b/c", "a/b", false, "filter longer than topic"},
	{"a/b", "a/c", false, "different last level"},
	{"ab", "a", false, "prefix of a level is not the level"},
	{"a", "ab", false, "level is not a prefix"},
	{"a/b", "a/bc", false, "last level prefix"},
	{"a/bc", "a/b", false, "last level longer"},

	// [MQTT-4.7.3-4] no normalisation: case, spaces and empty levels count.
	{"ACCOUNTS", "Accounts", false, "case sensitive (4.7.3)"},
	{"Accounts", "Accounts", true, "same case"},
	{"Accounts payable", "Accounts payable", true, "spaces are ordinary characters (4.7.3)"},
	{"/finance", "finance", false, "leading '/' is an empty level (4.7.3)"},
	{"finance", "/finance", false, "leading empty level in topic"},
	{"/finance", "/finance", true, "leading empty level both"},
	{"a//b", "a//b", true, "empty middle level"},
	{"a//b", "a/b", false, "empty level is a real level"},
	{"a/b", "a//b", false, "empty level is a real level (topic)"},
	{"a/", "a/", true, "trailing empty level"},
	{"a/", "a", false, "trailing empty level is a level"},
	{"a", "a/", false, "trailing empty level in topic"},
	{"/", "/", true, "two empty levels"},
	{"//", "/", false, "three levels against two"},
	{"é/ü", "é/ü", true, "UTF-8 levels"},
	{"é", "É", false, "UTF-8, no case folding"},

	// '+' matches exactly one level [MQTT-4.7.1-3].
	{"+", "a", true, "'+' alone, one level"},
	{"+", "a/b", false, "'+' alone, two levels"},
	{"+", "/a", false, "'/a' has two levels"},
	{"+", "", true, "'+' matches an empty level"},
	{"+/+", "a/b", true, "two '+'"},
	{"+/+", "a", false, "two '+', one level"},
	{"a/+", "a/b", true, "'+' last"},
	{"a/+", "a", false, "'+' needs a level (4.7.1.3)"},
	{"a/+", "a/", true, "'+' matches the empty level (4.7.1.3)"},
	{"a/+", "a/b/c", false, "'+' is one level only"},
	{"a/+/c", "a/b/c", true, "'+' middle"},
	{"a/+/c", "a//c", true, "'+' middle empty level"},
	{"a/+/c", "a/c", false, "'+' middle missing level"},
	{"+/b", "/b", true, "'+' first, empty level"},
	{"a/+/+", "a/b/c", true, "consecutive '+'"},
	{"+/+/+", "//", true, "three empty levels"},

	// '#' matches the parent and any number of child levels.
	{"#", "a", true, "'#' alone, one level"},
	{"#", "a/b/c", true, "'#' alone, many levels"},
	{"#", "/", true, "'#' alone, empty levels"},
	{"#", "", true, "'#' alone, one empty level"},
	{"a/#", "a", true, "'#' matches the parent level"},
	{"a/#", "a/", true, "'#' empty child"},
	{"a/#", "a/b", true, "'#' one child"},
	{"a/#", "a/b/c/d", true, "'#' many children"},
	{"a/#", "b", false, "'#' parent differs"},
	{"a/#", "ab", false, "'#' parent is a whole level"},
	{"a/b/#", "a", false, "'#' parent of parent"},
	{"+/#", "a", true, "'+' then '#' parent"},
	{"+/#", "a/b/c", true, "'+' then '#' children"},
	{"/#", "/", true, "'#' after empty first level"},
	{"/#", "a", false, "'#' after empty level, non-empty topic"},
	{"a/+/#", "a/b", true, "'+' then '#' parent"},
	{"a/+/#", "a", false, "'+' needs its level before '#'"},

	// 4.7.1.2 and 4.7.1.3 examples.
	{"sport/tennis/player1/#", "sport/tennis/player1", true, "4.7.1.2"},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true, "4.7.1.2"},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true, "4.7.1.2"},
	{"sport/#", "sport", true, "4.7.1.2"},
	{"sport/tennis/+", "sport/tennis/player1", true, "4.7.1.3"},
	{"sport/tennis/+", "sport/tennis/player2", true, "4.7.1.3"},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false, "4.7.1.3"},
	{"sport/+", "sport", false, "4.7.1.3"},
	{"sport/+", "sport/", true, "4.7.1.3"},
	{"sport/+/player1", "sport/tennis/player1", true, "4.7.1.3"},
	{"+/tennis/#", "sport/tennis/player1", true, "4.7.1.3"},
	{"+/+", "/finance", true, "4.7.1.3"},
	{"/+", "/finance", true, "4.7.1.3"},
	{"+", "/finance", false, "4.7.1.3"},

	// [MQTT-4.7.2-1] wildcards at the first level don't match $ topics.
	{"#", "$SYS/monitor/Clients", false, "4.7.2"},
	{"#", "$SYS", false, "'#' and a bare $ topic"},
	{"#", "$", false, "'#' and a lone '$'"},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false, "4.7.2"},
	{"+", "$SYS", false, "'+' and a $ topic"},
	{"+/#", "$SYS/x", false, "'+' then '#' and a $ topic"},
	{"$SYS/#", "$SYS/monitor/Clients", true, "4.7.2"},
	{"$SYS/#", "$SYS", true, "'#' parent in $SYS"},
	{"$SYS/#", "$SYS/x", true, "$SYS/# matches $SYS/x"},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true, "4.7.2"},
	{"$SYS/+/Clients", "$SYS/monitor/Clients", true, "'+' below a $ level"},
	{"$SYS", "$SYS", true, "literal $ topic"},
	{"$sys/#", "$SYS/x", false, "$ levels are case sensitive"},
	{"a/#", "a/$b", true, "'$' below the first level is ordinary"},
	{"a/+", "a/$b", true, "'+' below the first level sees '$'"},
	{"#", "a/$b", true, "only a leading '$' is special"},
	{"+/$b", "a/$b", true, "'$' level after '+'"},
	{"#", "x$", true, "'$' not first"},

	// Invalid filters and topic names (the broker rejects them first);
	// the three matchers must still agree and not panic.
	{"sport/tennis/#/ranking", "sport/tennis/x/ranking", false, "'#' not last matches nothing"},
	{"sport/tennis/#/ranking", "sport/tennis/#/ranking", false, "'#' not last, literal topic"},
	{"#/a", "b/a", false, "'#' first, not last"},
	{"sport/tennis#", "sport/tennis#", true, "'#' inside a level is literal"},
	{"sport/tennis#", "sport/tennis", false, "'#' inside a level is literal"},
	{"sport+", "sport+", true, "'+' inside a level is literal"},
	{"sport+", "sportx", false, "'+' inside a level is literal"},
	{"++", "ab", false, "'++' is a literal level"},
	{"a/+", "a/+", true, "topic level '+' is a level like any other"},
	{"a/b", "a/+", false, "topic '+' is not a wildcard"},
	{"a/#", "a/#", true, "topic '#' under a '#' filter"},
	{"a/b", "a/#", false, "topic '#' is not a wildcard"},
	{"", "", true, "empty filter and topic: one empty level"},
	{"", "a", false, "empty filter"},
	{"a", "", false, "empty topic"},
	{"#", "#", true, "'#' topic"},
	{"+", "+", true, "'+' topic"},
	{"$SYS/#", "$SYS/#", true, "'$' and '#' topic"},
}

// TestMatchTable applies every row to MatchFilter, to a Tree holding only
// the row's filter, and to a Retained holding only the row's topic.
func TestMatchTable(t *testing.T) {
	for _, c := range matchCases {
		if got := MatchFilter(c.filter, c.topic); got != c.want {
			t.Errorf("MatchFilter(%q, %q) = %v, want %v (%s)", c.filter, c.topic, got, c.want, c.why)
		}
		if got := treeMatches(c.filter, c.topic); got != c.want {
			t.Errorf("Tree{%q}.Match(%q) = %v, want %v (%s)", c.filter, c.topic, got, c.want, c.why)
		}
		if got := retainedMatches(c.filter, c.topic); got != c.want {
			t.Errorf("Retained{%q}.Match(%q) = %v, want %v (%s)", c.topic, c.filter, got, c.want, c.why)
		}
	}
}

// TestMatchTableOneTree checks the table against a single Tree holding all
// its filters and a single Retained holding all its topics, so matching
// is also exercised with siblings present.
func TestMatchTableOneTree(t *testing.T) {
	tree := NewTree[string, struct{}]()
	ret := NewRetained[struct{}]()
	for _, c := range matchCases {
		tree.Subscribe(c.filter, c.filter, struct{}{})
		ret.Set(c.topic, struct{}{})
	}
	for _, c := range matchCases {
		got := map[string]int{}
		tree.Match(c.topic, func(f string, _ struct{}) { got[f]++ })
		if (got[c.filter] == 1) != c.want || got[c.filter] > 1 {
			t.Errorf("Tree.Match(%q) reported filter %q %d times, want match=%v (%s)", c.topic, c.filter, got[c.filter], c.want, c.why)
		}
		seen := 0
		ret.Match(c.filter, func(topic string, _ struct{}) {
			if topic == c.topic {
				seen++
			}
		})
		if (seen == 1) != c.want || seen > 1 {
			t.Errorf("Retained.Match(%q) reported topic %q %d times, want match=%v (%s)", c.filter, c.topic, seen, c.want, c.why)
		}
	}
}

// treeMatches reports whether a Tree holding only filter matches topic,
// failing loudly if it reports the subscription more than once.
func treeMatches(filter, topic string) bool {
	tree := NewTree[int, int]()
	tree.Subscribe(filter, 1, 42)
	n := 0
	tree.Match(topic, func(k, v int) {
		if k != 1 || v != 42 {
			panic("wrong subscription reported")
		}
		n++
	})
	if n > 1 {
		panic("subscription reported more than once")
	}
	return n == 1
}

// retainedMatches reports whether filter matches a Retained holding only
// topic, failing loudly on duplicates.
func retainedMatches(filter, topic string) bool {
	ret := NewRetained[int]()
	ret.Set(topic, 42)
	n := 0
	ret.Match(filter, func(tp string, v int) {
		if tp != topic || v != 42 {
			panic("wrong retained message reported")
		}
		n++
	})
	if n > 1 {
		panic("retained message reported more than once")
	}
	return n == 1
}

func TestMatchFilterAllocs(t *testing.T) {
	filter, topic := "site/+/dev/+/temp/#", "site/12/dev/12345/temp/a/b"
	if n := testing.AllocsPerRun(100, func() { MatchFilter(filter, topic) }); n != 0 {
		t.Errorf("MatchFilter allocates %v times per call, want 0", n)
	}
}

// TestMatchFilterLinear makes sure pathological inputs finish quickly:
// there is no backtracking for a long run of '+' or a huge topic to
// blow up.
func TestMatchFilterLinear(t *testing.T) {
	plus := strings.Repeat("+/", 30000) + "#"
	topic := strings.Repeat("a/", 30000) + "b"
	if !MatchFilter(plus, topic) {
		t.Error("long '+' run should match")
	}
	if MatchFilter(plus+"x", topic) {
		t.Error("'#x' is a literal level and should not match")
	}
	slashes := strings.Repeat("/", 65535)
	if !MatchFilter(slashes, slashes) || MatchFilter(slashes, slashes[1:]) {
		t.Error("65536 empty levels")
	}
}

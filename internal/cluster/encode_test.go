package cluster

import (
	"slices"
	"testing"
	"testing/quick"
	"unicode/utf8"
)

func TestTopicEncodingIsReversibleAndValid(t *testing.T) {
	for _, topic := range []string{"a/b", "a.b/c d", "*/>/x", "/", "//a//", "$SYS/x", "_/_x/_41", "ünï/cödé", "a\x00b", "-"} {
		key := topicKey(topic)
		for i := 0; i < len(key); i++ {
			if c := key[i]; !(plain(c) || c == '_' || c == '.') {
				t.Errorf("%q encodes to %q, which holds %q", topic, key, c)
			}
		}
		back, err := decodeTopic(key)
		if err != nil || back != topic {
			t.Errorf("%q -> %q -> %q, %v", topic, key, back, err)
		}
	}
	f := func(s string) bool {
		if !utf8.ValidString(s) {
			return true
		}
		back, err := decodeTopic(topicKey(s))
		return err == nil && back == s
	}
	if err := quick.Check(f, nil); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"a_4", "a_zz", "a_4a", "a b", ""} {
		if got, err := decodeTopic(bad); err == nil && bad != "" {
			t.Errorf("decodeTopic(%q) = %q, want an error", bad, got)
		}
	}
}

func TestFilterSubjects(t *testing.T) {
	for filter, want := range map[string][]string{
		"a/b":   {"a.b"},
		"a/+/c": {"a.*.c"},
		"a/#":   {"a.>", "a"},
		"#":     {">"},
		"+/#":   {"*.>", "*"},
		"$x/+":  {"_24x.*"},
		"a.b/ ": {"a_2Eb._20"},
		"/#":    {"_.>", "_"},
	} {
		if got := filterSubjects(filter); !slices.Equal(got, want) {
			t.Errorf("filterSubjects(%q) = %q, want %q", filter, got, want)
		}
	}
}

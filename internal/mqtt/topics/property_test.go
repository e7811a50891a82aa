package topics

import (
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
)

// The property tests compare the tries against MatchFilter, checked pair by
// pair, on random filters and topics drawn from a small alphabet of levels so
// that matches, near misses, empty levels and '$' topics are all common.

var (
	topicLevels  = []string{"a", "b", "", "$s", "ab", "a$"}
	filterLevels = append([]string{"+", "+", "#", "#"}, topicLevels...)

	// The wide alphabet has more literal levels than fewChildren, so nodes
	// also switch their children to a map and back as filters come and go.
	wideTopicLevels  = append([]string{"c", "d", "e", "f", "g", "h", "i", "j", "$t", "k"}, topicLevels...)
	wideFilterLevels = append([]string{"+", "+", "#", "#"}, wideTopicLevels...)
)

// alphabets are the level sets the property tests run with.
var alphabets = []struct {
	name           string
	topic, filters []string
}{
	{"narrow", topicLevels, filterLevels},
	{"wide", wideTopicLevels, wideFilterLevels},
}

// randomName joins 1..4 random levels from alphabet. Filters may come out
// invalid ('#' not last); the matchers must agree on those too.
func randomName(rng *rand.Rand, alphabet []string) string {
	n := 1 + rng.IntN(4)
	levels := make([]string, n)
	for i := range levels {
		levels[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return strings.Join(levels, "/")
}

func TestTreeMatchesBruteForce(t *testing.T) {
	for _, a := range alphabets {
		t.Run(a.name, func(t *testing.T) { treeMatchesBruteForce(t, a.topic, a.filters) })
	}
}

func treeMatchesBruteForce(t *testing.T, topicLevels, filterLevels []string) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		tree := NewTree[int, string]()
		var filters []string
		for i := range 200 {
			f := randomName(rng, filterLevels)
			filters = append(filters, f)
			tree.Subscribe(f, i, f)
		}
		// Drop a third again, so matching also runs on a pruned tree.
		live := map[int]bool{}
		for i := range filters {
			live[i] = true
		}
		for i := range filters {
			if rng.IntN(3) == 0 {
				if !tree.Unsubscribe(filters[i], i) {
					t.Fatalf("Unsubscribe(%q, %d) = false", filters[i], i)
				}
				delete(live, i)
			}
		}
		if tree.Len() != len(live) {
			t.Fatalf("round %d: Len = %d, want %d", round, tree.Len(), len(live))
		}
		for range 500 {
			topic := randomName(rng, topicLevels)
			var want []int
			for i := range live {
				if MatchFilter(filters[i], topic) {
					want = append(want, i)
				}
			}
			var got []int
			tree.Match(topic, func(k int, f string) {
				if f != filters[k] {
					t.Fatalf("key %d reported with value %q, want %q", k, f, filters[k])
				}
				got = append(got, k)
			})
			sort.Ints(want)
			sort.Ints(got)
			if !equalInts(got, want) {
				t.Fatalf("round %d: Match(%q) = %v, brute force = %v", round, topic, names(filters, got), names(filters, want))
			}
		}
	}
}

func TestRetainedMatchesBruteForce(t *testing.T) {
	for _, a := range alphabets {
		t.Run(a.name, func(t *testing.T) { retainedMatchesBruteForce(t, a.topic, a.filters) })
	}
}

func retainedMatchesBruteForce(t *testing.T, topicLevels, filterLevels []string) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 20 {
		r := NewRetained[string]()
		live := map[string]bool{}
		for range 200 {
			topic := randomName(rng, topicLevels)
			r.Set(topic, topic)
			live[topic] = true
		}
		for topic := range live {
			if rng.IntN(3) == 0 {
				if !r.Delete(topic) {
					t.Fatalf("Delete(%q) = false", topic)
				}
				delete(live, topic)
			}
		}
		if r.Len() != len(live) {
			t.Fatalf("round %d: Len = %d, want %d", round, r.Len(), len(live))
		}
		for range 500 {
			filter := randomName(rng, filterLevels)
			var want, got []string
			for topic := range live {
				if MatchFilter(filter, topic) {
					want = append(want, topic)
				}
			}
			r.Match(filter, func(topic, v string) {
				if v != topic {
					t.Fatalf("topic %q reported with value %q", topic, v)
				}
				got = append(got, topic)
			})
			sort.Strings(want)
			sort.Strings(got)
			if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
				t.Fatalf("round %d: Match(%q) = %q, brute force = %q", round, filter, got, want)
			}
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func names(filters []string, keys []int) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = filters[k]
	}
	return out
}

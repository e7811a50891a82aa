package topics

import "testing"

// FuzzMatchFilter checks, on arbitrary strings, that MatchFilter never
// panics and agrees with a Tree holding only filter and with a Retained
// holding only topic, and that both tries prune back to nothing. The seed
// corpus lives in testdata/fuzz/FuzzMatchFilter.
func FuzzMatchFilter(f *testing.F) {
	f.Fuzz(func(t *testing.T, filter, topic string) {
		want := MatchFilter(filter, topic)

		tree := NewTree[int, int]()
		tree.Subscribe(filter, 1, 1)
		n := 0
		tree.Match(topic, func(int, int) { n++ })
		if n > 1 {
			t.Fatalf("Tree{%q}.Match(%q) reported the subscription %d times", filter, topic, n)
		}
		if (n == 1) != want {
			t.Fatalf("MatchFilter(%q, %q) = %v, Tree.Match disagrees", filter, topic, want)
		}
		if !tree.Unsubscribe(filter, 1) || tree.Len() != 0 || tree.nodeCount() != 0 {
			t.Fatalf("Tree{%q} did not prune back to empty", filter)
		}

		r := NewRetained[int]()
		r.Set(topic, 1)
		n = 0
		r.Match(filter, func(string, int) { n++ })
		if n > 1 {
			t.Fatalf("Retained{%q}.Match(%q) reported the message %d times", topic, filter, n)
		}
		if (n == 1) != want {
			t.Fatalf("MatchFilter(%q, %q) = %v, Retained.Match disagrees", filter, topic, want)
		}
		if v, ok := r.Get(topic); !ok || v != 1 {
			t.Fatalf("Retained.Get(%q) lost the message", topic)
		}
		if !r.Delete(topic) || r.Len() != 0 || r.nodeCount() != 0 {
			t.Fatalf("Retained{%q} did not prune back to empty", topic)
		}
	})
}

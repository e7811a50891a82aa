package topics

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
)

// collect returns the keys Match reports for topic, sorted.
func collect[V any](tree *Tree[string, V], topic string) []string {
	var got []string
	tree.Match(topic, func(k string, _ V) { got = append(got, k) })
	sort.Strings(got)
	return got
}

func TestTreeSubscribeReplace(t *testing.T) {
	tree := NewTree[string, int]()
	if !tree.Subscribe("a/b", "c1", 1) {
		t.Fatal("first Subscribe: isNew = false")
	}
	// [MQTT-3.8.4-3] an identical filter replaces the subscription.
	if tree.Subscribe("a/b", "c1", 2) {
		t.Fatal("second Subscribe of the same key and filter: isNew = true")
	}
	if n := tree.Len(); n != 1 {
		t.Fatalf("Len = %d after replace, want 1", n)
	}
	var vals []int
	tree.Match("a/b", func(_ string, v int) { vals = append(vals, v) })
	if len(vals) != 1 || vals[0] != 2 {
		t.Fatalf("Match after replace reported %v, want [2]", vals)
	}
	// Another key on the same filter, and the same key on another filter,
	// are separate subscriptions.
	if !tree.Subscribe("a/b", "c2", 3) || !tree.Subscribe("a/+", "c1", 4) {
		t.Fatal("distinct subscriptions reported as replacements")
	}
	if n := tree.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	if got := fmt.Sprint(collect(tree, "a/b")); got != "[c1 c1 c2]" {
		t.Fatalf("Match(a/b) = %s, want [c1 c1 c2] (overlapping filters report once each)", got)
	}
}

func TestTreeUnsubscribe(t *testing.T) {
	tree := NewTree[string, int]()
	tree.Subscribe("a/b", "c1", 1)
	tree.Subscribe("a/b", "c2", 1)
	tree.Subscribe("a/#", "c1", 1)
	if tree.Unsubscribe("a/b", "c3") {
		t.Error("Unsubscribe of an unknown key reported existed")
	}
	if tree.Unsubscribe("a/c", "c1") {
		t.Error("Unsubscribe of an unknown filter reported existed")
	}
	if tree.Unsubscribe("a", "c1") {
		t.Error("Unsubscribe of an interior node reported existed")
	}
	if tree.Unsubscribe("a/+", "c1") || tree.Unsubscribe("+", "c1") || tree.Unsubscribe("#", "c1") {
		t.Error("Unsubscribe of a wildcard nobody holds reported existed")
	}
	if !tree.Unsubscribe("a/b", "c1") {
		t.Fatal("Unsubscribe(a/b, c1) = false")
	}
	if tree.Unsubscribe("a/b", "c1") {
		t.Error("second Unsubscribe reported existed")
	}
	if got := fmt.Sprint(collect(tree, "a/b")); got != "[c1 c2]" {
		t.Errorf("Match(a/b) = %s, want [c1 c2]", got)
	}
	if n := tree.Len(); n != 2 {
		t.Errorf("Len = %d, want 2", n)
	}
	tree.Unsubscribe("a/b", "c2")
	tree.Unsubscribe("a/#", "c1")
	if n, nodes := tree.Len(), tree.nodeCount(); n != 0 || nodes != 0 {
		t.Errorf("after removing everything: Len = %d, nodes = %d, want 0, 0", n, nodes)
	}
}

// TestTreePruning subscribes and unsubscribes 10k distinct filters of all
// shapes and checks the tree is back to no nodes at all.
func TestTreePruning(t *testing.T) {
	tree := NewTree[int, int]()
	filters := make([]string, 10000)
	for i := range filters {
		switch i % 5 {
		case 0:
			filters[i] = fmt.Sprintf("site/%d/dev/%d/temp", i%100, i)
		case 1:
			filters[i] = fmt.Sprintf("site/+/dev/%d/#", i)
		case 2:
			filters[i] = fmt.Sprintf("+/%d//+", i)
		case 3:
			filters[i] = fmt.Sprintf("$SYS/%d/#", i)
		case 4:
			filters[i] = fmt.Sprintf("/%d/", i)
		}
	}
	for i, f := range filters {
		tree.Subscribe(f, i, i)
		tree.Subscribe(f, -i-1, i) // two keys per filter
	}
	if n := tree.Len(); n != 20000 {
		t.Fatalf("Len = %d, want 20000", n)
	}
	if tree.nodeCount() == 0 {
		t.Fatal("no nodes after subscribing")
	}
	// Remove in a different order than added, to prune from all sides.
	for j := range filters {
		i := (j * 7919) % len(filters)
		if !tree.Unsubscribe(filters[i], i) || !tree.Unsubscribe(filters[i], -i-1) {
			t.Fatalf("Unsubscribe(%q) = false", filters[i])
		}
	}
	if n, nodes := tree.Len(), tree.nodeCount(); n != 0 || nodes != 0 {
		t.Fatalf("after unsubscribing everything: Len = %d, nodes = %d, want 0, 0", n, nodes)
	}
	if tree.root.children.len() != 0 || tree.root.plus != nil || tree.root.hash != nil {
		t.Fatal("root still has children")
	}
}

// TestTreePruneKeepsShared checks pruning stops at nodes other filters
// still need.
func TestTreePruneKeepsShared(t *testing.T) {
	tree := NewTree[string, int]()
	tree.Subscribe("a/b/c", "x", 0)
	tree.Subscribe("a/b", "x", 0)
	tree.Subscribe("a/+/c", "x", 0)
	tree.Unsubscribe("a/b/c", "x")
	if got := fmt.Sprint(collect(tree, "a/b")); got != "[x]" {
		t.Errorf("Match(a/b) = %s after pruning a/b/c", got)
	}
	if got := fmt.Sprint(collect(tree, "a/b/c")); got != "[x]" {
		t.Errorf("Match(a/b/c) = %s after pruning a/b/c, want a/+/c only", got)
	}
	if n := tree.nodeCount(); n != 4 { // a, b, +, c
		t.Errorf("nodes = %d, want 4", n)
	}
}

// TestTreeFanOut crosses the index threshold both ways with many keys on
// one filter, checking replace and remove stay right on each side.
func TestTreeFanOut(t *testing.T) {
	tree := NewTree[int, int]()
	const n = 1000
	for i := range n {
		tree.Subscribe("fan/out", i, i)
	}
	for i := range n {
		if tree.Subscribe("fan/out", i, i+n) {
			t.Fatalf("replace of key %d reported new", i)
		}
	}
	check := func(present func(int) bool) {
		t.Helper()
		seen := map[int]int{}
		tree.Match("fan/out", func(k, v int) {
			if v != k+n {
				t.Errorf("key %d has value %d, want %d", k, v, k+n)
			}
			seen[k]++
		})
		for i := range n {
			if want := present(i); (seen[i] == 1) != want || seen[i] > 1 {
				t.Fatalf("key %d seen %d times, want present=%v", i, seen[i], want)
			}
		}
	}
	check(func(int) bool { return true })
	// Remove the odd keys, then all but the last few, checking each time.
	for i := 1; i < n; i += 2 {
		if !tree.Unsubscribe("fan/out", i) {
			t.Fatalf("Unsubscribe key %d = false", i)
		}
	}
	check(func(i int) bool { return i%2 == 0 })
	for i := 0; i < n-10; i += 2 {
		tree.Unsubscribe("fan/out", i)
	}
	check(func(i int) bool { return i%2 == 0 && i >= n-10 })
	nd := tree.root.children.get("fan").children.get("out")
	if nd.index != nil || cap(nd.subs) > 4*indexThreshold {
		t.Errorf("after shrinking to %d subscriptions: index kept = %v, cap = %d", len(nd.subs), nd.index != nil, cap(nd.subs))
	}
	// Grow past the threshold again: the index must be rebuilt right.
	for i := 1; i < 100; i += 2 {
		tree.Subscribe("fan/out", i, i+n)
	}
	check(func(i int) bool { return (i%2 == 0 && i >= n-10) || (i%2 == 1 && i < 100) })
	if nd.index == nil {
		t.Error("index not rebuilt above the threshold")
	}
	if got, want := tree.Len(), 5+50; got != want {
		t.Errorf("Len = %d, want %d", got, want)
	}
}

func TestTreeMatchAllocs(t *testing.T) {
	tree := NewTree[int, int]()
	for i := range 1000 {
		tree.Subscribe(fmt.Sprintf("site/%d/dev/%d/temp", i%10, i), i, i)
	}
	tree.Subscribe("site/+/dev/+/temp", -1, 0)
	tree.Subscribe("site/#", -2, 0)
	tree.Subscribe("#", -3, 0)
	calls := 0
	fn := func(int, int) { calls++ }
	if n := testing.AllocsPerRun(100, func() { tree.Match("site/3/dev/503/temp", fn) }); n != 0 {
		t.Errorf("Tree.Match allocates %v times per call, want 0", n)
	}
	if calls != 101*4 {
		t.Errorf("callbacks = %d, want %d", calls, 101*4)
	}
}

// TestTreeConcurrent runs subscribers, unsubscribers and matchers at once;
// run it with -race. A stable subscription that nobody removes must be
// seen by every Match, whatever the churn around it.
func TestTreeConcurrent(t *testing.T) {
	tree := NewTree[int, int]()
	tree.Subscribe("s/+/x", -1, 0)
	var stop atomic.Bool
	var churners, matchers sync.WaitGroup
	for w := range 4 {
		churners.Go(func() {
			for i := 0; !stop.Load(); i++ {
				f := fmt.Sprintf("s/%d/x", i%50)
				if i%3 == 0 {
					f = fmt.Sprintf("s/+/%d/#", i%7)
				}
				tree.Subscribe(f, w, i)
				tree.Unsubscribe(f, w)
			}
		})
	}
	for range 4 {
		matchers.Go(func() {
			for i := range 2000 {
				found := false
				tree.Match(fmt.Sprintf("s/%d/x", i%60), func(k, _ int) {
					if k == -1 {
						found = true
					}
				})
				if !found {
					t.Error("stable subscription missed during churn")
					return
				}
				_ = tree.Len()
			}
		})
	}
	matchers.Wait()
	stop.Store(true)
	churners.Wait()
	if n := tree.Len(); n != 1 {
		t.Errorf("Len = %d after churn, want 1", n)
	}
	if n := tree.nodeCount(); n != 3 {
		t.Errorf("nodes = %d after churn, want 3 (s, +, x)", n)
	}
}

// TestGenMovesOnEveryChange: the broker's route cache trusts a match only
// while Gen has not moved, so every subscribe, replace and unsubscribe must
// move it.
func TestGenMovesOnEveryChange(t *testing.T) {
	tr := NewTree[string, int]()
	g := tr.Gen()
	step := func(what string, f func()) {
		t.Helper()
		f()
		if n := tr.Gen(); n == g {
			t.Fatalf("%s: Gen stayed at %d", what, g)
		} else {
			g = n
		}
	}
	step("subscribe", func() { tr.Subscribe("a/+", "k", 1) })
	step("replace", func() { tr.Subscribe("a/+", "k", 2) })
	step("second key", func() { tr.Subscribe("a/b", "j", 1) })
	step("unsubscribe", func() { tr.Unsubscribe("a/+", "k") })
	tr.Match("a/b", func(string, int) {})
	if tr.Gen() != g {
		t.Fatal("Match moved Gen")
	}
}

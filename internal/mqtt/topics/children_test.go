package topics

import (
	"fmt"
	"testing"
)

// TestChildrenGrowShrink walks a children set up past fewChildren and back
// down, checking every lookup at every size and that the form switches.
func TestChildrenGrowShrink(t *testing.T) {
	var c children[int]
	vals := make([]int, 3*fewChildren)
	check := func(present func(int) bool) {
		t.Helper()
		n := 0
		for i := range vals {
			got := c.get(fmt.Sprint(i))
			if present(i) {
				n++
				if got != &vals[i] {
					t.Fatalf("get(%d) = %p, want %p", i, got, &vals[i])
				}
			} else if got != nil {
				t.Fatalf("get(%d) found a removed child", i)
			}
		}
		if c.len() != n {
			t.Fatalf("len = %d, want %d", c.len(), n)
		}
		seen := 0
		for l, p := range c.all() {
			if p != c.get(l) {
				t.Fatalf("all yielded %q -> %p, get says %p", l, p, c.get(l))
			}
			seen++
		}
		if seen != n {
			t.Fatalf("all yielded %d children, want %d", seen, n)
		}
	}
	for i := range vals {
		c.add(fmt.Sprint(i), &vals[i])
		check(func(j int) bool { return j <= i })
		if (c.many != nil) != (i >= fewChildren) {
			t.Fatalf("after %d adds: map form = %v", i+1, c.many != nil)
		}
	}
	for i := range vals {
		c.remove(fmt.Sprint(i))
		c.remove("absent")
		check(func(j int) bool { return j > i })
		if left := len(vals) - i - 1; c.many != nil && left <= fewChildren/2 {
			t.Fatalf("%d children left and still a map", left)
		}
	}
	if c.few != nil || c.many != nil {
		t.Fatal("empty set still holds a slice or map")
	}
}

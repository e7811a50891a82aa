package topics

import "testing"

func TestCovers(t *testing.T) {
	cases := []struct {
		outer, inner string
		want         bool
	}{
		{"#", "a/b", true},
		{"#", "#", true},
		{"sensors/#", "sensors/+/temp", true},
		{"sensors/#", "sensors", true},
		{"sensors/+/temp", "sensors/#", false},
		{"sensors/+/temp", "sensors/x/temp", true},
		{"sensors/+/temp", "sensors/+/temp", true},
		{"sensors/x/temp", "sensors/+/temp", false},
		{"a/b", "a/b", true},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"+/#", "#", true},
		{"+", "#", false},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/+", "a/", true},
		{"a/#", "a/+/#", true},
		{"a/+/#", "a/#", false},
	}
	for _, c := range cases {
		if got := Covers(c.outer, c.inner); got != c.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", c.outer, c.inner, got, c.want)
		}
	}
}

func TestOverlaps(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"#", "a/b", true},
		{"devices/lab/#", "devices/#", true},
		{"devices/lab/#", "other/#", false},
		{"a/+/c", "a/b/+", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/+", "a/b/c", false},
		{"a/#", "a", true},
		{"#", "$SYS/x", false},
		{"$SYS/#", "+/x", false},
		{"$SYS/#", "$SYS/+", true},
	}
	for _, c := range cases {
		if got := Overlaps(c.a, c.b); got != c.want {
			t.Errorf("Overlaps(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := Overlaps(c.b, c.a); got != c.want {
			t.Errorf("Overlaps(%q, %q) = %v, want %v (swapped)", c.b, c.a, got, c.want)
		}
	}
}

// A topic name is covered exactly when it matches.
func TestCoversTopicIsMatch(t *testing.T) {
	filters := []string{"#", "+", "a/+", "a/#", "+/b", "a/b", "$SYS/#", "+/+/+"}
	names := []string{"a", "a/b", "a/b/c", "b", "$SYS/x", "a/", "/b", "x/y/z"}
	for _, f := range filters {
		for _, n := range names {
			if Covers(f, n) != MatchFilter(f, n) {
				t.Errorf("Covers(%q, %q) = %v, MatchFilter = %v", f, n, Covers(f, n), MatchFilter(f, n))
			}
		}
	}
}

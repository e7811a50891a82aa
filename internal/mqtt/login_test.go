package mqtt

import (
	"testing"

	"github.com/mqttd/mqttd/internal/mqtt/topics"
)

// A prepared grant covers exactly what topics.Covers says.
func TestGrantCoversAsTopicsCovers(t *testing.T) {
	filters := []string{"a/b/#", "a/b", "a/+/c", "#", "+/#", "a/#", "$SYS/#", "a/b/", "/#"}
	names := []string{"a", "a/b", "a/b/c", "a/bc", "a/b/", "a/x/c", "$SYS/x", "/", "/x", "a/b/#", "a/b/+", "a/+", "#", "+/b"}
	for _, f := range filters {
		g := NewGrant(f, 0, true)
		for _, n := range names {
			if got, want := g.Covers(n), topics.Covers(f, n); got != want {
				t.Errorf("NewGrant(%q).Covers(%q) = %v, topics.Covers says %v", f, n, got, want)
			}
		}
	}
}

package cluster

import (
	"testing"
	"time"
)

// wants, which a client's QoS 1/2 publish asks before Forward, answers as
// forwardTargets does for every kind of filter in the table: plain and
// wildcard ones of another node, $-topics, shared groups (this node's
// too), a gone node's; nothing at all while some peer's set is unknown.
func TestWantsAgreesWithForwardTargets(t *testing.T) {
	n := &Node{opts: Options{Name: "me", Prefix: "mqttd", NodeLease: 2 * time.Second, InterestTimeout: time.Second}}
	n.routes = newRouter(n)
	tb := n.routes.peers
	topics := []string{"a", "a/b", "a/b/c", "x/y", "$x/y", "$SYS/x", "s/1", "g/1", "o/1", "none/here"}
	check := func(stage string) {
		t.Helper()
		for _, topic := range topics {
			_, wanted, _ := tb.forwardTargets(topic, nil)
			if got := tb.wants(topic); got != wanted {
				t.Errorf("%s: wants(%q) = %v, forwardTargets says %v", stage, topic, got, wanted)
			}
		}
	}
	check("peers unknown")
	if !tb.wants("none/here") {
		t.Fatal("a node that does not know its peers' sets must forward everything")
	}
	tb.all.Store(false)
	check("empty table")
	if tb.wants("a") {
		t.Fatal("an empty table wants nothing")
	}
	for _, pf := range []peerFilter{{"n2", "a/+"}, {"n2", "x/#"}, {"n3", "$x/+"}, {"n3", "a/b/c"},
		{"me", "$share/g/s/+"}, {orphanPrefix + "n4", "o/#"}, {orphanPrefix + "n4", "$share/h/g/+"}} {
		filter := pf.filter
		if _, inner, ok := sharedFilter(filter); ok {
			filter = inner
		}
		tb.subscribe(filter, pf)
	}
	check("filled")
	for topic, want := range map[string]bool{"a": false, "a/b": true, "$x/y": true, "$SYS/x": false, "s/1": true, "none/here": false} {
		if got := tb.wants(topic); got != want {
			t.Errorf("wants(%q) = %v, want %v", topic, got, want)
		}
	}
	tb.unsubscribe("a/+", peerFilter{"n2", "a/+"})
	check("after a removal")
	if tb.wants("a/b") {
		t.Error("a/b still wanted after a/+ left")
	}
}

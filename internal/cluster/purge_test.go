package cluster

import (
	"testing"
	"time"
)

type purgeCall struct{ alias, client, user string }

// A cache purge on one node reaches every other node, once, with its
// target, and not the node it came from.
func TestPurgeReachesOtherNodes(t *testing.T) {
	ns := startNATS(t)
	nodes := []*testNode{startNode(t, ns, "n1"), startNode(t, ns, "n2"), startNode(t, ns, "n3")}
	calls := make([]chan purgeCall, len(nodes))
	for i, tn := range nodes {
		ch := make(chan purgeCall, 10)
		calls[i] = ch
		if err := tn.node.OnPurge(func(a, c, u string) { ch <- purgeCall{a, c, u} }); err != nil {
			t.Fatal(err)
		}
	}
	nodes[0].node.PurgeOthers("auth", "", "alice")
	nodes[0].node.PurgeOthers("", "dev-1", "")
	want := []purgeCall{{"auth", "", "alice"}, {"", "dev-1", ""}}
	for i := 1; i < len(nodes); i++ {
		for _, w := range want {
			select {
			case got := <-calls[i]:
				if got != w {
					t.Errorf("%s: purge %+v, want %+v", nodes[i].name, got, w)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: no purge %+v within 10 s", nodes[i].name, w)
			}
		}
	}
	// The origin hears nothing: a later purge from n2 arrives at n1 first.
	nodes[1].node.PurgeOthers("x", "", "")
	select {
	case got := <-calls[0]:
		if got != (purgeCall{"x", "", ""}) {
			t.Errorf("n1 heard its own purge %+v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("n1: no purge from n2 within 10 s")
	}
}

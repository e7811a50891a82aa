package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// wants reports whether a message on topic must go to NATS, as
// forwardTargets does, without gathering whose answer it waits for.
func (t *peerTable) wants(topic string) bool { return t.wantsMemo(topic, nil) }

// wants, which a client's QoS 1/2 publish asks before Forward, answers as
// forwardTargets does for every kind of filter in the table: plain and
// wildcard ones of another node, $-topics, shared groups (this node's
// too), a gone node's; nothing at all while some peer's set is unknown.
func TestWantsAgreesWithForwardTargets(t *testing.T) {
	n := &Node{opts: Options{Name: "me", Prefix: "mqttd", NodeLease: 2 * time.Second, InterestTimeout: time.Second}}
	n.routes = newRouter(n)
	tb := n.routes.peers
	topics := []string{"a", "a/b", "a/b/c", "x/y", "$x/y", "$SYS/x", "s/1", "g/1", "o/1", "none/here"}
	// One memo per topic, kept across the stages: each answers from it
	// twice, as a connection repeating its topic would.
	memos := make(map[string]*mqtt.KeepMemo)
	for _, topic := range topics {
		memos[topic] = new(mqtt.KeepMemo)
	}
	check := func(stage string) {
		t.Helper()
		for _, topic := range topics {
			_, wanted, _ := tb.forwardTargets(topic, nil)
			if got := tb.wants(topic); got != wanted {
				t.Errorf("%s: wants(%q) = %v, forwardTargets says %v", stage, topic, got, wanted)
			}
			for range 2 {
				if got := tb.wantsMemo(topic, memos[topic]); got != wanted {
					t.Errorf("%s: wantsMemo(%q) = %v, forwardTargets says %v", stage, topic, got, wanted)
				}
				// Forward, given the memo, finds the same nodes to wait
				// for as without it.
				nodes, w, gone := tb.forwardTargets(topic, nil)
				mnodes, mw, mgone := tb.targetsMemo(topic, memos[topic], nil)
				slices.Sort(nodes)
				mnodes = slices.Sorted(slices.Values(mnodes))
				if !slices.Equal(nodes, mnodes) || w != mw || gone != mgone {
					t.Errorf("%s: targetsMemo(%q) = %v %v %v, forwardTargets says %v %v %v", stage, topic, mnodes, mw, mgone, nodes, w, gone)
				}
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

// A connection's Keeps memo (mqtt.KeepMemo) must not outlive a change of
// the peer table: a publisher on node a sends messages to one topic, which
// no other node wants (node b holds an unrelated filter, so a walks its
// table and remembers the answer); b then subscribes to the topic, and the
// next publish on the same connection reaches b. Once b unsubscribes, the
// topic is kept on a again. At QoS 0 and 1, which both ask Keeps.
func TestKeepsMemoFollowsThePeerTable(t *testing.T) {
	ns := startNATS(t)
	a, b := startNode(t, ns, "a"), startNode(t, ns, "b")
	synced(t, a, b)
	other := client(t, b, "km-other", true)
	subscribe(t, other, "km/other", 1) // a's table is not empty: Keeps walks it
	for _, qos := range []byte{0, 1} {
		topic := fmt.Sprintf("km/%d/t", qos)
		pub := client(t, a, fmt.Sprint("km-pub-", qos), true)
		_, skip0 := counts(a)
		for i := range 2 {
			wait(t, "publish", pub.Publish(topic, qos, false, payload(i)))
		}
		// A QoS 0 publish's token completes once written: wait for a to
		// have handled both.
		waitFor(t, "a to keep both messages", func() bool { _, skip := counts(a); return skip-skip0 >= 2 })
		if _, skip := counts(a); skip-skip0 != 2 {
			t.Fatalf("QoS %d: a kept %d of 2 messages no other node wants", qos, skip-skip0)
		}

		sub := client(t, b, fmt.Sprint("km-sub-", qos), true)
		got := subscribe(t, sub, fmt.Sprintf("km/%d/#", qos), 1)
		wait(t, "publish", pub.Publish(topic, qos, false, payload(2)))
		if m := got.next(t); m.Topic() != topic || string(m.Payload()) != string(payload(2)) {
			t.Fatalf("QoS %d: b got %q %q, want %s %q", qos, m.Topic(), m.Payload(), topic, payload(2))
		}

		wait(t, "unsubscribe", sub.Unsubscribe(fmt.Sprintf("km/%d/#", qos)))
		waitFor(t, "a to hear b left", func() bool { return !a.node.routes.peers.wants(topic) })
		_, skip1 := counts(a)
		wait(t, "publish", pub.Publish(topic, qos, false, payload(3)))
		waitFor(t, "a to keep the message", func() bool { _, skip := counts(a); return skip-skip1 >= 1 })
		if _, skip := counts(a); skip-skip1 != 1 {
			t.Fatalf("QoS %d: a kept %d of 1 message no other node wants any more", qos, skip-skip1)
		}
	}
}

// BenchmarkWants: what a publisher on one topic pays per message to learn
// that no other node wants it, while another node holds 1000 filters (as
// holdFilters): the walk (wants) and the answer from the connection's memo.
func BenchmarkWants(b *testing.B) {
	n := &Node{opts: Options{Name: "me", Prefix: "mqttd", NodeLease: 2 * time.Second, InterestTimeout: time.Second}}
	n.routes = newRouter(n)
	tb := n.routes.peers
	tb.all.Store(false)
	for i := range 1000 {
		f := fmt.Sprintf("bench/held%d/state", i)
		if i%10 == 0 {
			f = fmt.Sprintf("bench/+/held%d", i)
		}
		tb.subscribe(f, peerFilter{"n2", f})
	}
	const topic = "bench/pair/3"
	b.Run("walk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if tb.wants(topic) {
				b.Fatal("wanted")
			}
		}
	})
	b.Run("memo", func(b *testing.B) {
		var m mqtt.KeepMemo
		b.ReportAllocs()
		for b.Loop() {
			if tb.wantsMemo(topic, &m) {
				b.Fatal("wanted")
			}
		}
	})
	// A topic n2 subscribes to: what Forward pays to find whose answer
	// its message waits for, walking the table again (forwardTargets) or
	// from the memo Keeps filled (targetsMemo).
	const wanted = "bench/held7/state"
	b.Run("targets-walk", func(b *testing.B) {
		var buf [4]string
		b.ReportAllocs()
		for b.Loop() {
			if nodes, ok, _ := tb.forwardTargets(wanted, buf[:0]); !ok || len(nodes) != 1 {
				b.Fatal(nodes, ok)
			}
		}
	})
	b.Run("targets-memo", func(b *testing.B) {
		var m mqtt.KeepMemo
		var buf [4]string
		b.ReportAllocs()
		for b.Loop() {
			if !tb.wantsMemo(wanted, &m) {
				b.Fatal("not wanted")
			}
			if nodes, ok, _ := tb.targetsMemo(wanted, &m, buf[:0]); !ok || len(nodes) != 1 {
				b.Fatal(nodes, ok)
			}
		}
	})
}

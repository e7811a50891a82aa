//go:build unix

package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestThreeNodes runs a nats-server and three mqttd processes once and
// checks, in order, what the cluster promises across processes. The last
// subtest kills node-3 with SIGKILL and restarts it.
func TestThreeNodes(t *testing.T) {
	mqttdBin, natsBin := buildBinaries(t, t.TempDir())
	natsURL := startNATS(t, natsBin)
	plugin := newAuthPlugin(t)
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = newNode(t, mqttdBin, fmt.Sprintf("node-%d", i+1), natsURL, plugin.url)
		nodes[i].launch()
	}
	for _, n := range nodes {
		n.waitReady()
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	t.Run("every QoS across nodes, one copy per subscriber", func(t *testing.T) { testQoS(t, n1, n2, n3) })
	t.Run("retained set on one node, seen and cleared from others", func(t *testing.T) { testRetained(t, n1, n2, n3) })
	t.Run("takeover across nodes", func(t *testing.T) { testTakeover(t, n1, n2, n3) })
	t.Run("shared subscription split across nodes", func(t *testing.T) { testShared(t, n1, n2, n3) })
	t.Run("admin cache purge reaches every node", func(t *testing.T) { testPurge(t, plugin, n1, n2) })
	t.Run("node killed with SIGKILL rejoins", func(t *testing.T) { testRejoin(t, n1, n2, n3) })
}

// testQoS: subscribers on the publisher's node and on both others, two of
// them on one node with the same filter and one with overlapping filters,
// get every message of each QoS once, in order, with its QoS.
func testQoS(t *testing.T, n1, n2, n3 *node) {
	const count = 20
	subs := []*client{connect(t, n1, "qos-sub-1"), connect(t, n2, "qos-sub-2"), connect(t, n3, "qos-sub-3a"), connect(t, n3, "qos-sub-3b")}
	for _, s := range subs {
		s.subscribe("q/#", 2)
	}
	subs[1].subscribe("q/+/x", 2) // overlapping: still one copy
	pub := connect(t, n1, "qos-pub")
	var want []string
	for qos := byte(0); qos <= 2; qos++ {
		for i := range count {
			pub.publish(fmt.Sprintf("q/%d/x", qos), qos, false, seqPayload(qos, i))
			want = append(want, seqPayload(qos, i))
		}
	}
	for _, s := range subs {
		eventually(t, s.id+" got all messages", func() bool {
			return len(s.got.all()) >= len(want)
		})
	}
	// A marker after everything: a duplicate would have arrived by then.
	pub.publish("q/end/x", 2, false, "end")
	for _, s := range subs {
		eventually(t, s.id+" got the marker", func() bool { return s.got.has("end") })
		byQoS := map[byte][]string{}
		for _, r := range s.got.all() {
			if r.payload == "end" {
				continue
			}
			want := byte(r.topic[2] - '0')
			if r.qos != want {
				t.Errorf("%s: %s %q arrived at QoS %d, want %d", s.id, r.topic, r.payload, r.qos, want)
			}
			byQoS[want] = append(byQoS[want], r.payload)
		}
		for qos := byte(0); qos <= 2; qos++ {
			if w := want[int(qos)*count : int(qos+1)*count]; !slices.Equal(byQoS[qos], w) {
				t.Errorf("%s: QoS %d messages %v, want once each in order %v", s.id, qos, byQoS[qos], w)
			}
		}
	}
}

// testRetained: a retained message stored through node-1 is delivered to a
// subscriber on node-3 that subscribes right after the PUBACK; cleared
// through node-2, it is gone on node-1 and node-3: a later SUBSCRIBE's first
// message is a live one.
func testRetained(t *testing.T, n1, n2, n3 *node) {
	pub1, pub2 := connect(t, n1, "ret-pub-1"), connect(t, n2, "ret-pub-2")
	pub1.publish("ret/a", 1, true, "v1")
	c := connect(t, n3, "ret-sub-3")
	c.subscribe("ret/a", 1)
	eventually(t, "node-3 subscriber got the retained message set on node-1", func() bool { return len(c.got.all()) > 0 })
	if r := c.got.all()[0]; r.payload != "v1" || !r.retained {
		t.Fatalf("node-3: first message %+v, want retained v1", r)
	}

	pub2.publish("ret/a", 1, true, "") // clears it
	for _, n := range []*node{n1, n3} {
		d := connect(t, n, "ret-after-clear-"+n.name)
		d.subscribe("ret/a", 1)
		pub2.publish("ret/a", 1, false, "live-"+n.name)
		eventually(t, d.id+" got the live message", func() bool { return d.got.has("live-" + n.name) })
		if r := d.got.all()[0]; r.payload != "live-"+n.name || r.retained {
			t.Errorf("%s: first message after the clear on node-2 is %+v, want the live one (retained still there)", n.name, r)
		}
	}
}

// testTakeover: a client id connected on one node connects on another; the
// old connection is closed within 2 s of the new CONNACK, and the new one
// works. It goes round all three nodes and back.
func testTakeover(t *testing.T, n1, n2, n3 *node) {
	const id = "takeover"
	path := []*node{n1, n2, n3, n1}
	old := connect(t, path[0], id)
	for _, n := range path[1:] {
		c := connect(t, n, id)
		acked := time.Now()
		select {
		case at := <-old.lost:
			if d := at.Sub(acked); d > 2*time.Second {
				t.Errorf("takeover on %s: old connection closed %v after the CONNACK, want within 2s", n.name, d)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("takeover on %s: the old connection is still open 2s after the new CONNACK", n.name)
		}
		c.subscribe("to/"+n.name, 1)
		p := connect(t, n3, "takeover-pub-"+n.name)
		p.publish("to/"+n.name, 1, false, "hello")
		eventually(t, "the new connection on "+n.name+" receives", func() bool { return c.got.has("hello") })
		old = c
	}
}

// testShared: members of one shared subscription on all three nodes; the
// messages published on node-2 reach the group once each, split over more
// than one node, while a plain subscriber gets them all.
func testShared(t *testing.T, n1, n2, n3 *node) {
	const count = 60
	members := []*client{connect(t, n1, "share-1"), connect(t, n2, "share-2"), connect(t, n3, "share-3")}
	for _, m := range members {
		m.subscribe("$share/grp/sh/#", 1)
	}
	plain := connect(t, n1, "share-plain")
	plain.subscribe("sh/#", 1)
	pub := connect(t, n2, "share-pub")
	for i := range count {
		pub.publish(fmt.Sprintf("sh/%d", i%3), 1, false, fmt.Sprintf("m%03d", i))
	}
	group := func() []string {
		var all []string
		for _, m := range members {
			all = append(all, payloads(m.got.all())...)
		}
		return all
	}
	eventually(t, "the group and the plain subscriber got every message", func() bool {
		return len(group()) >= count && len(plain.got.all()) >= count
	})
	pub.publish("sh/end", 1, false, "end")
	eventually(t, "the group got the marker", func() bool { return slices.Contains(group(), "end") })
	eventually(t, "the plain subscriber got the marker", func() bool { return plain.got.has("end") })

	got := group()
	slices.Sort(got)
	if len(got) != count+1 || len(slices.Compact(slices.Clone(got))) != count+1 {
		t.Errorf("group got %d messages (%d distinct), want %d once each: %v", len(got), len(slices.Compact(slices.Clone(got))), count+1, got)
	}
	if n := len(plain.got.all()); n != count+1 {
		t.Errorf("plain subscriber got %d messages, want %d", n, count+1)
	}
	nodesUsed := 0
	for _, m := range members {
		if len(m.got.all()) > 0 {
			nodesUsed++
		}
		t.Logf("%s got %d", m.id, len(m.got.all()))
	}
	if nodesUsed < 2 {
		t.Errorf("the group's messages all went to one node, want them split across nodes")
	}
}

// testRejoin: node-3 is killed with SIGKILL (its name lease is not given
// back); a retained message is set meanwhile; restarted on the same store
// and ports it becomes ready, has the retained message, and exchanges
// messages with the other nodes both ways.
func testRejoin(t *testing.T, n1, n2, n3 *node) {
	victim := connect(t, n3, "rejoin-victim")
	n3.kill9()
	select {
	case <-victim.lost:
	case <-time.After(opWithin):
		t.Fatal("a client of the killed node still has a connection")
	}
	pub := connect(t, n1, "rejoin-pub")
	pub.publish("rj/r", 1, true, "while-down")

	n3.start()
	c := connect(t, n3, "rejoin-sub")
	c.subscribe("rj/#", 1)
	eventually(t, "restarted node-3 has the retained message set while it was down", func() bool { return c.got.has("while-down") })
	pub.publish("rj/live", 1, false, "from-node-1")
	eventually(t, "restarted node-3 receives from node-1", func() bool { return c.got.has("from-node-1") })

	back := connect(t, n2, "rejoin-back")
	back.subscribe("rj/back", 1)
	c.publish("rj/back", 1, false, "from-node-3")
	eventually(t, "node-2 receives from restarted node-3", func() bool { return back.got.has("from-node-3") })
}

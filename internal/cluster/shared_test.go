package cluster

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/store/memstore"
)

// noAckClient connects a 3.1.1 client that does not acknowledge the QoS 1
// messages it receives (they stay in flight at the broker), collecting them
// in r.
func noAckClient(t testing.TB, tn *testNode, id string, clean bool, r *received) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + tn.addr).SetClientID(id).SetCleanSession(clean).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetAutoAckDisabled(true).
		SetConnectTimeout(5 * time.Second).SetKeepAlive(30 * time.Second).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { r.ch <- m })
	c := paho.NewClient(o)
	wait(t, "connect "+id, c.Connect())
	t.Cleanup(func() {
		if c.IsConnected() {
			c.Disconnect(50)
		}
	})
	return c
}

// collect reads n messages and returns how often each payload came.
func collect(t testing.TB, r *received, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		seen[string(r.next(t).Payload())]++
	}
	return seen
}

// A member of a shared group that leaves with QoS 1 messages it was sent
// and did not acknowledge: they go to the group's member on another node
// (the leaving member's node has no other). Both a clean and a persistent
// leaving member; the publisher on a third node.
func TestSharedUnackedGoToMemberOnOtherNode(t *testing.T) {
	for _, clean := range []bool{true, false} {
		t.Run(fmt.Sprintf("clean=%v", clean), func(t *testing.T) {
			ns := startNATS(t)
			a, b, c := startNode(t, ns, "a"), startNode(t, ns, "b"), startNode(t, ns, "c")
			held := newReceived()
			x := noAckClient(t, b, "x", clean, held)
			wait(t, "x joins", x.Subscribe("$share/g/jobs", 1, nil))
			pub := client(t, a, "pub", true)
			const n = 3
			for i := range n {
				wait(t, "publish", pub.Publish("jobs", 1, false, payload(i)))
			}
			collect(t, held, n) // all with x, the only member: unacknowledged
			got := newReceived()
			y := clientWith(t, c, "y", true, got)
			wait(t, "y joins", y.Subscribe("$share/g/jobs", 1, nil))
			x.Disconnect(50)
			seen := collect(t, got, n)
			for i := range n {
				if seen[string(payload(i))] != 1 {
					t.Fatalf("message %d reached y %d times: %v", i, seen[string(payload(i))], seen)
				}
			}
			if !clean {
				// Not kept for x as well: it went to y.
				back := newReceived()
				clientWith(t, b, "x", false, back)
				back.none(t, 300*time.Millisecond)
			}
		})
	}
}

// A shared group with a connected member on one node and an offline
// persistent one on another: every message goes to the connected member,
// wherever NATS hands it, and none waits for the offline one.
func TestSharedPrefersConnectedMemberOnOtherNode(t *testing.T) {
	ns := startNATS(t)
	a, b, c := startNode(t, ns, "a"), startNode(t, ns, "b"), startNode(t, ns, "c")
	x := client(t, b, "x", false)
	wait(t, "x joins", x.Subscribe("$share/g/jobs", 1, nil))
	x.Disconnect(50)
	got := newReceived()
	y := clientWith(t, c, "y", true, got)
	wait(t, "y joins", y.Subscribe("$share/g/jobs", 1, nil))
	pub := client(t, a, "pub", true)
	const n = 30
	for i := range n {
		wait(t, "publish", pub.Publish("jobs", 1, false, payload(i)))
	}
	seen := collect(t, got, n)
	if len(seen) != n {
		t.Fatalf("y got %d distinct of %d: %v", len(seen), n, seen)
	}
	back := newReceived()
	clientWith(t, b, "x", false, back)
	back.none(t, 300*time.Millisecond)
}

// The only member of a shared group is a persistent session whose client
// is offline, on a node with a store. QoS 1 messages published on another
// node and acknowledged are in that store: the node restarts, the client
// comes back and gets every one.
func TestSharedOfflineMemberStoredAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns, "a")
	st := memstore.New()
	startB := func() *testNode {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		n, err := Open(ctx, Options{URLs: []string{ns.ClientURL()}, Name: "b", NodeLease: testLease, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		br, err := mqtt.New(mqtt.Options{Name: "b", Store: st, Cluster: n, Logger: testLogger(),
			Listeners: []mqtt.ListenerConfig{{Name: "t", Type: "tcp", Bind: "127.0.0.1:0"}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(ctx, br); err != nil {
			t.Fatal(err)
		}
		if err := br.Start(); err != nil {
			t.Fatal(err)
		}
		if err := n.Resync(ctx); err != nil {
			t.Fatal(err)
		}
		tn := &testNode{name: "b", broker: br, node: n, addr: br.Addr("t").String()}
		t.Cleanup(tn.stop)
		return tn
	}
	b := startB()
	x := client(t, b, "x", false)
	wait(t, "x joins", x.Subscribe("$share/g/jobs", 1, nil))
	x.Disconnect(50)
	pub := client(t, a, "pub", true)
	const n = 5
	for i := range n {
		wait(t, "publish", pub.Publish("jobs", 1, false, payload(i)))
	}
	b.stop()
	b = startB()
	got := newReceived()
	clientWith(t, b, "x", false, got)
	seen := collect(t, got, n)
	if len(seen) != n {
		t.Fatalf("x got %d distinct of %d: %v", len(seen), n, seen)
	}
}

// A QoS 1 publish to a shared group whose only member is a persistent
// session of another node is acknowledged only once that node stored it,
// and is refused (0x80) while the member's node is dead and its session
// not yet adopted: every acknowledged message reaches the member once it
// resumes on the surviving node.
func TestSharedConfirmedAcrossNodeLoss(t *testing.T) {
	testConfirmedAcrossNodeLoss(t, "$share/g/sc/#", "sc/x", 30*time.Second, func(tn *testNode) *pahov5.Client {
		return v5Patient(t, tn, "pub")
	})
}

// The only member of a shared group, a persistent session, leaves with QoS
// 1 messages unacknowledged, and no node has another member: they are
// kept for it and sent again when it resumes, not dropped.
func TestSharedSoleMemberKeepsUnacked(t *testing.T) {
	ns := startNATS(t)
	a, b := startNode(t, ns, "a"), startNode(t, ns, "b")
	held := newReceived()
	x := noAckClient(t, b, "x", false, held)
	wait(t, "x joins", x.Subscribe("$share/g/jobs", 1, nil))
	pub := client(t, a, "pub", true)
	const n = 3
	for i := range n {
		wait(t, "publish", pub.Publish("jobs", 1, false, payload(i)))
	}
	collect(t, held, n)
	x.Disconnect(50)
	waitFor(t, "x's connection to end", func() bool {
		v, ok := b.broker.Client("x")
		return ok && !v.Connected
	})
	back := newReceived()
	clientWith(t, b, "x", false, back)
	seen := collect(t, back, n)
	if len(seen) != n {
		t.Fatalf("x got %d distinct of %d again: %v", len(seen), n, seen)
	}
}

// A member of a shared group holds QoS 1 messages unacknowledged when its
// node dies (the nodes share a store): once a surviving node has adopted
// its session, they go to the group's connected member rather than wait
// for the dead member's client to return.
func TestSharedDeadNodesMemberHandsOn(t *testing.T) {
	ns := startNATS(t)
	st := memstore.New()
	a, b := startShared(t, ns, "a", st, 0), startShared(t, ns, "b", st, 0)
	held := newReceived()
	x := noAckClient(t, b.testNode, "x", false, held)
	wait(t, "x joins", x.Subscribe("$share/g/jobs", 1, nil))
	pub := client(t, a.testNode, "pub", true)
	const n = 3
	for i := range n {
		wait(t, "publish", pub.Publish("jobs", 1, false, payload(i)))
	}
	collect(t, held, n) // all with x, the only member: unacknowledged
	got := newReceived()
	y := clientWith(t, a.testNode, "y", true, got)
	wait(t, "y joins", y.Subscribe("$share/g/jobs", 1, nil))
	b.kill()
	waitFor(t, "a to adopt x's session", func() bool { return a.broker.HasSession("x") })
	seen := collect(t, got, n)
	if len(seen) != n {
		t.Fatalf("y got %d distinct of %d: %v", len(seen), n, seen)
	}
	back := newReceived()
	clientWith(t, a.testNode, "x", false, back)
	back.none(t, 300*time.Millisecond)
}

// v5Patient connects an MQTT 5 client that waits for an acknowledgement
// longer than the forward timeout (the v5 helper's 5 s is as long): a
// publish that waits for a dead node ends refused, not timed out here.
func v5Patient(t testing.TB, tn *testNode, id string) *pahov5.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", tn.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := pahov5.NewClient(pahov5.ClientConfig{Conn: conn, PacketTimeout: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ack, err := c.Connect(ctx, &pahov5.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("v5 connect %s to %s: %v (%+v)", id, tn.name, err, ack)
	}
	t.Cleanup(func() { c.Disconnect(&pahov5.Disconnect{}) })
	return c
}

package cluster

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
)

// A retained message set on one node is there for a subscriber on another
// as soon as the publisher has its PUBACK, and clearing it on a third node
// clears it everywhere. A node started later loads it too.
func TestRetainedAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	n1, n2, n3 := startNode(t, ns, "n1"), startNode(t, ns, "n2"), startNode(t, ns, "n3")
	pub := client(t, n1, "pub", true)
	for i := range 10 {
		// Each round: set on n1, then at once subscribe on n2 (no sleep:
		// the PUBACK is the only synchronisation).
		wait(t, "retain", pub.Publish("r/t", 1, true, payload(i)))
		c := client(t, n2, "sub", true)
		r := subscribe(t, c, "r/#", 1)
		if m := r.next(t); string(m.Payload()) != string(payload(i)) || !m.Retained() {
			t.Fatalf("round %d: got %q retained=%v, want %q retained", i, m.Payload(), m.Retained(), payload(i))
		}
		c.Disconnect(50)
	}
	late := startNode(t, ns, "late")
	if m, ok := late.broker.Retained("r/t"); !ok || string(m.Payload) != string(payload(9)) {
		t.Fatalf("a node started later has %v, %v", m, ok)
	}

	clear := client(t, n3, "clear", true)
	wait(t, "clear", clear.Publish("r/t", 1, true, []byte{}))
	r := subscribe(t, client(t, n2, "sub2", true), "r/#", 1)
	r.none(t, 300*time.Millisecond)
	for _, tn := range []*testNode{n1, n2, n3, late} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, ok := tn.broker.Retained("r/t"); !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still has the cleared retained message", tn.name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// A client connecting on node 2 with the id of a client connected on node
// 1 takes it over: node 1 closes the old connection with DISCONNECT 0x8E
// within 2 s, and only the new connection gets messages.
func TestTakeoverAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	n1, n2 := startNode(t, ns, "n1"), startNode(t, ns, "n2")
	old, disc := v5(t, n1, "dup")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := old.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "x", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	v5(t, n2, "dup")
	select {
	case d := <-disc:
		if d.ReasonCode != 0x8E {
			t.Errorf("old connection got DISCONNECT 0x%02X, want 0x8E", d.ReasonCode)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("old connection closed after %s, want within 2 s", took)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("old connection not closed within 2 s")
	}
	if n1.broker.HasSession("dup") {
		t.Error("node 1 kept the session it lost")
	}
	// And back: node 2 loses it to node 1 the same way.
	_, disc2 := v5(t, n2, "dup2")
	v5(t, n1, "dup2")
	select {
	case d := <-disc2:
		if d.ReasonCode != 0x8E {
			t.Errorf("got DISCONNECT 0x%02X, want 0x8E", d.ReasonCode)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("second takeover: old connection not closed within 2 s")
	}
}

// A clean session that ends releases its id; connecting it elsewhere later
// then disturbs nothing, and the id is claimable again.
func TestReleasedIDsAreFree(t *testing.T) {
	ns := startNATS(t)
	n1, n2 := startNode(t, ns, "n1"), startNode(t, ns, "n2")
	c := client(t, n1, "once", true)
	c.Disconnect(50)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := n1.node.owners.kv.Get(ctx, idKey("once"))
		cancel()
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ended session's owner entry is still there")
		}
		time.Sleep(20 * time.Millisecond)
	}
	client(t, n2, "once", true)
}

// A second node with a running node's name is refused at start, with a
// message saying so; once the first has stopped, the name is free.
func TestDuplicateNodeNameRefused(t *testing.T) {
	ns := startNATS(t)
	n1 := startNode(t, ns, "same")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := Open(ctx, Options{URLs: []string{ns.ClientURL()}, Name: "same", NodeLease: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), `another node named "same" is running`) {
		t.Fatalf("second node: %v, want refused", err)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("refused after %s: a crashed predecessor's lease (2 s) was not waited for", took)
	}
	n1.stop()
	n, err := Open(ctx, Options{URLs: []string{ns.ClientURL()}, Name: "same", NodeLease: 2 * time.Second})
	if err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	n.Close()
}

// NATS unreachable at start: Open keeps trying until it answers.
func TestOpenWaitsForNATS(t *testing.T) {
	ns := startNATS(t)
	url := ns.ClientURL()
	ns.Shutdown()
	ns.WaitForShutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err := Open(ctx, Options{URLs: []string{url}, Name: "n", RetryMax: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("Open with NATS down: %v, want not reachable", err)
	}
}

// A will published on one node (its client vanished) reaches a subscriber
// on another.
func TestWillAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	n1, n2 := startNode(t, ns, "n1"), startNode(t, ns, "n2")
	r := subscribe(t, client(t, n2, "watcher", true), "wills/#", 1)
	conn, err := net.Dial("tcp", n1.addr)
	if err != nil {
		t.Fatal(err)
	}
	var vh []byte
	vh = appendStr(vh, "MQTT")
	vh = append(vh, 4, 0x02|0x04|0x08, 0, 60) // clean, will flag, will QoS 1
	vh = appendStr(vh, "dying")
	vh = appendStr(vh, "wills/dying")
	vh = appendStr(vh, "gone")
	conn.Write(packet(0x10, vh))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if typ, body, err := readPacket(bufio.NewReader(conn)); err != nil || typ != 0x20 || body[1] != 0 {
		t.Fatalf("CONNACK %x % x %v", typ, body, err)
	}
	conn.Close() // no DISCONNECT: the will goes out
	if m := r.next(t); m.Topic() != "wills/dying" || string(m.Payload()) != "gone" || m.Qos() != 1 {
		t.Fatalf("got %q %q QoS %d", m.Topic(), m.Payload(), m.Qos())
	}
}

// One client id moving back and forth between two nodes, 100 times: every
// move closes the previous connection. (A release of an ended session once
// deleted the claim of the connection that replaced it on the same node,
// so the next move found no owner to close.)
func TestTakeoverRepeatedly(t *testing.T) {
	ns := startNATS(t)
	nodes := []*testNode{startNode(t, ns, "n1"), startNode(t, ns, "n2")}
	takeovers(t, nodes, 100, true)
}

package cluster

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS restarting (same port, same JetStream directory) interrupts the
// cluster only while it is down: /readyz's Connected goes false, then the
// nodes reconnect by themselves, their subscriptions are in place again,
// and retained messages stored after the restart reach the other node.
func TestNATSRestart(t *testing.T) {
	dir := t.TempDir()
	ns := natsAt(t, -1, dir)
	p := ns.ClientURL()
	n1, n2 := startNodeURL(t, p, "n1"), startNodeURL(t, p, "n2")
	r := subscribe(t, client(t, n2, "sub", true), "a/#", 1)
	pub := client(t, n1, "pub", true)
	wait(t, "publish", pub.Publish("a/1", 1, false, []byte("before")))
	if m := r.next(t); string(m.Payload()) != "before" {
		t.Fatalf("got %q", m.Payload())
	}

	portNum := ns.Addr().(*net.TCPAddr).Port
	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, "nodes to see NATS gone", func() bool { return !n1.node.Connected() && !n2.node.Connected() })
	natsAt(t, portNum, dir)
	waitFor(t, "nodes to reconnect", func() bool { return n1.node.Connected() && n2.node.Connected() })

	// The subscription is back once NATS has it: poll by publishing until
	// one arrives, then check the next ones all do, in order.
	deadline := time.Now().Add(15 * time.Second)
	for {
		wait(t, "publish", pub.Publish("a/2", 1, false, []byte("probe")))
		select {
		case m := <-r.ch:
			if string(m.Payload()) != "probe" {
				t.Fatalf("got %q", m.Payload())
			}
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("messages do not cross nodes after NATS came back")
			}
			continue
		}
		break
	}
	for len(r.ch) > 0 { // late probes
		<-r.ch
	}
	for i := range 5 {
		wait(t, "publish", pub.Publish("a/3", 1, false, payload(i)))
	}
	for i := range 5 {
		if m := r.next(t); m.Topic() == "a/3" && string(m.Payload()) != string(payload(i)) {
			t.Fatalf("after restart got %q, want %q", m.Payload(), payload(i))
		}
	}
	wait(t, "retain", pub.Publish("keep", 1, true, []byte("kept")))
	rr := subscribe(t, client(t, n2, "late", true), "keep", 1)
	if m := rr.next(t); string(m.Payload()) != "kept" {
		t.Fatalf("retained after restart: %q", m.Payload())
	}

	// The interest tables caught up: both nodes stop forwarding
	// everything, a filter added after the restart is wanted on n1, and
	// a topic nobody wants stays there.
	synced(t, n1, n2)
	after := subscribe(t, client(t, n2, "after", true), "after/+", 1)
	fwd, skip := counts(n1)
	wait(t, "publish", pub.Publish("after/1", 1, false, []byte("a")))
	wait(t, "publish", pub.Publish("nobody/1", 1, false, []byte("b")))
	if m := after.next(t); string(m.Payload()) != "a" {
		t.Fatalf("after the restart got %q", m.Payload())
	}
	if f, s := counts(n1); f-fwd != 1 || s-skip != 1 {
		t.Errorf("after the restart n1 forwarded %d, skipped %d; want 1 and 1", f-fwd, s-skip)
	}
}

func natsAt(t *testing.T, port int, dir string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

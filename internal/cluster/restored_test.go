package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/store/memstore"
)

// A node restarted with a store restores its persistent sessions'
// subscriptions and announces them. A message published on another node
// once the restarted one has started must reach them, even when that other
// node is slow to take the announcement in: the start waits for its
// acknowledgement. Here node A's interest table is held locked while B
// restarts; without the wait B's start returns meanwhile, and a publish on
// A skips B (A knows nothing of B's filters), so the session never gets it.
func TestRestoredSubscriptionsAwaited(t *testing.T) {
	old := testLease
	testLease = time.Second // A drops the filters of a node gone after two leases
	defer func() { testLease = old }()
	ns := startNATS(t)
	a := startNode(t, ns, "a")
	st := memstore.New()
	// open joins B to the cluster and attaches its broker, not started.
	open := func() *testNode {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		n, err := Open(ctx, Options{URLs: []string{ns.ClientURL()}, Name: "b", NodeLease: time.Second,
			InterestTimeout: time.Minute, Logger: testLogger()})
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
		tn := &testNode{name: "b", broker: br, node: n}
		t.Cleanup(tn.stop)
		return tn
	}
	// start starts the broker, restoring its sessions (the readiness of
	// cmd/mqttd follows both calls).
	start := func(tn *testNode) error {
		if err := tn.broker.Start(); err != nil {
			return err
		}
		tn.addr = tn.broker.Addr("t").String()
		return tn.node.Resync(context.Background())
	}
	b := open()
	if err := start(b); err != nil {
		t.Fatal(err)
	}
	c := client(t, b, "restored-sub", false)
	subscribe(t, c, "restored/t", 1)
	c.Disconnect(100)
	b.stop()
	peers := a.node.routes.peers
	waitFor(t, "a to forget b", func() bool {
		peers.mu.Lock()
		defer peers.mu.Unlock()
		return peers.peers["b"] == nil && len(peers.orphans) == 0 && !peers.all.Load()
	})

	// A slow to apply what B announces: its table is held.
	peers.mu.Lock()
	locked := true
	unlock := func() {
		if locked {
			locked = false
			peers.mu.Unlock()
		}
	}
	defer unlock()
	b = open()
	done := make(chan error, 1)
	go func() { done <- start(b) }()
	published := false
	publish := func() {
		published = true
		if _, err := a.broker.Publish(mqtt.PublishRequest{Topic: "restored/t", Payload: []byte("after-ready"), QoS: 1}); err != nil {
			t.Error(err)
		}
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case err := <-done:
			if err != nil {
				unlock()
				t.Fatal(err)
			}
			if locked {
				// Ready while A has not taken the subscriptions in: a
				// client of A publishes now.
				publish()
				unlock()
			}
			break wait
		case <-tick.C:
			if locked && b.node.routes.peers.awaiting.Load() > 0 {
				unlock() // B waits for A: let A answer
			}
		}
	}
	if !published {
		publish()
	}
	got := newReceived()
	clientWith(t, b, "restored-sub", false, got)
	if m := got.next(t); string(m.Payload()) != "after-ready" {
		t.Fatalf("got %q", m.Payload())
	}
}

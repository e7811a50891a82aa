package cluster

import (
	"context"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
)

func v5Publish(t *testing.T, c *pahov5.Client, topic string, retain bool, body string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr, err := c.Publish(ctx, &pahov5.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: []byte(body)})
	if pr == nil {
		t.Fatalf("PUBLISH %s: no PUBACK: %v", topic, err)
	}
	return pr.ReasonCode
}

// A retained PUBLISH the cluster cannot store (NATS is gone) is refused,
// not acknowledged: MQTT 5 hears 0x80, a 3.1.1 client loses its
// connection, and the message is neither routed nor retained here. Plain
// messages keep flowing locally. Each refusal is counted.
func TestRetainedRefusedWhenNotStored(t *testing.T) {
	ns := startNATS(t)
	n1 := startNode(t, ns, "n1")
	local := subscribe(t, client(t, n1, "local-sub", true), "r/#", 1)
	pub5, _ := v5(t, n1, "pub5")
	lost := make(chan struct{})
	o := paho.NewClientOptions().AddBroker("tcp://" + n1.addr).SetClientID("pub3").SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	pub3 := paho.NewClient(o)
	wait(t, "connect pub3", pub3.Connect())

	ns.Shutdown()
	ns.WaitForShutdown()
	// Both connections must have noticed: Connected is false as soon as one
	// has, and a retained store on the other would wait for its timeout.
	waitFor(t, "the node to see NATS gone", func() bool { return !n1.node.nc.IsConnected() && !n1.node.ncShared.IsConnected() })

	if rc := v5Publish(t, pub5, "r/kept", true, "v5"); rc != 0x80 {
		t.Errorf("MQTT 5 retained PUBLISH not stored: PUBACK 0x%02x, want 0x80", rc)
	}
	if rc := v5Publish(t, pub5, "r/plain", false, "plain"); rc != 0x00 {
		t.Errorf("MQTT 5 plain PUBLISH while NATS is gone: PUBACK 0x%02x, want 0x00", rc)
	}
	if m := local.next(t); m.Topic() != "r/plain" {
		t.Errorf("local subscriber got %s %q first: the refused retained message was routed", m.Topic(), m.Payload())
	}
	pub3.Publish("r/kept", 1, true, []byte("v3"))
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("3.1.1 client still connected after a retained PUBLISH the cluster did not store")
	}
	if got := n1.node.Stats().RetainFailed.Load(); got != 2 {
		t.Errorf("RetainFailed = %d, want 2", got)
	}
	late := subscribe(t, client(t, n1, "late-sub", true), "r/kept", 1)
	late.none(t, 300*time.Millisecond)
}

// MQTT 5 PUBACK 0x10 ("no matching subscribers") is never sent in a
// cluster: the subscribers may be on another node, or in a shared
// subscription another node serves.
func TestNoMatchingNotClaimedInCluster(t *testing.T) {
	ns := startNATS(t)
	n1, n2 := startNode(t, ns, "n1"), startNode(t, ns, "n2")
	remote := subscribe(t, client(t, n2, "remote-sub", true), "far/#", 1)
	shared := subscribe(t, client(t, n2, "shared-sub", true), "$share/g/grp/#", 1)
	pub, _ := v5(t, n1, "pub")
	if rc := v5Publish(t, pub, "far/x", false, "1"); rc != 0x00 {
		t.Errorf("subscriber on another node: PUBACK 0x%02x, want 0x00", rc)
	}
	if rc := v5Publish(t, pub, "grp/x", false, "2"); rc != 0x00 {
		t.Errorf("shared subscriber on another node: PUBACK 0x%02x, want 0x00", rc)
	}
	remote.next(t)
	shared.next(t)
}

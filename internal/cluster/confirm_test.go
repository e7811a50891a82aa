package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"

	"github.com/mqttd/mqttd/internal/store/memstore"
)

// A QoS 1 publish acknowledged on one node reaches a persistent session of
// a node that dies right after: the PUBACK waits for that node to have it,
// and between its death and the adoption of its sessions a publish for them
// is refused (0x80), not acknowledged and lost.
func TestForwardConfirmedAcrossNodeLoss(t *testing.T) {
	testConfirmedAcrossNodeLoss(t, "fc/#", "fc/x", 15*time.Second, func(tn *testNode) *pahov5.Client {
		pub, _ := v5(t, tn, "pub")
		return pub
	})
}

// testConfirmedAcrossNodeLoss subscribes a persistent session on node b to
// filter, publishes QoS 1 to topic from node a (each publish given
// publishTimeout for its PUBACK) before b is killed, while its session
// waits for adoption, and after, then resumes the session on a: every
// publish acknowledged with 0x00 must arrive; 0x80 (refused) is allowed.
func testConfirmedAcrossNodeLoss(t *testing.T, filter, topic string, publishTimeout time.Duration, publisher func(*testNode) *pahov5.Client) {
	ns := startNATS(t)
	st := memstore.New()
	a, b := startShared(t, ns, "a", st, 0), startShared(t, ns, "b", st, 0)

	got := make(chan string, 1000) // what either connection of the session receives
	held := v5Persistent(t, b.testNode, "held", got)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := held.c.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	synced(t, a.testNode)
	pub := publisher(a.testNode)
	var acked []string
	refused := 0
	send := func(i int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		defer cancel()
		m := fmt.Sprintf("m%04d", i)
		resp, err := pub.Publish(ctx, &pahov5.Publish{Topic: topic, QoS: 1, Payload: []byte(m)})
		switch {
		case resp == nil:
			t.Fatalf("publish %s: no PUBACK: %v", m, err)
		case resp.ReasonCode == 0:
			acked = append(acked, m)
		case resp.ReasonCode == 0x80:
			refused++
		default:
			t.Fatalf("publish %s: PUBACK 0x%02x", m, resp.ReasonCode)
		}
	}
	i := 0
	for ; i < 20; i++ {
		send(i)
	}
	b.kill()
	// Publish from the kill until a has adopted the session, and a little
	// after.
	for after := 0; after < 20; i++ {
		send(i)
		if a.broker.HasSession("held") {
			after++
		}
	}
	v5Persistent(t, a.testNode, "held", got)
	allArrive(t, got, acked, refused)
	t.Logf("%d acknowledged and delivered, %d refused while the session was between nodes", len(acked), refused)
}

// allArrive waits for every message in acked to come out of got (each
// within 20 s of the one before), failing with the counts when one does
// not: acknowledged means kept.
func allArrive(t testing.TB, got <-chan string, acked []string, refused int) {
	t.Helper()
	have := map[string]bool{}
	for _, m := range acked {
		deadline := time.After(20 * time.Second)
		for !have[m] {
			select {
			case g := <-got:
				have[g] = true
			case <-deadline:
				t.Fatalf("%s was acknowledged (0x00) and never arrived; %d acknowledged, %d refused", m, len(acked), refused)
			}
		}
	}
}

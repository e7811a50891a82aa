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
	ns := startNATS(t)
	st := memstore.New()
	a, b := startShared(t, ns, "a", st, 0), startShared(t, ns, "b", st, 0)

	got := make(chan string, 1000) // what either connection of the session receives
	held := v5Persistent(t, b.testNode, "held", got)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := held.c.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: "fc/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	synced(t, a.testNode)
	pub, _ := v5(t, a.testNode, "pub")
	var acked []string
	refused := 0
	send := func(i int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		m := fmt.Sprintf("m%04d", i)
		resp, err := pub.Publish(ctx, &pahov5.Publish{Topic: "fc/x", QoS: 1, Payload: []byte(m)})
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
	t.Logf("%d acknowledged and delivered, %d refused while the session was between nodes", len(acked), refused)
}
